"""Reading the documents a client's build registers: the formats client tools write.

- Apollo's persisted query manifest (`generate-persisted-query-manifest`):
  ``{"format": "apollo-persisted-query-manifest", "operations": [{"id", "name", "body"}]}``;
- Relay's (and GraphQL Codegen's) ``{"<hash>": "<document>", ...}``;
- plain ``.graphql`` files, one document each, registered under their SHA-256.

Each id must be the SHA-256 (hex) of its body: that is what clients send as
``extensions.persistedQuery.sha256Hash``, and what lets the server trust a body it is given
again. A manifest whose ids are not (Relay's MD5 ids, say) is refused, naming the entry.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from graphql import GraphQLError, parse


@dataclass(frozen=True, slots=True)
class Document:
    id: str
    body: str
    name: str | None = None


class ManifestError(ValueError):
    pass


def sha256(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


def read_documents(path: Path) -> list[Document]:
    """The documents one file holds, each checked to parse and to match its id."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read it ({exc})") from exc
    if path.suffix in (".graphql", ".gql"):
        found = [Document(sha256(text), text, path.stem)]
    else:
        found = _from_json(path, text)
    for document in found:
        if sha256(document.body) != document.id:
            raise ManifestError(f"{path}: entry {document.id!r} is not the SHA-256 of its document")
        try:
            parse(document.body)
        except GraphQLError as exc:
            raise ManifestError(
                f"{path}: entry {document.id!r} does not parse: {exc.message}"
            ) from exc
    return found


def _from_json(path: Path, text: str) -> list[Document]:
    try:
        data = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, or an integer over 4,300 digits
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise ManifestError(f"{path}: not JSON ({reason}) and not a .graphql file") from exc
    if isinstance(data, dict) and data.get("format") == "apollo-persisted-query-manifest":
        operations = data.get("operations")
        if not isinstance(operations, list):
            raise ManifestError(f"{path}: an Apollo manifest without an operations list")
        documents = []
        for entry in operations:
            if not isinstance(entry, dict) or not isinstance(entry.get("body"), str):
                raise ManifestError(f"{path}: an operation without a body: {entry!r}"[:200])
            name = entry.get("name")
            documents.append(
                Document(
                    str(entry.get("id")), entry["body"], name if isinstance(name, str) else None
                )
            )
        return documents
    if isinstance(data, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        return [Document(key, body) for key, body in data.items()]
    raise ManifestError(
        f"{path}: neither an Apollo persisted query manifest nor a map of hash to document"
    )
