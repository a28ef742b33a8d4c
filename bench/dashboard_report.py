"""The dashboard benchmark's report: a table on the terminal, a dated section in the docs.

The docs keep only what a run produced: the bench rewrites the block between
``<!-- bench:dashboard:start -->`` and ``<!-- bench:dashboard:end -->`` in
docs/benchmarks.md (the prose around it is written by hand), and carries over a one-line
history of earlier runs, so reruns replace the table instead of appending forever.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

START = "<!-- bench:dashboard:start -->"
END = "<!-- bench:dashboard:end -->"
SECTION = "## Dashboard query: side by side with PostGraphile"
HISTORY_LINES = 12
TARGET_B_OVER_A = 1.5
TARGET_C_OVER_D = 3.0
TARGET_RSS = 1.10


@dataclass
class Report:
    config: dict[str, Any]
    started_at: str
    finished_at: str = ""
    total_s: float = 0.0
    code: dict[str, Any] = field(default_factory=dict)
    dataset: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    servers: dict[str, Any] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)
    store_calls: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    store_calls_vary: dict[str, list[str]] = field(default_factory=dict)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    rss_at_start: dict[str, int] = field(default_factory=dict)
    server_log_problems: dict[str, list[str]] = field(default_factory=dict)
    rss_drift: dict[str, Any] = field(default_factory=dict)
    warmups: dict[str, dict[str, Any]] = field(default_factory=dict)
    summary: dict[str, dict[str, Any]] = field(default_factory=dict)
    targets: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _mib(value: float) -> str:
    return f"{value / 2**20:.0f} MiB"


def _num(value: float) -> str:
    """A count per request: whole when it is (averages of identical requests should be)."""
    if math.isnan(value):
        return "n/a"
    return f"{round(value):d}" if abs(value - round(value)) < 1e-6 else f"{value:.2f}"


def calls_cell(calls: dict[str, Any]) -> str:
    """Store calls of one request, compactly: SQL statements (+ transaction control), vector
    statements, Redis commands."""
    parts = [f"SQL {_num(calls['postgres'])} (+{_num(calls['postgres_tx'])} tx)"]
    if calls["pgvector"] or calls["pgvector_tx"]:
        parts.append(f"pgvector {_num(calls['pgvector'])} (+{_num(calls['pgvector_tx'])} tx)")
    if calls["redis"]:
        commands = ", ".join(
            f"{name.upper()} {_num(n)}" for name, n in sorted(calls["redis_by_command"].items())
        )
        parts.append(f"Redis {_num(calls['redis'])} ({commands})")
    else:
        parts.append("Redis 0")
    return "; ".join(parts)


def _verdict(value: float | None, target: float, at_least: bool) -> str:
    if value is None or math.isnan(value):
        return "not measured"
    met = value >= target if at_least else value <= target
    return "met" if met else "**not met**"


def results_table(report: Report, labels: dict[str, str]) -> list[str]:
    s = report.summary
    base = s.get("A", {}).get("rps")
    lines = [
        "| setup | req/s, median (min-max) | p50 | p99 | app CPU/req | PostgreSQL CPU/req "
        "| store calls/req (page of 50) | RSS before → after | req/s vs A |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, row in s.items():
        calls = report.store_calls.get(key, {}).get("50")
        flag = (
            f" ({row['rounds_with_problems']} rounds with errors)"
            if row["rounds_with_problems"]
            else ""
        )
        ratio = f"{row['rps'] / base:.2f}x" if base else "n/a"
        lines.append(
            f"| {labels.get(key, key)}{flag} "
            f"| {row['rps']:,.0f} ({row['rps_min']:,.0f}-{row['rps_max']:,.0f}) "
            f"| {row['p50_ms']:.1f} ms | {row['p99_ms']:.1f} ms "
            f"| {row['app_cpu_ms']:.2f} ms | {row['pg_cpu_ms']:.2f} ms "
            f"| {calls_cell(calls) if calls else 'n/a'} "
            f"| {_mib(row['rss_before'])} → {_mib(row['rss_after'])} | {ratio} |"
        )
    return lines


def targets_lines(report: Report) -> list[str]:
    t = report.targets
    b_a = t.get("b_over_a_rps")
    c_d = t.get("c_over_d_app_cpu")
    rss = t.get("rss_10k_over_1k")
    lines = [
        f"- B req/s ÷ A req/s = **{b_a:.2f}x** (target ≥ {TARGET_B_OVER_A}x): "
        f"{_verdict(b_a, TARGET_B_OVER_A, True)}"
        if b_a is not None
        else "- B req/s ÷ A req/s: not measured (A or B missing)",
        f"- C app CPU per request ÷ D app CPU per request = **{c_d:.2f}x** "
        f"(target ≤ {TARGET_C_OVER_D}x): {_verdict(c_d, TARGET_C_OVER_D, False)}"
        if c_d is not None
        else "- C app CPU ÷ D app CPU: not measured (C or D missing)",
    ]
    drift = report.rss_drift
    if drift and drift["rss_after"]:
        points = ", ".join(f"{int(n):,} requests {_mib(b)}" for n, b in drift["rss_after"].items())
        value = "n/a" if rss is None or math.isnan(rss) else f"**{rss:.3f}**"
        lines.append(
            f"- RSS of a fresh app under query C: {_mib(drift['rss_start'])} at start, "
            f"{points}; ratio {value} (target ≤ {TARGET_RSS:.2f}): "
            f"{_verdict(rss, TARGET_RSS, False)}"
            + (f" ({'; '.join(drift['problems'])})" if drift["problems"] else "")
        )
    else:
        lines.append("- RSS after 10,000 ÷ after 1,000 requests: not measured")
    return lines


def store_calls_table(report: Report, labels: dict[str, str]) -> list[str]:
    sizes = sorted({int(s) for calls in report.store_calls.values() for s in calls})
    lines = [
        "| setup | store | " + " | ".join(f"first: {s}" for s in sizes) + " | same at every size |",
        "| --- | --- | " + " | ".join("---" for _ in sizes) + " | --- |",
    ]
    names = {
        "postgres": "PostgreSQL statements",
        "postgres_tx": "PostgreSQL BEGIN/COMMIT/ROLLBACK",
        "pgvector": "pgvector statements",
        "pgvector_tx": "pgvector BEGIN/COMMIT/ROLLBACK",
        "redis": "Redis commands",
    }
    for key, per_size in report.store_calls.items():
        for store, name in names.items():
            values = [per_size[str(s)][store] for s in sizes]
            if not any(values):
                continue
            same = len(set(values)) == 1
            cells = []
            for s in sizes:
                cell = _num(per_size[str(s)][store])
                if store == "redis" and per_size[str(s)]["redis_by_command"]:
                    detail = ", ".join(
                        f"{c.upper()} {_num(n)}"
                        for c, n in sorted(per_size[str(s)]["redis_by_command"].items())
                    )
                    cell += f" ({detail})"
                upkeep = per_size[str(s)].get("redis_upkeep") or {}
                if store == "redis" and upkeep:
                    shown = ", ".join(f"{c.upper()} {_num(n)}" for c, n in sorted(upkeep.items()))
                    cell += f" + pool upkeep {shown}"
                cells.append(cell)
            lines.append(
                f"| {labels.get(key, key)} | {name} | "
                + " | ".join(cells)
                + f" | {'yes' if same else '**no**'} |"
            )
    return lines


def environment_line(report: Report) -> str:
    m = report.machine
    code = report.code
    modified = code.get("modified") or []
    node = (
        f"PostGraphile {m['postgraphile']} on Node.js {m['node']}"
        if "postgraphile" in m
        else ("no PostGraphile (Node.js missing)")
    )
    return (
        f"{m.get('nproc')} cores ({m.get('cpu')}), Linux {m.get('kernel')}, "
        f"Python {m.get('python')}, PostgreSQL {m.get('postgresql')} (embedded), "
        f"{m.get('wrk')}, {node}; uvicorn {m.get('uvicorn')}, strawberry-graphql "
        f"{m.get('strawberry-graphql')}; code at {code.get('head')}"
        + (
            f" with {len(modified)} modified file{'s' if len(modified) > 1 else ''}"
            if modified
            else ""
        )
        + f" (sha256 of the served code {code.get('sha256')})"
    )


def history_line(report: Report) -> str:
    s = report.summary
    parts = [f"{k} {v['rps']:,.0f} req/s" for k, v in s.items()]
    t = report.targets
    extra = []
    if "b_over_a_rps" in t:
        extra.append(f"B/A {t['b_over_a_rps']:.2f}x")
    if "c_over_d_app_cpu" in t:
        extra.append(f"C/D app CPU {t['c_over_d_app_cpu']:.2f}x")
    if "rss_10k_over_1k" in t and not math.isnan(t["rss_10k_over_1k"]):
        counts = sorted(int(n) for n in report.rss_drift["rss_after"])
        extra.append(f"RSS {counts[-1]:,}/{counts[0]:,} requests {t['rss_10k_over_1k']:.3f}")
    return (
        f"- {report.started_at[:16].replace('T', ' ')} UTC, code {report.code.get('head')} "
        f"(served {str(report.code.get('sha256'))[:8]}): "
        + ", ".join(parts)
        + ("; " + ", ".join(extra) if extra else "")
    )


def block(report: Report, labels: dict[str, str], json_path: Path, history: list[str]) -> str:
    c = report.config
    lines = [
        START,
        "",
        "### Results",
        "",
        f"Last run: {report.started_at[:16].replace('T', ' ')} UTC, "
        f"{c['rounds']} rounds of {c['duration']:g} s per setup, wrk -t{c['threads']} "
        f"-c{c['connections']}, page of 50; {report.total_s / 60:.1f} minutes in all. "
        f"Machine: {environment_line(report)}. Raw numbers: `{json_path}` (not committed).",
        "",
    ]
    others = [r["other_cpu_cores"] for r in report.rounds]
    if others:
        lines += [
            f"Other work on the machine (not the servers, PostgreSQL, Redis or wrk) used "
            f"{min(others):.2f} to {max(others):.2f} cores during the rounds, median "
            f"{sorted(others)[len(others) // 2]:.2f}.",
            "",
        ]
    lines += [*results_table(report, labels), "", "From this run:", "", *targets_lines(report)]
    lines += ["", "Answers, checked before the load:", ""]
    for check in report.checks:
        lines.append(
            f"- {check['setup']}: {'ok' if check['ok'] else '**FAILED**'}, {check['detail']}"
        )
        lines.extend(f"  - `{d}`" for d in check["differences"][:5])
    problems = {k: v["problems"] for k, v in report.summary.items() if v["problems"]}
    for key, found in problems.items():
        lines.append(f"- {key} under load: **{', '.join(found)}**")
    for key, found in report.server_log_problems.items():
        shown = "; ".join(f"`{line}`" for line in found[:3])
        lines.append(f"- {key}'s server log (warm-up and rounds): {shown}")
    for note in report.notes:
        lines.append(f"- {note}")
    lines += [
        "",
        "Store calls per request by page size (`campaigns(first: N)`; nested pages stay at 5 "
        "agents, 4 media, 3 similar):",
        "",
        *store_calls_table(report, labels),
    ]
    if report.store_calls_vary:
        varying = "; ".join(f"{k}: {', '.join(v)}" for k, v in report.store_calls_vary.items())
        lines += ["", f"Counts that differ between page sizes: **{varying}**."]
    lines += ["", "Earlier runs (newest first):", "", *history, END]
    return "\n".join(lines)


def write_docs(path: Path, report: Report, labels: dict[str, str], json_path: Path) -> None:
    """Replace the bench's block in ``path`` (adding the section at the end if missing)."""
    text = path.read_text()
    if START not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n{SECTION}\n\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    old, tail = rest.split(END, 1)
    history = [history_line(report)]
    history += [line for line in old.splitlines() if line.startswith("- 20")]
    new = block(report, labels, json_path, history[:HISTORY_LINES])
    path.write_text(head + new + tail)


def print_report(report: Report, labels: dict[str, str]) -> None:
    print()
    print(f"Dashboard query, {report.started_at[:16]} UTC: {environment_line(report)}")
    print()
    for line in results_table(report, labels):
        print(line)
    print()
    for line in targets_lines(report):
        print(line)
    print()
    for check in report.checks:
        print(f"check {check['setup']}: {'ok' if check['ok'] else 'FAILED'}: {check['detail']}")
        for difference in check["differences"][:10]:
            print(f"    {difference}")
    print()
    for line in store_calls_table(report, labels):
        print(line)
    if report.store_calls_vary:
        print()
        print("Counts that differ between page sizes:", report.store_calls_vary)
    for note in report.notes:
        print("NOTE:", note)
