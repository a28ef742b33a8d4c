"""What tracing costs a dashboard request: CPU per request with it off, and at 100% sampling.

Run: ``.venv/bin/python bench/tracing.py`` (``--help`` for the knobs). Over the dashboard
bench's engines and data (bench/dashboard_seed.py: one tenant, 1,000 campaigns), one run
serves query C (the full dashboard, 50 campaigns) from two or three servers of the same
code, each one uvicorn process:

  off     no OTEL_* variable: no provider, no instrumentation, no span;
  on      OTEL_EXPORTER_OTLP_ENDPOINT at a sink in this process, OTEL_TRACES_SAMPLER
          always_on: every request traced, its spans batched and exported over OTLP/HTTP;
  before  with ``--baseline REV``: the app as it was at REV (git archive), no variables:
          the hot path before tracing existed, to show that "off" costs nothing;
  LABEL   with ``--also "LABEL:VAR=VALUE;VAR=VALUE"`` (repeatable): as "on", with these
          variables too, e.g. ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=asyncpg,redis`` (no
          span per store call) or ``OTEL_TRACES_SAMPLER=always_off`` (everything in place,
          nothing recorded): where the CPU time of "on" goes.

In each round wrk loads all of them at once (``--one-at-a-time``: in turn), so that what
else the shared machine does in those seconds weighs on every setup alike; the bench
reports req/s, p50/p99 and each server's CPU per request, and the ratio to "off" within
each round and its median over the rounds. Then callgrind counts the instructions the app
executes per request, off and on (bench/profile_query.py in process, valgrind's count
repeats to about 0.1% on a quiet machine): the measure of the work itself, nearly free of
this machine's noise (a busy machine stretches the run, and the app's timed background
work with it, by a percent or two). The sink counts the export requests and spans it received, so that "on"
is shown to have really exported every request's spans. Results go to
.chimera-bench/results/tracing-*.json; docs/benchmarks.md quotes them by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from dashboard import auth_secret, say
from dashboard_measure import RoundResult, add_load_arguments, measure_round, post, run_wrk
from dashboard_queries import PAGE_SIZE, QUERY_C, request_body
from dashboard_seed import FULL, SMOKE, seed, start_engines
from dashboard_servers import Server, app_env, free_port, snapshot_code, uvicorn_argv
from redis import Redis

from app.auth import Role, mint_token

ROOT = Path(__file__).resolve().parent.parent
CODE_DIRS = ("app", "loaders", "resolvers", "migrations")


class Sink:
    """An OTLP/HTTP trace receiver on loopback that counts what it is sent (decoding the
    protobuf happens after the rounds, so that it takes no CPU while they run)."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a collector's receiver does

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if self.path == "/v1/traces":
                    sink.bodies.append(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def spans(self) -> int:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        count = 0
        for body in self.bodies:
            message = ExportTraceServiceRequest()
            message.ParseFromString(body)
            for resource in message.resource_spans:
                for scope in resource.scope_spans:
                    count += len(scope.spans)
        return count

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def baseline_code(rev: str, target: Path) -> Path:
    """The app's code at ``rev``, unpacked into ``target``."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", rev, *CODE_DIRS],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


INSTRUCTION_REQUESTS = 50


def count_instructions(server_url: str, redis_url: str, env: dict[str, str], log: Path) -> int:
    """Instructions the app executes for INSTRUCTION_REQUESTS dashboard requests, counted by
    callgrind: the same from run to run to about 0.1% (a percent or two when the machine is
    busy enough to stretch the run), where CPU time under wrk varies by a tenth between
    rounds. bench/profile_query.py drives the
    app in process (no HTTP server: the instrumentation, spans and export are all there)
    and switches counting on for its measured requests only."""
    argv = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={log.with_suffix('.callgrind')}",
        sys.executable,
        str(ROOT / "bench" / "profile_query.py"),
        f"--database-url={server_url}",
        f"--redis-url={redis_url}",
        "--query=C",
        f"--first={PAGE_SIZE}",
        f"--requests={INSTRUCTION_REQUESTS}",
        "--warmup=10",
        "--callgrind",
    ]
    # Tracing is on by ``env`` alone, not by OTEL_* variables of the shell that runs this.
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    with log.open("w") as out:
        subprocess.run(argv, env={**base, **env}, stdout=out, stderr=subprocess.STDOUT, check=True)
    match = re.search(r"Collected : (\d+)", log.read_text())
    if match is None:
        raise RuntimeError(f"callgrind reported no count; see {log}")
    return int(match.group(1))


def instructions_per_request(
    engines: Any, tracing: dict[str, str], run_dir: Path
) -> dict[str, float] | None:
    """Instructions per request off and on (100% sampled, exported), or None without
    valgrind."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        say("valgrind is not installed: no instruction counts (apt-get install valgrind)")
        return None
    counts: dict[str, float] = {}
    server_url = engines.sqlalchemy_url("postgres")
    for key, env in (("off", {}), ("on", tracing)):
        say(f"counting instructions, tracing {key} (a minute or two under valgrind)")
        total = count_instructions(
            server_url, engines.redis_url, env, run_dir / f"instructions-{key}.log"
        )
        counts[key] = total / INSTRUCTION_REQUESTS
        say(f"  {counts[key] / 1e6:.2f} M instructions a request")
    return counts


def variant(text: str) -> tuple[str, dict[str, str]]:
    """``LABEL:VAR=VALUE;VAR=VALUE`` as the label and its variables."""
    label, _, assignments = text.partition(":")
    variables = dict(a.split("=", 1) for a in assignments.split(";") if "=" in a)
    if not label or label in ("off", "on", "before") or not variables:
        raise argparse.ArgumentTypeError(f"expected LABEL:VAR=VALUE;..., got {text!r}")
    return label, variables


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_load_arguments(parser)
    parser.add_argument("--baseline", help="also serve the app as it was at this git revision")
    parser.add_argument("--smoke", action="store_true", help="150 campaigns, 2 s, 1 round")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".chimera-bench")
    parser.add_argument(
        "--one-at-a-time",
        action="store_true",
        help="load one setup after another in each round, not all of them at once",
    )
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        type=variant,
        metavar="LABEL:VAR=VALUE;...",
        help="also serve 'on' with these variables added or changed; repeatable",
    )
    parser.add_argument(
        "--no-instructions",
        action="store_true",
        help="skip the instruction counts under valgrind (about 3 minutes; never in --smoke)",
    )
    args = parser.parse_args(argv)
    dataset = SMOKE if args.smoke else FULL
    duration, rounds = (2.0, 1) if args.smoke else (args.duration, args.rounds)
    data_dir = args.data_dir.resolve()
    run_dir = data_dir / "run"
    run_dir.mkdir(parents=True, exist_ok=True)

    engines = start_engines(data_dir)
    sink = Sink()
    servers: dict[str, Server] = {}
    copies: list[Path] = []
    try:
        asyncio.run(seed(engines, dataset))
        secret = auth_secret(data_dir)
        token = mint_token(
            secret,
            tenant_id=dataset.tenant_id,
            tenant_slug=dataset.tenant_slug,
            role=Role.VIEWER,
            subject="bench",
            ttl_seconds=6 * 3600,
        )
        body = request_body(QUERY_C, {"first": PAGE_SIZE})
        body_file = run_dir / "body-tracing.json"
        body_file.write_bytes(body)

        current = snapshot_code(data_dir / "code-tracing")
        copies.append(current)
        code = {"off": current, "on": current}
        traced: dict[str, dict[str, str]] = {"on": {}}  # each traced setup's own variables
        for label, variables in args.also:
            code[label] = current
            traced[label] = variables
        if args.baseline:
            code["before"] = baseline_code(args.baseline, data_dir / "code-baseline")
            copies.append(code["before"])
        tracing = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint,
            "OTEL_TRACES_SAMPLER": "always_on",
            "OTEL_SERVICE_NAME": "chimera-bench",
            # Tracing alone: metrics stay on /metrics, as they are for "off".
            "OTEL_METRICS_EXPORTER": "none",
        }
        for key, root in code.items():
            port = free_port()
            env = app_env(
                database_url=engines.sqlalchemy_url(dataset.database),
                pgvector_url=engines.sqlalchemy_url(dataset.vector_database),
                redis_url=engines.redis_url,
                secret=secret,
                data_dir=data_dir / "app-data",
                port=port,
                code_root=root,
                **({**tracing, **traced[key]} if key in traced else {}),
            )
            server = Server(
                key=key,
                label=key,
                argv=uvicorn_argv("app.main:create_app", port),
                env=env,
                cwd=root,
                port=port,
                log_path=run_dir / f"server-tracing-{key.replace(' ', '-')}.log",
            )
            say(f"starting {key} on 127.0.0.1:{port}")
            server.start()
            servers[key] = server
            answer = post(server.url, body, token)
            if answer.get("errors") or len(answer["data"]["campaigns"]["edges"]) != PAGE_SIZE:
                raise RuntimeError(f"{key} answered wrongly: {json.dumps(answer)[:500]}")
        for server in servers.values():  # warm-up
            run_wrk(server.url, body_file, token, duration=2.0, connections=4, threads=2)
        postmaster = engines.postmaster_pid
        with contextlib.closing(Redis.from_url(engines.redis_url)) as client:
            redis_pid = int(client.info("server")["process_id"])
        results: list[RoundResult] = []
        exported_before = len(sink.bodies)
        for number in range(1, rounds + 1):

            def measured(key: str, number: int = number) -> RoundResult:
                return measure_round(
                    servers[key],
                    key,
                    number,
                    postmaster_pid=postmaster,
                    redis_pid=redis_pid,
                    body_file=body_file,
                    token=token,
                    duration=duration,
                    connections=args.connections,
                    threads=args.threads,
                )

            if args.one_at_a_time:
                in_round = [measured(key) for key in servers]
            else:
                # Every setup loaded in the same seconds: whatever else the machine does
                # then weighs on all of them alike, and their ratio keeps only what differs.
                with ThreadPoolExecutor(len(servers)) as pool:
                    in_round = list(pool.map(measured, servers))
            for key, result in zip(servers, in_round, strict=True):
                results.append(result)
                say(
                    f"round {number} {key:6}: {result.wrk.rps:7.1f} req/s  "
                    f"p50 {result.wrk.p50_ms:6.1f} ms  p99 {result.wrk.p99_ms:6.1f} ms  "
                    f"app CPU {result.app_cpu_ms:5.2f} ms/req"
                    + ("" if result.ok else "  PROBLEMS: " + ", ".join(result.wrk.problems))
                )
        time.sleep(6)  # the batch processor exports every 5 s
        spans = sink.spans()
        # Every traced setup exports to the one sink.
        traced_requests = sum(r.wrk.requests for r in results if r.setup in traced)
        summary = summarise(results)
        summary["exports"] = len(sink.bodies) - exported_before
        summary["spans_exported"] = spans
        summary["traced_requests"] = traced_requests
        if not (args.smoke or args.no_instructions):
            for server in servers.values():  # the counts run alone on the machine
                server.stop()
            counts = instructions_per_request(engines, tracing, run_dir)
            if counts is not None:
                summary["instructions_per_request"] = counts
                summary["instruction_ratio_on_to_off"] = counts["on"] / counts["off"]
        say(json.dumps(summary, indent=2))
        out = data_dir / "results" / f"tracing-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            json.dumps(
                {
                    "summary": summary,
                    "rounds": [asdict(r) for r in results],
                    "baseline": args.baseline,
                    "head": subprocess.run(
                        ["git", "rev-parse", "--short", "HEAD"],
                        cwd=ROOT,
                        capture_output=True,
                        text=True,
                    ).stdout.strip(),
                },
                indent=2,
                default=str,
            )
        )
        say(f"results: {out}")
        return 0 if all(r.ok for r in results) else 1
    finally:
        for server in servers.values():
            with contextlib.suppress(Exception):
                server.stop()
        sink.close()
        engines.stop()
        for copy in copies:
            shutil.rmtree(copy, ignore_errors=True)


def summarise(results: list[RoundResult]) -> dict[str, Any]:
    by: dict[str, dict[str, float]] = {}
    for key in dict.fromkeys(r.setup for r in results):
        mine = [r for r in results if r.setup == key]
        by[key] = {
            "rps": statistics.median(r.wrk.rps for r in mine),
            "p50_ms": statistics.median(r.wrk.p50_ms for r in mine),
            "p99_ms": statistics.median(r.wrk.p99_ms for r in mine),
            "app_cpu_ms_per_request": statistics.median(r.app_cpu_ms for r in mine),
        }
    off = by["off"]["app_cpu_ms_per_request"]
    rounds = sorted({r.round for r in results})
    per_round: dict[str, list[float]] = {}
    for key in by:
        for number in rounds:
            [result] = [r for r in results if r.setup == key and r.round == number]
            [base] = [r for r in results if r.setup == "off" and r.round == number]
            per_round.setdefault(key, []).append(result.app_cpu_ms / base.app_cpu_ms)
    return {
        "setups": by,
        "cpu_ratio_to_off": {k: v["app_cpu_ms_per_request"] / off for k, v in by.items()},
        # The ratio within each round (same seconds, same machine state), then its median.
        "cpu_ratio_to_off_by_round": per_round,
        "cpu_ratio_to_off_median_of_rounds": {
            k: statistics.median(v) for k, v in per_round.items()
        },
    }


if __name__ == "__main__":
    sys.exit(main())
