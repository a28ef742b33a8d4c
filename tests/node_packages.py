"""Pinned npm packages for test- and bench-only tools, installed once per lock file.

The repository holds a folder's package.json and package-lock.json; ``npm ci`` installs them
into a cache folder named by their hash (~/.cache/chimera-<kind>/<name>-<hash>), reused by
every later run, so a CI job's second test pass and every benchmark after the first install
nothing. The service itself never needs Node.js.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

INSTALL_TIMEOUT_SECONDS = 900


def cache_root(kind: str) -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / f"chimera-{kind}"


def node_missing() -> str | None:
    """Why Node.js tools cannot run here, or None when node and npm are on PATH."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    return f"{' and '.join(missing)} not on PATH" if missing else None


def npm_installed(
    package_dir: Path, cache: Path, name: str, log: Callable[[str], None] = lambda _: None
) -> tuple[Path, bool]:
    """The folder holding ``package_dir``'s packages installed by ``npm ci`` (installing them
    first unless a previous run did), and whether they were installed now."""
    npm = shutil.which("npm")
    if npm is None:
        raise FileNotFoundError("npm")
    digest = hashlib.sha256()
    for file in ("package.json", "package-lock.json"):
        digest.update((package_dir / file).read_bytes())
    directory = cache / f"{name}-{digest.hexdigest()[:12]}"
    marker = directory / ".installed"
    if marker.exists():
        return directory, False
    log(f"installing {name} with npm ci into {directory} (once)")
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    for file in ("package.json", "package-lock.json"):
        shutil.copy2(package_dir / file, directory / file)
    done = subprocess.run(
        [npm, "ci", "--omit=dev", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"npm ci of {name} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    marker.write_text("ok\n")
    return directory, True
