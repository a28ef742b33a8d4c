"""moto's standalone server, for tests that must talk to S3 over real HTTP.

In-process mocking (``mock_aws``) patches botocore, so it never sees a URL a browser would
fetch. Presigned URLs are fetched by clients that are not botocore, so their tests need a
server listening on a socket.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from tests.processes import free_port

STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP status means the server is up
    except OSError:
        return False


class MotoServer:
    """One moto server process on a fixed port; stop and start it again to fake an outage.

    Its output goes to a temporary file rather than a pipe, so a chatty server can never block
    on a full pipe, and the file is shown if the server fails to come up. moto keeps its state
    in memory, so a restarted server starts empty.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log: IO[bytes] | None = None

    def start(self) -> None:
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop(), not in this scope
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not _answers(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.log.seek(0)
                output = self.log.read().decode(errors="replace")
                self.stop()
                raise RuntimeError(f"moto server on port {self.port} did not start:\n{output}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        if self.log is not None:
            self.log.close()
            self.log = None


@contextmanager
def moto_server() -> Iterator[str]:
    """The endpoint URL of a moto server that lives for the ``with`` block."""
    server = MotoServer()
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
