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


@contextmanager
def moto_server() -> Iterator[str]:
    """The endpoint URL of a moto server that lives for the ``with`` block.

    Its output goes to a temporary file rather than a pipe, so a chatty server can never block
    on a full pipe, and the file is shown if the server fails to come up.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while not _answers(url):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    output = log.read().decode(errors="replace")
                    raise RuntimeError(
                        f"moto server on port {port} did not start "
                        f"(exit code {process.returncode}):\n{output}"
                    )
                time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
