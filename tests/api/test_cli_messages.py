"""What the `chimera` command line says when it refuses something, and its exit status.

Each case here was a rough edge an operator hit: a refusal that exited 0, a traceback, a
message naming an internal column, or words that disagree with their numbers.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from app.commands.documents import registered_summary
from app.commands.tenants import create_tenant
from app.errors import BadUserInput
from app.stores.postgres.engine import create_engine
from tests.processes import CHIMERA, chimera_env, run_chimera, served_env
from tests.support import SECRET


def _new_tenant(env: dict[str, str]) -> str:
    slug = f"cli-{uuid.uuid4().hex[:12]}"
    created = run_chimera("tenant", "create", slug, env=env)
    assert created.returncode == 0, created.stderr
    return slug


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    """The line the CLI ends on (log lines at INFO may come before it)."""
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("document", "says"),
    [
        ("{ nosuchfield }", "Cannot query field 'nosuchfield' on type 'Query'."),
        ("query { campaigns(first: $n) { totalCount } }", "Variable '$n' is not defined."),
    ],
)
def test_explain_refuses_a_document_that_does_not_validate_in_one_line_with_exit_1(
    database_url: str,
    redis_url: str,
    pgvector_url: str,
    tmp_path: Path,
    document: str,
    says: str,
) -> None:
    env = served_env(database_url, redis_url, pgvector_url, tmp_path / "data")
    slug = _new_tenant(env)
    query = tmp_path / "invalid.graphql"
    query.write_text(document)
    result = run_chimera("explain", str(query), "--tenant", slug, env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == "", "an empty plan was printed for a query that never ran"
    assert _last_line(result) == f"chimera: error: the query did not run: {says}"


def test_explain_prints_the_plan_of_a_query_that_answered_with_errors_and_exits_1(
    database_url: str, redis_url: str, pgvector_url: str, tmp_path: Path
) -> None:
    env = served_env(database_url, redis_url, pgvector_url, tmp_path / "data")
    slug = _new_tenant(env)
    query = tmp_path / "field_error.graphql"
    query.write_text('{ node(id: "bogus") { id } }')
    table = run_chimera("explain", str(query), "--tenant", slug, env=env)
    assert table.returncode == 1, table.stdout + table.stderr
    assert "0 store calls: none" in table.stdout
    assert "error: Invalid id 'bogus' [\"node\"]" in table.stdout
    as_json = run_chimera("explain", str(query), "--tenant", slug, "--json", env=env)
    assert as_json.returncode == 1, as_json.stdout + as_json.stderr
    assert json.loads(as_json.stdout)["storeCalls"] == 0  # stdout is the plan alone
    assert _last_line(as_json) == "chimera: error: Invalid id 'bogus'"


@pytest.mark.parametrize("direction", [(), ("--downgrade",)])
def test_migrate_to_a_revision_alembic_cannot_find_is_one_line_not_a_traceback(
    database_url: str, direction: tuple[str, ...]
) -> None:
    result = run_chimera("migrate", *direction, "9999", env=chimera_env(DATABASE_URL=database_url))
    assert result.returncode == 1, result.stdout + result.stderr
    last = _last_line(result)
    assert last.startswith("chimera: error: Can't locate revision identified by '9999'; "), last
    assert "(head)" in last  # says where the revisions end


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("evil\x1b[31mred\nnewline", "'--name' must not contain control characters"),
        ("x" * 5000, "'--name' must be at most 200 characters"),
        ("   ", "'--name' must not be empty"),
    ],
)
def test_tenant_create_holds_the_name_to_the_apis_rules_for_names(
    database_url: str, redis_url: str, name: str, says: str
) -> None:
    env = chimera_env(DATABASE_URL=database_url, REDIS_URL=redis_url, CHIMERA_AUTH_SECRET=SECRET)
    slug = f"cli-{uuid.uuid4().hex[:12]}"
    refused = run_chimera("tenant", "create", slug, "--name", name, env=env)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stderr == f"chimera: error: {says}\n"
    created = run_chimera("tenant", "create", slug, "--name", "  Acme Inc.  ", env=env)
    assert created.returncode == 0, created.stderr  # nothing was left behind by the refusal


async def test_create_tenant_refuses_a_name_with_control_characters_for_every_caller(
    database_url: str,
) -> None:
    engine = create_engine(database_url, timeout=10)
    try:
        with pytest.raises(BadUserInput, match="'name' must not contain control characters"):
            await create_tenant(engine, f"cli-{uuid.uuid4().hex[:12]}", "bell\x07")
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--capacity", "0", "--capacity must be greater than 0"),
        ("--client-per-second", "-1.5", "--client-per-second must be greater than 0"),
        ("--per-second", "inf", "--per-second takes a number or 'default', not 'inf'"),
        ("--per-second", "nan", "--per-second takes a number or 'default', not 'nan'"),
    ],
)
def test_tenant_limits_names_the_flag_of_a_value_it_refuses(
    database_url: str, flag: str, value: str, says: str
) -> None:
    env = chimera_env(DATABASE_URL=database_url)
    refused = run_chimera("tenant", "limits", "acme-co", flag, value, env=env)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stderr == f"chimera: error: {says}\n"


def test_token_revoke_of_an_api_key_points_to_the_mutation_that_revokes_keys(
    database_url: str, redis_url: str
) -> None:
    env = chimera_env(DATABASE_URL=database_url, REDIS_URL=redis_url, CHIMERA_AUTH_SECRET=SECRET)
    key = "chk_abcdefABCDEF_" + "k" * 43
    refused = run_chimera("token", "revoke", key, env=env)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert "API key, not a token" in refused.stderr and "revokeApiKey" in refused.stderr


def test_documents_add_says_document_and_was_for_one(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = chimera_env(DATABASE_URL=database_url, REDIS_URL=redis_url, CHIMERA_AUTH_SECRET=SECRET)
    document = tmp_path / "One.graphql"
    document.write_text(f"query One{uuid.uuid4().hex} {{ viewer {{ role }} }}")
    first = run_chimera("documents", "add", str(document), env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout == "1 document registered, 0 already were (1 in all)\n"
    again = run_chimera("documents", "add", str(document), env=env)
    assert again.stdout == "0 documents registered, 1 already was (1 in all)\n"


@pytest.mark.parametrize(
    ("added", "kept", "line"),
    [
        (2, 3, "2 documents registered, 1 already was (3 in all)"),
        (1, 3, "1 document registered, 2 already were (3 in all)"),
        (0, 0, "0 documents registered, 0 already were (0 in all)"),
    ],
)
def test_registered_summary_agrees_in_number(added: int, kept: int, line: str) -> None:
    assert registered_summary(added, kept) == line


def test_a_command_that_makes_a_new_data_directory_says_where(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    # Another directory than the one `chimera serve` was started from: the default data
    # directory (.chimera, relative) does not exist there. Without a secret set, `token`
    # makes one there to keep a new secret in, which no running service knows.
    slug = _new_tenant(
        chimera_env(DATABASE_URL=database_url, REDIS_URL=redis_url, CHIMERA_AUTH_SECRET=SECRET)
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = chimera_env(DATABASE_URL=database_url, REDIS_URL=redis_url)

    def token() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CHIMERA, "token", "--tenant", slug],
            env=env,
            cwd=elsewhere,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    first = token()
    assert first.returncode == 0, first.stderr
    made = elsewhere / ".chimera"
    assert made.is_dir()
    assert first.stderr.startswith(
        f"chimera: note: created a new empty data directory at {made}; a running "
        "`chimera serve` keeps its data in the directory it was started from"
    ), first.stderr
    assert first.stderr.count("\n") == 1, first.stderr
    second = token()
    assert second.returncode == 0, second.stderr
    assert "created a new empty data directory" not in second.stderr
