"""Query.semanticSearch: by text (embedded here) or by the client's own vector."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

import strawberry

from app.cost.directives import EMBEDDED_TEXT, vector_search
from app.errors import BadUserInput
from app.stores.vectors.port import DIMENSIONS, VectorHit, VectorKind
from app.validation import clean_search_text
from loaders.registry import Loaders
from loaders.vectors.search import SearchKey
from resolvers.agents.types import Agent
from resolvers.batching import settle
from resolvers.campaigns.types import Campaign
from resolvers.info import Info
from resolvers.media.types import MediaAsset
from resolvers.memories.types import AgentMemory
from resolvers.search.limits import MAX_LIMIT
from resolvers.search.types import SearchHit, SearchResult, SearchType

Builder = tuple[Callable[[Loaders, Any], Awaitable[Any]], Callable[[Any], SearchResult]]

BUILDERS: dict[VectorKind, Builder] = {
    VectorKind.CAMPAIGN: (lambda ls, pk: ls.campaign_by_id.load(pk), Campaign.from_row),
    VectorKind.AGENT: (lambda ls, pk: ls.agent_by_id.load(pk), Agent.from_row),
    VectorKind.MEDIA: (lambda ls, pk: ls.media_by_id.load(pk), MediaAsset.from_row),
    VectorKind.MEMORY: (lambda ls, pk: ls.memory_by_id.load(pk), AgentMemory.from_row),
}


def check_limit(limit: int | None, default: int = 10) -> int:
    limit = default if limit is None else limit
    if limit < 1 or limit > MAX_LIMIT:
        raise BadUserInput(f"'limit' must be between 1 and {MAX_LIMIT}", argument="limit")
    return limit


# Cosine similarity ignores a vector's length, so any direction can be sent within these
# bounds; outside them the index's single-precision floats overflow (1e308 is a finite
# double, not a float) or squares underflow to zero, and the distance is no longer a number.
VECTOR_MAGNITUDE = (1e-18, 1e18)


def check_vector(vector: list[float]) -> tuple[float, ...]:
    if len(vector) != DIMENSIONS:
        raise BadUserInput(f"'vector' must have {DIMENSIONS} numbers", argument="vector")
    smallest, largest = VECTOR_MAGNITUDE
    if not all(math.isfinite(v) and abs(v) <= largest for v in vector) or not any(
        abs(v) >= smallest for v in vector
    ):
        raise BadUserInput(
            f"'vector' must hold finite numbers between -{largest:g} and {largest:g}, "
            f"at least one of them {smallest:g} or more away from zero",
            argument="vector",
        )
    return tuple(vector)


async def hydrate(loaders: Loaders, hits: list[VectorHit]) -> list[tuple[float, SearchResult]]:
    """Rows for hits through the by-id loaders (one SQL statement per type); a hit whose
    row is gone is dropped, never returned as null."""
    (found,) = await hydrate_many(loaders, [hits])
    if isinstance(found, Exception):
        raise found
    return found


async def hydrate_many(
    loaders: Loaders, hit_lists: Sequence[list[VectorHit] | Exception]
) -> list[list[tuple[float, SearchResult]] | Exception]:
    """``hydrate`` for the hits of many searches at once: every row of every list is asked
    for in the same tick, so a page of campaigns' similar lists costs one statement per
    type. A list whose search failed, or one of whose rows failed to load, is its error."""
    pending = [
        [BUILDERS[hit.kind][0](loaders, hit.row_id) for hit in hits]
        for hits in hit_lists
        if not isinstance(hits, Exception)
    ]
    loaded = iter([await settle(futures) for futures in pending])
    results: list[list[tuple[float, SearchResult]] | Exception] = []
    for hits in hit_lists:
        if isinstance(hits, Exception):
            results.append(hits)
            continue
        rows = next(loaded)
        failed = next((row for row in rows if isinstance(row, Exception)), None)
        if failed is not None:
            results.append(failed)
            continue
        results.append(
            [
                (hit.score, BUILDERS[hit.kind][1](row))
                for hit, row in zip(hits, rows, strict=True)
                if row is not None
            ]
        )
    return results


@strawberry.type
class SearchQueries:
    @strawberry.field(
        description="Objects closest in meaning to a text or a vector, best first. "
        f"`limit` defaults to 10, at most {MAX_LIMIT}.",
        directives=vector_search(call=20, limit=MAX_LIMIT),
    )
    async def semantic_search(
        self,
        info: Info,
        query: Annotated[
            str | None,
            strawberry.argument(directives=EMBEDDED_TEXT),
        ] = None,
        vector: list[float] | None = None,
        types: list[SearchType] | None = None,
        limit: int | None = 10,
    ) -> list[SearchHit]:
        if query is not None and vector is not None:
            # Searching by one and dropping the other would answer a question the client did
            # not ask; refused before anything is embedded or searched.
            raise BadUserInput("Give 'query' or 'vector', not both", argument="query")
        text = clean_search_text(query) if query is not None else None
        if text is None and vector is None:
            raise BadUserInput("Give a 'query' text or a 'vector'", argument="query")
        # types null is every type; [] is the empty IN-list, which matches nothing.
        chosen = list(SearchType) if types is None else types
        kinds = tuple(sorted({VectorKind(t.value) for t in chosen}))
        key = SearchKey(
            kinds=kinds,
            limit=check_limit(limit),
            text=text,
            vector=check_vector(vector) if vector is not None else None,
        )
        if not kinds:  # checked like any search, but answered without embedding or searching
            return []
        loaders = info.context.loaders
        hits = await loaders.hits_by_query.load(key)
        return [SearchHit(score=s, node=n) for s, n in await hydrate(loaders, hits)]
