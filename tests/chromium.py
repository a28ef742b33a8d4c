"""The system's Chromium (Debian's `chromium` package), for the tests and tools that render
pages: nothing downloads a browser."""

from __future__ import annotations

import shutil

import pytest

NAMES = ("chromium", "chromium-browser", "google-chrome")


def chromium_executable() -> str:
    """Its path; the calling test is skipped, saying why, where there is none."""
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no Chromium on PATH: `apt-get install chromium` (.ci/run installs it)")
