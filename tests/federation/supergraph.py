"""`make supergraph`: deploy/gateway/supergraph.graphql, the supergraph docker compose's
federation profile serves: Chimera's subgraph (schema.federation.graphql) at the address the
app has inside the compose network. Add your own subgraphs by composing them with it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from app.schema import schema_sdl
from tests.federation.gateway import compose, install_gateway
from tests.processes import ROOT

COMPOSE_URL = "http://app:8000/graphql"
OUTPUT = ROOT / "deploy" / "gateway" / "supergraph.graphql"


def supergraph_sdl() -> str:
    packages = install_gateway()
    with tempfile.TemporaryDirectory() as work:
        supergraph = Path(work) / "supergraph.graphql"
        services = [{"name": "chimera", "url": COMPOSE_URL, "sdl": schema_sdl(federation=True)}]
        compose(packages, services, supergraph)
        return supergraph.read_text()


def main() -> None:
    OUTPUT.write_text(supergraph_sdl())
    print(f"wrote {OUTPUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
