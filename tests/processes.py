"""Running the `chimera` command the way a user does, in a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support import SECRET

CHIMERA = [sys.executable, "-m", "app.cli"]
ROOT = Path(__file__).resolve().parent.parent


def chimera_env(**overrides: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "REDIS_URL", "CHIMERA_"))
    }
    env.update(overrides)
    return env


def served_env(
    database_url: str, redis_url: str, pgvector_url: str, data_dir: Path, **extra: str
) -> dict[str, str]:
    """The environment of a `chimera` process on the test session's stores, with the
    session's token secret (tests/support.py mints tokens it accepts)."""
    return chimera_env(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        PGVECTOR_URL=pgvector_url,
        CHIMERA_AUTH_SECRET=SECRET,
        CHIMERA_DATA_DIR=str(data_dir),
        **extra,
    )


async def start_serve(
    env: dict[str, str], port: int, output: Path | None = None
) -> asyncio.subprocess.Process:
    """`chimera serve` on ``port``, once /readyz says every store answers; its output goes to
    ``output`` (else nowhere)."""
    with open(output, "w") if output else open(os.devnull, "w") as sink:  # noqa: ASYNC230
        process = await asyncio.create_subprocess_exec(
            *CHIMERA,
            "serve",
            "--no-seed",
            "--port",
            str(port),
            env=env,
            cwd=ROOT,
            stdout=sink,
            stderr=sink,
        )
    async with asyncio.timeout(120), httpx.AsyncClient() as client:
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"chimera serve exited with {process.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return process
            await asyncio.sleep(0.2)


def run_chimera(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CHIMERA, *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_for_port(
    port: int, process: subprocess.Popen[bytes], log: Path, what: str, timeout: float = 20
) -> None:
    """Until ``process`` listens on ``port`` of loopback; its log's end if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port}: {log.read_text()[-2000:]}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def closed_port_url(scheme: str) -> str:
    return f"{scheme}://127.0.0.1:{free_port()}/x"
