"""`chimera serve` on embedded defaults, as `make run` starts it: it seeds, prints a token
that works, keeps data across a restart, and Ctrl-C leaves nothing running."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import psutil

from tests.processes import CHIMERA, ROOT, chimera_env, free_port, run_chimera


def _engine_processes(data_dir: Path) -> list[psutil.Process]:
    """PostgreSQL and redis-server processes working on ``data_dir``.

    The postmaster names its data directory on its command line; redis-server rewrites its
    title to ``redis-server 127.0.0.1:<port>``, but both run with their working directory
    inside ``data_dir`` (redis-server chdirs to its ``--dir``)."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            name = proc.info["name"] or ""
            if name not in ("postgres", "redis-server") or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            cmdline = " ".join(proc.info["cmdline"] or [])
            if str(data_dir) in cmdline or Path(proc.cwd()).is_relative_to(data_dir):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def _kill_engines(data_dir: Path) -> None:
    """Leave nothing behind when a test about stopping engines fails."""
    for proc in _engine_processes(data_dir):
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()


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
        self._token_line = threading.Event()
        # The server's output is read all along, not only up to the token: a pipe nobody
        # reads fills (64 KiB) and then blocks the server's next log line, which looks like
        # a server that will not stop on Ctrl-C.
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        try:
            self.token = self._read_token()
            self.url = f"http://127.0.0.1:{self.port}/graphql"
            self._wait_healthy()
        except BaseException:  # a server that never came up is not left for another test
            self.proc.kill()
            self.proc.wait(timeout=30)
            self._close_output()
            raise

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            if "Bearer " in line:
                self._token_line.set()
        self._token_line.set()  # the server ended: no token will come

    def _read_token(self) -> str:
        self._token_line.wait(timeout=120)
        for line in list(self.output):
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
        try:
            code = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(
                "the server did not stop within 60 s of Ctrl-C; its output:\n"
                + "".join(self.output)
            ) from exc
        self._close_output()
        return code

    def _close_output(self) -> None:
        """Once the server has exited: the rest of its output read, the pipe closed."""
        self._reader.join(timeout=10)
        if self.proc.stdout is not None and not self._reader.is_alive():
            self.proc.stdout.close()

    def crash(self) -> None:
        """SIGKILL: no handler runs, so nothing the process started is stopped."""
        self.proc.kill()
        self.proc.wait(timeout=30)
        self._close_output()


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
        # A month of seeded engagement: counted by the relay, bucketed by day by the consumer.
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        window = (
            f'from: "{(today - timedelta(days=31)).isoformat()}", '
            f'to: "{(today + timedelta(days=1)).isoformat()}", bucket: DAY'
        )
        deadline = time.monotonic() + 60
        while True:
            seen = first.query(
                '{ campaigns(filter: {search: "Sustainable"}) { edges { node { '
                f"engagement {{ impressions }} metrics({window}) {{ impressions }} }} }} }} }}"
            )["data"]["campaigns"]["edges"][0]["node"]  # type: ignore[index]
            daily = [p["impressions"] for p in seen["metrics"]]
            if seen["engagement"]["impressions"] == sum(daily) > 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert seen["engagement"]["impressions"] == sum(daily) > 0, seen
        assert sum(1 for n in daily if n) >= 28, daily
        ide = httpx.get(first.url, headers={"Accept": "text/html"}, timeout=10)
        assert ide.status_code == 200 and "graphiql" in ide.text.lower()
        # The dashboard `make run` points to signs this machine's browser in by itself.
        assert f"Chimera dashboard: http://127.0.0.1:{first.port}/" in "".join(first.output)
        signed_in = httpx.post(f"http://127.0.0.1:{first.port}/dashboard/session", timeout=10)
        assert signed_in.status_code == 200 and signed_in.json()["tenant"] == "demo"
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


def test_after_a_crash_the_next_serve_owns_the_engines_and_ctrl_c_stops_them(
    tmp_path: Path,
) -> None:
    """A SIGKILLed `make run` leaves its PostgreSQL and Redis running, with files that still
    name it as their owner; the next `chimera serve` attaches to them and must then stop
    them on Ctrl-C, as the README promises."""
    data_dir = tmp_path / "data"
    try:
        crashed = Served(data_dir)
        crashed.query(
            'mutation { createAgent(input: {name: "Before the crash"}) { agent { id } } }'
        )
        crashed.crash()
        orphans = {proc.info["name"] for proc in _engine_processes(data_dir)}
        assert orphans == {"postgres", "redis-server"}, "the engines outlive a SIGKILL"

        restarted = Served(data_dir)
        try:
            found = restarted.query(
                '{ agents(filter: {search: "Before the crash"}) { totalCount } }'
            )
            assert found["data"] == {"agents": {"totalCount": 1}}
        finally:
            restarted.interrupt()
        assert _engine_processes(data_dir) == []
    finally:
        _kill_engines(data_dir)


def test_serve_prints_a_token_line_to_paste_into_a_shell_and_the_graphiql_header(
    tmp_path: Path,
) -> None:
    served = Served(tmp_path / "data")
    try:
        export = next(
            line.strip() for line in served.output if line.strip().startswith("export TOKEN=")
        )
        pasted = subprocess.run(
            ["bash", "-c", f'{export}\nprintf %s "$TOKEN"'],
            capture_output=True,
            text=True,
            check=True,
        )
        assert pasted.stdout == served.token
        header = next(line for line in served.output if '"Authorization"' in line)
        assert json.loads(header) == {
            "Authorization": f"Bearer {served.token}",
            "X-Chimera-Plan": "1",
        }
        assert served.query("{ viewer { tenant { slug } } }")["data"] == {
            "viewer": {"tenant": {"slug": "demo"}}
        }
    finally:
        served.interrupt()
    assert _engine_processes(tmp_path / "data") == []


def test_a_crash_mid_burst_leaves_counters_ledger_and_metrics_agreeing(tmp_path: Path) -> None:
    """SIGKILL while engagement and spends pour in: after a restart, Redis's counters, the
    ledger's totals and the per-minute metrics all agree with what committed."""
    data_dir = tmp_path / "data"
    try:
        served = Served(data_dir)
        found = served.query(
            '{ campaigns(filter: {search: "Fitness app"}) { edges { node { id } } } }'
        )
        campaign = found["data"]["campaigns"]["edges"][0]["node"]["id"]  # type: ignore[index]

        async def burst() -> int:
            mutations = [
                (
                    "mutation($c: ID!) { recordEngagement(input: {campaignId: $c, kind: CLICK, "
                    f"count: {i % 4 + 1}}}) {{ engagement {{ clicks }} }} }}"
                )
                if i % 3
                else (
                    "mutation($c: ID!) { recordTransaction(input: {campaignId: $c, kind: SPEND, "
                    f'amount: "{i}.25", idempotencyKey: "burst-{i}"}}) {{ transaction {{ id }} }} }}'
                )
                for i in range(120)
            ]
            done = 0
            async with httpx.AsyncClient(
                headers={"Authorization": f"Bearer {served.token}"}, timeout=10
            ) as client:

                async def send(query: str) -> None:
                    nonlocal done
                    with contextlib.suppress(httpx.HTTPError):
                        await client.post(
                            served.url, json={"query": query, "variables": {"c": campaign}}
                        )
                        done += 1
                        if done == 40:
                            served.crash()  # the rest are in flight or not yet sent

                await asyncio.gather(*(send(q) for q in mutations))
            return done

        assert asyncio.run(burst()) >= 40
        restarted = Served(data_dir)
        try:
            env = chimera_env(CHIMERA_DATA_DIR=str(data_dir))
            # Every day since the seeded month of history began, so that the buckets hold
            # everything the lifetime counters count.
            today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            window = (
                f'from: "{(today - timedelta(days=32)).isoformat()}", '
                f'to: "{(today + timedelta(days=1)).isoformat()}"'
            )
            deadline = time.monotonic() + 60
            while True:  # the relay counts, and the consumer buckets, what committed
                seen = restarted.query(
                    f'{{ campaign(id: "{campaign}") {{ spent engagement {{ clicks }} '
                    f"metrics({window}, bucket: DAY) {{ clicks spend }} }} }}"
                )["data"]["campaign"]  # type: ignore[index]
                clicks = sum(p["clicks"] for p in seen["metrics"])
                spend = sum(Decimal(p["spend"]) for p in seen["metrics"])
                if (clicks, spend) == (seen["engagement"]["clicks"], Decimal(seen["spent"])):
                    break
                assert time.monotonic() < deadline, seen
                time.sleep(0.5)
            check = run_chimera("reconcile", "--check", env=env)
            assert check.returncode == 0, check.stdout + check.stderr
            assert "ledger totals and metrics match their sources" in check.stdout
        finally:
            restarted.interrupt()
    finally:
        _kill_engines(data_dir)


def test_acknowledged_enqueues_survive_an_app_crash_and_a_redis_restart(tmp_path: Path) -> None:
    """SIGKILL mid-burst of enqueues, then the embedded Redis stopped and started again from
    its append-only file: every acknowledged task is there, and a runtime draining the queue
    is handed each task once."""
    data_dir = tmp_path / "data"
    try:
        served = Served(data_dir)
        agents = served.query("{ agents(first: 1) { edges { node { id } } } }")
        agent = agents["data"]["agents"]["edges"][0]["node"]["id"]  # type: ignore[index]
        enqueue = (
            'mutation($a: ID!, $k: String!) { enqueueTask(input: {agentId: $a, kind: "burst", '
            "idempotencyKey: $k}) { task { id } } }"
        )

        async def burst() -> set[str]:
            acknowledged: set[str] = set()
            async with httpx.AsyncClient(
                headers={"Authorization": f"Bearer {served.token}"}, timeout=10
            ) as client:

                async def send(i: int) -> None:
                    with contextlib.suppress(httpx.HTTPError):
                        response = await client.post(
                            served.url,
                            json={"query": enqueue, "variables": {"a": agent, "k": f"burst-{i}"}},
                        )
                        task = response.json()["data"]["enqueueTask"]["task"]
                        acknowledged.add(task["id"])
                        if len(acknowledged) == 60:
                            served.crash()  # the rest are in flight or not yet sent

                await asyncio.gather(*(send(i) for i in range(200)))
            return acknowledged

        acknowledged = asyncio.run(burst())
        assert len(acknowledged) >= 60
        # The engines outlived the crash; this run adopts them, and its Ctrl-C stops Redis
        # (which writes its append-only file); the next run starts Redis from that file.
        Served(data_dir).interrupt()
        restarted = Served(data_dir)
        try:
            env = chimera_env(CHIMERA_DATA_DIR=str(data_dir))
            minted = run_chimera(
                "token", "--tenant", "demo", "--agent", agent, "--role", "agent", env=env
            )
            assert minted.returncode == 0, minted.stderr
            runtime = minted.stdout.strip()
            claim = (
                "mutation { claimTasks(input: {max: 100, leaseSeconds: 600}) { leases { "
                "leaseToken task { id } } } }"
            )
            complete = (
                "mutation($id: ID!, $t: String!) { completeTask(input: {id: $id, "
                "leaseToken: $t}) { task { status } } }"
            )
            handed: list[str] = []
            with httpx.Client(headers={"Authorization": f"Bearer {runtime}"}, timeout=30) as client:
                while True:
                    body = client.post(restarted.url, json={"query": claim}).json()
                    leases = body["data"]["claimTasks"]["leases"]
                    if not leases:
                        break
                    for lease in leases:
                        handed.append(lease["task"]["id"])
                        done = client.post(
                            restarted.url,
                            json={
                                "query": complete,
                                "variables": {"id": lease["task"]["id"], "t": lease["leaseToken"]},
                            },
                        ).json()
                        assert done["data"]["completeTask"]["task"]["status"] == "SUCCEEDED"
            assert len(handed) == len(set(handed)), "a task was handed out twice"
            lost = acknowledged - set(handed)
            assert not lost, f"{len(lost)} acknowledged tasks lost"
        finally:
            restarted.interrupt()
    finally:
        _kill_engines(data_dir)
