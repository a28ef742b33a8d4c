"""Hive Gateway and its composition library, for the federation test and `make supergraph`.

The packages are pinned in this folder (package.json, package-lock.json) and installed once
per lock file into a cache (tests/node_packages.py); Node.js runs only for tests and tooling.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from tests.node_packages import cache_root, npm_installed
from tests.processes import ROOT, free_port

PACKAGES = ROOT / "tests" / "federation"
GATEWAY_CONFIG = ROOT / "deploy" / "gateway" / "gateway.config.mjs"
START_TIMEOUT = 90.0


def install_gateway() -> Path:
    """The installed packages, with the scripts beside them: Node resolves an ES module's
    imports from where the module lies, not from NODE_PATH."""
    directory, _ = npm_installed(PACKAGES, cache_root("tests"), "federation-gateway")
    shutil.copy2(PACKAGES / "compose.mjs", directory / "compose.mjs")
    shutil.copy2(GATEWAY_CONFIG, directory / "gateway.config.mjs")
    return directory


def compose(packages: Path, services: list[dict[str, str]], supergraph: Path) -> None:
    """Compose ``services`` ({name, url, sdl}) into ``supergraph``, or fail with the
    composition's errors."""
    spec = supergraph.with_suffix(".services.json")
    spec.write_text(json.dumps(services))
    done = subprocess.run(
        ["node", str(packages / "compose.mjs"), str(spec), str(supergraph)],
        cwd=packages,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    spec.unlink()
    if done.returncode != 0:
        raise AssertionError(f"composition failed:\n{done.stderr}")


@asynccontextmanager
async def hive_gateway(packages: Path, supergraph: Path, work: Path) -> AsyncIterator[str]:
    """Hive Gateway serving ``supergraph`` on loopback until the block ends; yields its URL
    once it reports ready."""
    port = free_port()
    log_path = work / "gateway.log"
    with log_path.open("w") as log:
        process = await asyncio.create_subprocess_exec(
            str(packages / "node_modules" / ".bin" / "hive-gateway"),
            "supergraph",
            str(supergraph),
            "--config-path",
            str(packages / "gateway.config.mjs"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            cwd=packages,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            await _until_ready(process, url, log_path)
            yield url
        finally:
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 15)
                except TimeoutError:
                    process.kill()
                    await process.wait()


async def _until_ready(process: asyncio.subprocess.Process, url: str, log: Path) -> None:
    async with asyncio.timeout(START_TIMEOUT), httpx.AsyncClient(timeout=2) as http:
        while True:
            if process.returncode is not None:
                output = await asyncio.to_thread(log.read_text)
                raise AssertionError(f"the gateway exited:\n{output}")
            try:
                if (await http.get(f"{url}/readiness")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
