"""Registering trusted documents (an operator's action, from a client's build output)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from app.documents.manifest import Document
from app.stores.postgres.tables import trusted_document


async def add_documents(engine: AsyncEngine, documents: Sequence[Document]) -> int:
    """Register documents; how many were new. A document already registered is kept as it
    is (its id is its text's hash: the same id is the same text)."""
    if not documents:
        return 0
    unique = {d.id: d for d in documents}
    async with engine.begin() as conn:
        known = set(
            (
                await conn.execute(
                    select(trusted_document.c.id).where(trusted_document.c.id.in_(unique))
                )
            ).scalars()
        )
        rows = [
            {"id": d.id, "body": d.body, "name": d.name}
            for d in unique.values()
            if d.id not in known
        ]
        if rows:
            await conn.execute(insert(trusted_document).values(rows).on_conflict_do_nothing())
    return len(rows)


def registered_summary(added: int, kept: int) -> str:
    """What `chimera documents add` did, in words that agree with their numbers: an operator
    reads it after every client build, "1 documents" reads as a bug."""
    known = kept - added
    documents = "document" if added == 1 else "documents"
    were = "was" if known == 1 else "were"
    return f"{added} {documents} registered, {known} already {were} ({kept} in all)"
