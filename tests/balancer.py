"""HAProxy on loopback in front of several app instances, as a production deployment has it.

The configuration is the one docs/scaling.md recommends (deploy/haproxy.cfg is its deployable
form): round robin over instances that `/readyz` says can serve, health-checked twice a second
so a dead instance leaves the rotation within about a second, a connection that fails retried
once on another instance (a request that reached an instance is never replayed: HAProxy's
default `retry-on conn-failure`, safe for mutations), and WebSockets held for as long as a
subscription lasts (`timeout tunnel`).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.processes import ROOT, free_port, wait_for_port

CONFIG = ROOT / "deploy" / "haproxy.cfg"


@dataclass(frozen=True)
class Balancer:
    port: int

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"


def haproxy_config(port: int, backends: Sequence[int]) -> str:
    """deploy/haproxy.cfg on loopback: its listening address and servers replaced by ours, and
    its `resolvers` section (Docker's DNS) left out."""
    lines: list[str] = []
    section = ""
    for line in CONFIG.read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            section = line.split()[0]
        stripped = line.strip()
        if section == "resolvers":
            continue
        if stripped.startswith("maxconn "):  # within any file-descriptor limit a CI has
            line = "  maxconn 1000"
        elif stripped.startswith("bind "):
            line = f"  bind 127.0.0.1:{port}"
        elif stripped.startswith(("server ", "server-template ")):
            lines.extend(
                f"  server app{index} 127.0.0.1:{backend} check"
                for index, backend in enumerate(backends)
            )
            continue
        lines.append(line)
    return "\n".join(lines) + "\n"


@contextmanager
def haproxy(backends: Sequence[int], directory: Path) -> Iterator[Balancer]:
    """HAProxy in the foreground, balancing over ``backends`` (ports on 127.0.0.1)."""
    binary = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
    if binary is None:
        pytest.skip("HAProxy is not installed (apt-get install haproxy; .ci/run installs it)")
    port = free_port()
    config = directory / "haproxy.cfg"
    config.write_text(haproxy_config(port, backends))
    log = (directory / "haproxy.log").open("w")
    process = subprocess.Popen(
        [binary, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_for_port(port, process, directory / "haproxy.log", "HAProxy")
        yield Balancer(port)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
