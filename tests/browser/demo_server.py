"""`chimera serve` as `make run` starts it, in a throwaway data directory: the demo tenant,
its data, and the dashboard signing in by itself. For `make screenshot` and the page's
benchmark (bench/dashboard_page.py), which look at what a newcomer sees."""

from __future__ import annotations

import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.processes import CHIMERA, ROOT, chimera_env, free_port


@contextmanager
def demo_server() -> Iterator[str]:
    """Yields the server's base URL once it answers; stops it (Ctrl-C) afterwards."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="chimera-demo-") as data_dir:
        server = subprocess.Popen(
            [*CHIMERA, "serve", "--port", str(port)],
            env=chimera_env(CHIMERA_DATA_DIR=str(Path(data_dir) / "data")),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_healthy(base, server)
            yield base
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _wait_healthy(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("chimera serve exited before it was ready")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit("chimera serve did not become healthy within 3 minutes")
