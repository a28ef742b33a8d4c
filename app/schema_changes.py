"""Breaking changes between a released schema and this one, and whether CHANGELOG.md owns them.

Clients and gateways hold queries written against the schema as it was: a removed field, a
changed type or a new required argument breaks them. graphql-core's ``find_breaking_changes``
names each such change; one that the ``## Unreleased`` section of CHANGELOG.md does not list
(its description, or the schema coordinate it names, in backticks) fails the check, so a break
can still be made, but only on purpose and announced. Run by ``make lint`` and CI against the
latest release tag (``v*``), or main's parent commit when there is none.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from graphql import GraphQLSchema, build_schema, find_breaking_changes, find_dangerous_changes

SCHEMA_FILES = ("schema.graphql", "schema.federation.graphql")
UNRELEASED = re.compile(
    r"^## +Unreleased\b.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL | re.IGNORECASE
)
# A schema coordinate: Type, Type.field, Type.field(argument:).
COORDINATE = re.compile(r"[A-Za-z_]\w*(?:\.\w+(?:\(\w+:\))?)?")


@dataclass(frozen=True)
class SchemaChange:
    file: str
    kind: str
    description: str

    @property
    def coordinate(self) -> str:
        """The field or type the change is about, as graphql-core's description names it:
        its first ``Type.field``, else its first capitalised name (``Campaign``)."""
        names = [m.group() for m in COORDINATE.finditer(self.description)]
        dotted = [name for name in names if "." in name]
        if dotted:
            return dotted[0]
        types = [name for name in names if name[:1].isupper() and name not in ("A", "An")]
        return types[0] if types else self.description


@dataclass(frozen=True)
class Report:
    base: str
    breaking: list[SchemaChange]
    unannounced: list[SchemaChange]
    dangerous: list[SchemaChange]


def _schema(sdl: str) -> GraphQLSchema:
    # The federation SDL applies directives it imports with @link rather than defines.
    return build_schema(sdl, assume_valid_sdl=True)


def compare(file: str, old_sdl: str, new_sdl: str) -> tuple[list[SchemaChange], list[SchemaChange]]:
    """The breaking and the dangerous changes from ``old_sdl`` to ``new_sdl``."""
    old, new = _schema(old_sdl), _schema(new_sdl)
    breaking = [
        SchemaChange(file, c.type.name, c.description) for c in find_breaking_changes(old, new)
    ]
    dangerous = [
        SchemaChange(file, c.type.name, c.description) for c in find_dangerous_changes(old, new)
    ]
    return breaking, dangerous


def announced(change: SchemaChange, changelog: str) -> bool:
    """Whether the Unreleased section lists the change, by its description or as
    `Coordinate` in backticks."""
    section = UNRELEASED.search(changelog)
    if section is None:
        return False
    text = section.group()
    return change.description in text or f"`{change.coordinate}`" in text


def release_base(root: Path) -> str | None:
    """The latest release tag reachable from HEAD, else HEAD's parent, else None."""
    tag = _git(root, "describe", "--tags", "--abbrev=0", "--match", "v*", "HEAD")
    if tag:
        return tag
    return _git(root, "rev-parse", "--verify", "--quiet", "HEAD^")


def check(root: Path, base: str | None = None) -> Report | None:
    """The report against ``base`` (default: :func:`release_base`); None without a base."""
    base = base or release_base(root)
    if base is None:
        return None
    changelog_path = root / "CHANGELOG.md"
    changelog = changelog_path.read_text() if changelog_path.exists() else ""
    breaking: list[SchemaChange] = []
    dangerous: list[SchemaChange] = []
    for file in SCHEMA_FILES:
        old = _git(root, "show", f"{base}:{file}")
        current = root / file
        if old is None or not current.exists():
            continue  # new in this change, or not in this checkout: nothing to break
        found, risky = compare(file, old, current.read_text())
        breaking += found
        dangerous += risky
    unannounced = [change for change in breaking if not announced(change, changelog)]
    return Report(base, breaking, unannounced, dangerous)


def _git(root: Path, *args: str) -> str | None:
    done = subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=False, timeout=60
    )
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None
