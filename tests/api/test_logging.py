"""What `chimera serve` and `chimera worker` log: every line timestamped, with its level, at
the threshold CHIMERA_LOG_LEVEL sets, uvicorn's lines included."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.processes import CHIMERA, ROOT, free_port, served_env

# 2026-12-02T09:47:41.123+00:00 INFO uvicorn.error: Application startup complete.
LINE = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{2}:\d{2} "
    r"(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL) (?P<logger>[\w.]+): "
)


def _run_until(
    args: list[str], env: dict[str, str], ready: str, tmp_path: Path, *, poke: str | None = None
) -> list[str]:
    """Start a `chimera` command, wait until stdout shows ``ready`` (and GET ``poke`` once),
    Ctrl-C it, and return its stderr: where logs go."""
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            [*CHIMERA, *args], env=env, cwd=ROOT, stdout=stdout, stderr=stderr
        )
    try:
        deadline = time.monotonic() + 120
        while ready not in out.read_text():
            assert process.poll() is None, err.read_text()
            assert time.monotonic() < deadline, f"no {ready!r}:\n{err.read_text()}"
            time.sleep(0.1)
        if poke:
            while True:
                try:
                    httpx.get(poke, timeout=1)
                    break
                except httpx.HTTPError:
                    assert time.monotonic() < deadline, err.read_text()
                    time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    return err.read_text().splitlines()


def _env(
    database_url: str, redis_url: str, pgvector_url: str, tmp_path: Path, **extra: str
) -> dict[str, str]:
    return served_env(
        database_url,
        redis_url,
        pgvector_url,
        tmp_path / "data",
        CHIMERA_INDEXER="false",
        CHIMERA_RELAY="false",
        **extra,
    )


def test_serve_logs_timestamped_lines_uvicorns_included(
    database_url: str, redis_url: str, pgvector_url: str, tmp_path: Path
) -> None:
    port = free_port()
    lines = _run_until(
        ["serve", "--no-seed", "--port", str(port)],
        _env(database_url, redis_url, pgvector_url, tmp_path),
        "Chimera GraphQL:",
        tmp_path,
        poke=f"http://127.0.0.1:{port}/graphql?query=%7B__typename%7D",
    )
    assert lines, "serve logged nothing"
    unformatted = [line for line in lines if not LINE.match(line)]
    assert unformatted == []
    loggers = {m["logger"] for line in lines if (m := LINE.match(line))}
    assert {"uvicorn.error", "chimera.access"} <= loggers
    assert any("Application startup complete" in line for line in lines)
    # The app's access line replaces uvicorn's: one per request, with its duration, and the
    # path without its query string.
    [access] = [line for line in lines if " chimera.access: " in line]
    assert re.search(r"chimera\.access: GET /graphql \d{3} \d+\.\d ms", access), access
    assert "__typename" not in access
    assert not [line for line in lines if " uvicorn.access: " in line]


def test_serve_logs_json_lines_in_production_format(
    database_url: str, redis_url: str, pgvector_url: str, tmp_path: Path
) -> None:
    port = free_port()
    lines = _run_until(
        ["serve", "--no-seed", "--port", str(port)],
        _env(database_url, redis_url, pgvector_url, tmp_path, CHIMERA_LOG_FORMAT="json"),
        "Chimera GraphQL:",
        tmp_path,
        poke=f"http://127.0.0.1:{port}/graphql?query=%7B__typename%7D",
    )
    records = [json.loads(line) for line in lines]
    for record in records:
        assert {"timestamp", "level", "logger", "message"} <= record.keys(), record
        assert LINE.match(f"{record['timestamp']} {record['level']} {record['logger']}: ")
    [access] = [r for r in records if r["logger"] == "chimera.access"]
    assert access["method"] == "GET" and access["path"] == "/graphql"
    assert access["status"] >= 200 and access["duration_ms"] >= 0


def test_log_level_comes_from_chimera_log_level(
    database_url: str, redis_url: str, pgvector_url: str, tmp_path: Path
) -> None:
    port = free_port()
    quiet = _run_until(
        ["serve", "--no-seed", "--port", str(port)],
        _env(database_url, redis_url, pgvector_url, tmp_path, CHIMERA_LOG_LEVEL="warning"),
        "Chimera GraphQL:",
        tmp_path,
        poke=f"http://127.0.0.1:{port}/healthz",
    )
    assert [line for line in quiet if " INFO " in line or " DEBUG " in line] == []

    verbose = _run_until(
        ["worker"],
        _env(database_url, redis_url, pgvector_url, tmp_path, CHIMERA_LOG_LEVEL="DEBUG"),
        "running",
        tmp_path,
    )
    debug = [m for line in verbose if (m := LINE.match(line)) and m["level"] == "DEBUG"]
    assert debug, "\n".join(verbose)
