"""`chimera schema-check`: breaking schema changes fail unless CHANGELOG.md announces them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from app.schema_changes import announced, check, compare

BEFORE = """type Query { campaign(id: ID!): Campaign, campaigns(first: Int): [Campaign!]! }
type Campaign { id: ID!, name: String!, budget: Int }
enum Status { ACTIVE PAUSED }
"""


def git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q")
    (tmp_path / "schema.graphql").write_text(BEFORE)
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "first")
    return tmp_path


def kinds(old: str, new: str) -> list[str]:
    breaking, _ = compare("schema.graphql", old, new)
    return [change.kind for change in breaking]


def test_removed_fields_changed_types_and_new_required_arguments_are_breaking() -> None:
    assert kinds(BEFORE, BEFORE.replace("budget: Int", "")) == ["FIELD_REMOVED"]
    assert kinds(BEFORE, BEFORE.replace("budget: Int", "budget: String")) == ["FIELD_CHANGED_KIND"]
    assert kinds(BEFORE, BEFORE.replace("first: Int", "first: Int, tenant: ID!")) == [
        "REQUIRED_ARG_ADDED"
    ]


def test_additions_are_not_breaking() -> None:
    added = BEFORE.replace("budget: Int", "budget: Int, goal: String") + "type Extra { x: Int }"
    assert kinds(BEFORE, added) == []


def test_a_change_is_announced_by_its_line_or_its_coordinate_in_the_unreleased_section() -> None:
    [change], _ = compare("schema.graphql", BEFORE, BEFORE.replace("budget: Int", ""))
    assert change.coordinate == "Campaign.budget"
    assert announced(change, "## Unreleased\n- Removed `Campaign.budget`: use spend.\n")
    assert announced(change, f"## Unreleased\n- {change.description}\n")
    # Only the Unreleased section counts: an old release's note does not cover a new break.
    assert not announced(change, "## Unreleased\n\n## 1.0.0\n- Removed `Campaign.budget`\n")
    assert not announced(change, "- Removed `Campaign.budget`\n")


def test_check_fails_an_unannounced_break_against_the_parent_commit(repo: Path) -> None:
    (repo / "schema.graphql").write_text(BEFORE.replace("budget: Int", ""))
    git(repo, "commit", "-qam", "drop budget")
    report = check(repo)
    assert report is not None
    assert [c.description for c in report.unannounced] == ["Field Campaign.budget was removed."]

    (repo / "CHANGELOG.md").write_text(
        "# Changelog\n\n## Unreleased\n- `Campaign.budget` removed\n"
    )
    report = check(repo)
    assert report is not None and report.breaking and not report.unannounced


def test_check_compares_with_the_latest_release_tag_when_there_is_one(repo: Path) -> None:
    git(repo, "tag", "v1.0.0")
    (repo / "schema.graphql").write_text(BEFORE.replace("PAUSED", ""))
    git(repo, "commit", "-qam", "one")
    (repo / "schema.graphql").write_text(BEFORE.replace("PAUSED", "PAUSED DONE"))
    git(repo, "commit", "-qam", "two")  # restores PAUSED: nothing broke since v1.0.0
    report = check(repo)
    assert report is not None and report.base == "v1.0.0"
    assert report.breaking == []


def test_without_history_there_is_nothing_to_compare(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / "schema.graphql").write_text(BEFORE)
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "only")
    assert check(tmp_path) is None
