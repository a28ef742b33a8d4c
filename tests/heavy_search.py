"""The hardening issue's expensive request, shared by the embedding tests: 30 aliased
semanticSearch fields, each a different 1,000-character text (256 word pieces once cut)."""

from __future__ import annotations

from starlette.applications import Starlette

from app.stores.embeddings.minilm import MiniLMEmbedder

ALIASES = 30
HEAVY = "query({params}) {{ {fields} }}".format(
    params=", ".join(f"$q{i}: String!" for i in range(ALIASES)),
    fields=" ".join(
        f"s{i}: semanticSearch(query: $q{i}, limit: 1) {{ score }}" for i in range(ALIASES)
    ),
)
LONG_TEXTS = {
    f"q{i}": (f"{i} " + "lorem ipsum dolor sit amet " * 40)[:1000] for i in range(ALIASES)
}
SMALL = "query($q: String!) { semanticSearch(query: $q, limit: 3) { score } }"


def the_model(app: Starlette) -> MiniLMEmbedder:
    embedder = app.state.stores.embedder
    assert isinstance(embedder, MiniLMEmbedder)
    return embedder
