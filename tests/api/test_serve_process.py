"""`chimera serve` on embedded defaults, as `make run` starts it: it seeds, prints a token
that works, keeps data across a restart, and Ctrl-C leaves nothing running."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import psutil

from tests.processes import CHIMERA, ROOT, chimera_env, free_port


def _engine_processes(data_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(data_dir) in cmdline and ("postgres" in cmdline or "redis-server" in cmdline):
            found.append(proc)
    return found


class Served:
    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [*CHIMERA, "serve", "--port", str(self.port)],
            env=chimera_env(CHIMERA_DATA_DIR=str(data_dir)),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output: list[str] = []
        self.token = self._read_token()
        self.url = f"http://127.0.0.1:{self.port}/graphql"
        self._wait_healthy()

    def _read_token(self) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.output.append(line)
            match = re.search(r"Bearer ([\w.-]+)", line)
            if match:
                return match.group(1)
        raise AssertionError("no token printed:\n" + "".join(self.output))

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError("service did not become healthy")

    def query(self, query: str) -> dict[str, object]:
        response = httpx.post(
            self.url,
            json={"query": query},
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        if "errors" in body:  # the server's log says why; it is read after stopping it
            self.interrupt()
            raise AssertionError(f"{body}\nserver log:\n{''.join(self.output)}")
        return body

    def interrupt(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=60)
        if self.proc.stdout is not None and not self.proc.stdout.closed:
            self.output.extend(self.proc.stdout.readlines())
            self.proc.stdout.close()
        return code


def test_serve_seeds_keeps_data_across_restart_and_ctrl_c_stops_every_engine(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    first = Served(data_dir)
    try:
        assert "Chimera GraphQL: http://127.0.0.1" in "".join(first.output)
        seeded = first.query("{ viewer { tenant { slug } } campaigns { totalCount } }")
        assert seeded["data"] == {
            "viewer": {"tenant": {"slug": "demo"}},
            "campaigns": {"totalCount": 6},
        }
        first.query('mutation { createAgent(input: {name: "Survivor"}) { agent { id } } }')
        # The in-process indexer embeds the demo data shortly after start.
        deadline = time.monotonic() + 60
        while True:
            found = first.query(
                '{ semanticSearch(query: "eco-friendly clothes made from recycled '
                'materials", types: [CAMPAIGN], limit: 1) { node { ... on Campaign '
                "{ name } } } }"
            )
            hits = found["data"]["semanticSearch"]  # type: ignore[index]
            if hits or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert hits == [{"node": {"name": "Sustainable fashion spring drop"}}]
        ide = httpx.get(first.url, headers={"Accept": "text/html"}, timeout=10)
        assert ide.status_code == 200 and "graphiql" in ide.text.lower()
    finally:
        first.interrupt()
    assert _engine_processes(data_dir) == []

    second = Served(data_dir)
    try:
        found = second.query(
            '{ agents(filter: {search: "Survivor"}) { totalCount } campaigns { totalCount } }'
        )
        assert found["data"] == {"agents": {"totalCount": 1}, "campaigns": {"totalCount": 6}}
    finally:
        second.interrupt()
    assert _engine_processes(data_dir) == []
