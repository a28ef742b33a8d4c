"""graphql-http's audit and the graphql-sse client, run by Node against a served app.

The packages are pinned in this folder (package.json, package-lock.json) and installed once
per lock file into a cache (tests/node_packages.py); the scripts are copied beside them, as
Node resolves an ES module's imports from where the module lies.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

from tests.node_packages import cache_root, npm_installed
from tests.processes import ROOT

PACKAGES = ROOT / "tests" / "http_spec"
SCRIPTS = ("audit.mjs", "sse_client.mjs")


def install_tools() -> Path:
    directory, _ = npm_installed(PACKAGES, cache_root("tests"), "http-spec")
    for script in SCRIPTS:
        if (PACKAGES / script).exists():
            shutil.copy2(PACKAGES / script, directory / script)
    return directory


async def run_node(tools: Path, script: str, *args: str, timeout: float = 120) -> str:
    """A script's stdout; it runs beside an app served by this very event loop, so it is
    awaited rather than waited for."""
    process = await asyncio.create_subprocess_exec(
        "node",
        str(tools / script),
        *args,
        cwd=tools,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        raise AssertionError(f"{script} failed ({process.returncode}):\n{err.decode()}")
    return out.decode()


async def run_audit(tools: Path, url: str, token: str) -> list[dict[str, Any]]:
    """Every audit of the GraphQL over HTTP specification, one result each."""
    out = await run_node(tools, "audit.mjs", url, token)
    return [json.loads(line) for line in out.splitlines() if line.strip()]
