"""A Redis Cluster on loopback, for the tests that run the app on one: six redis-servers
(three primaries, three replicas) from the same binary the embedded Redis uses, joined by
`redis-cli --cluster create`, as an operator would, and stopped afterwards.

A short `cluster-node-timeout` (2 s) makes a replica take over a killed primary within a few
seconds, which the failover tests need; production clusters keep the default 15 s.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette

from app import migrations
from app.main import create_app
from app.settings import Settings
from app.stores.postgres.engine import create_engine
from app.stores.redis.embedded import redis_server_binary
from tests.engines import create_database, drop_database
from tests.processes import free_port, wait_for_port

NODE_TIMEOUT_MS = 2000


@dataclass
class Node:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class LoopbackCluster:
    nodes: list[Node] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The app's REDIS_URL for this cluster: any node is a way in; the client learns the
        others from it."""
        return f"redis+cluster://{self.nodes[0].address}/0"

    def primaries(self) -> list[Node]:
        """The nodes serving slots now (a replica that took over included)."""
        ports = {
            int(fields[1].split("@")[0].rsplit(":", 1)[1])
            for fields in self._view(self._alive()[0])
            if "master" in fields[2] and "fail" not in fields[2] and len(fields) > 8
        }
        return [node for node in self.nodes if node.port in ports]

    def _view(self, node: Node) -> list[list[str]]:
        """CLUSTER NODES as one node sees it, split into fields."""
        text = self._cluster(node, "NODES")
        return [line.split() for line in text.splitlines() if line.strip()]

    def kill(self, node: Node) -> None:
        node.process.send_signal(signal.SIGKILL)
        node.process.wait()

    def _alive(self) -> list[Node]:
        return [node for node in self.nodes if node.process.poll() is None]

    @staticmethod
    def _cluster(node: Node, subcommand: str) -> str:
        """A CLUSTER subcommand's text reply (redis-py parses it only on a cluster client)."""
        with redis.Redis(host="127.0.0.1", port=node.port, socket_timeout=5) as client:
            reply = client.execute_command("CLUSTER", subcommand)
        return reply.decode() if isinstance(reply, bytes) else str(reply)

    def wait_until_healthy(self, replicas: int = 0, timeout: float = 60) -> None:
        """Until every live node says the cluster is ok with every slot served, and sees
        ``replicas`` replicas attached to a live primary."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                alive = self._alive()
                texts = [self._cluster(node, "INFO") for node in alive]
                ok = all("cluster_state:ok" in t and "cluster_slots_ok:16384" in t for t in texts)
                attached = [
                    sum(1 for f in self._view(node) if "slave" in f[2] and "fail" not in f[2])
                    for node in alive
                ]
                if ok and all(count >= replicas for count in attached):
                    return
            except redis.RedisError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the Redis Cluster did not become healthy")

    def wait_until_replaced(self, killed: Node, timeout: float = 60) -> None:
        """Until a replica has taken over the slots of ``killed``, a primary, and the
        cluster is healthy again. (Right after a kill the cluster still says it is healthy:
        its nodes notice a dead one only after `cluster-node-timeout`.)"""
        deadline = time.monotonic() + timeout
        while killed in self.primaries():
            if time.monotonic() > deadline:
                raise RuntimeError(f"no replica took over from {killed.address}")
            time.sleep(0.2)
        self.wait_until_healthy(timeout=max(deadline - time.monotonic(), 1))


def _cli() -> str:
    server = Path(redis_server_binary())
    beside = server.with_name("redis-cli")
    if beside.exists():
        return str(beside)
    found = shutil.which("redis-cli")
    if found is None:
        raise RuntimeError("no redis-cli beside redis-server or on PATH")
    return found


def node_port() -> int:
    """A free port whose cluster bus port (10,000 above it) is free too."""
    for _ in range(1000):
        port = free_port()
        if port > 55535:
            continue
        try:
            with socket.socket() as bus:
                bus.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


@contextmanager
def loopback_cluster(directory: Path, size: int = 6) -> Iterator[LoopbackCluster]:
    """``size`` nodes, one replica per primary, all slots assigned; stopped on exit."""
    binary = redis_server_binary()
    cluster = LoopbackCluster()
    try:
        for _ in range(size):
            port = node_port()
            home = directory / f"node-{port}"
            home.mkdir(parents=True)
            log = home / "redis.log"
            process = subprocess.Popen(
                [
                    binary,
                    "--port", str(port),
                    "--bind", "127.0.0.1",
                    "--dir", str(home),
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                    "--save", "",
                    "--appendonly", "no",
                    "--logfile", str(log),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env={**os.environ},
            )  # fmt: skip
            cluster.nodes.append(Node(port, process))
            wait_for_port(port, process, log, "redis-server")
        created = subprocess.run(
            [
                _cli(),
                "--cluster", "create",
                *(node.address for node in cluster.nodes),
                "--cluster-replicas", "1",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )  # fmt: skip
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout}")
        cluster.wait_until_healthy(replicas=size // 2)
        yield cluster
    finally:
        for node in cluster.nodes:
            if node.process.poll() is None:
                node.process.terminate()
        for node in cluster.nodes:
            try:
                node.process.wait(10)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()


@asynccontextmanager
async def app_on_cluster(
    settings: Settings, pg_server_url: str, cluster: LoopbackCluster, data_dir: Path
) -> AsyncIterator[Starlette]:
    """The test session's app configuration with the cluster as its Redis, on a database of
    its own: the session app's relay, on the single Redis, would otherwise publish this
    app's events there."""
    database = await create_database(pg_server_url, prefix="chimera_cluster")
    try:
        engine = create_engine(database, timeout=10)
        try:
            await migrations.upgrade(engine)
        finally:
            await engine.dispose()
        application = create_app(
            settings.model_copy(
                update={"database_url": database, "redis_url": cluster.url, "data_dir": data_dir}
            )
        )
        async with LifespanManager(application):
            yield application
    finally:
        await drop_database(database)
