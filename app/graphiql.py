"""GraphiQL from the app's own pinned copy of its files, instead of Strawberry's CDN page.

Strawberry's page loads React and GraphiQL from unpkg.com, so offline (a train, a locked-down
network) `GET /graphql` stays a blank "Loading...". The same releases, byte for byte, live in
``app/static/graphiql`` (provenance, versions and licences in its README.md) and are served at
``/static/graphiql`` in dev; production has no GraphiQL, so no such route either. Each file is
named with its SHA-384 from ``assets.json``, so a browser refuses one that was changed.
"""

from __future__ import annotations

import json
from functools import cache
from html import escape
from pathlib import Path

from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from app.settings import Settings

ASSETS_DIR = Path(__file__).parent / "static" / "graphiql"
ASSETS_URL = "/static/graphiql"

# In the order the page loads them: React first, GraphiQL (which uses the global React), then
# the explorer plugin (which uses both).
STYLESHEETS = ("graphiql.min.css", "plugin-explorer.css")
SCRIPTS = (
    "react.production.min.js",
    "react-dom.production.min.js",
    "graphiql.min.js",
    "plugin-explorer.umd.js",
)

# The page's own script: Strawberry's, less the CSRF cookie it reads for Django (this API
# takes bearer tokens, which go in the Headers tab and persist in the browser's storage).
PAGE_SCRIPT = """
const parameters = Object.fromEntries(new URLSearchParams(window.location.search));
function updateURL(changes) {
  Object.assign(parameters, changes);
  const kept = Object.entries(parameters).filter(([, value]) => Boolean(value));
  history.replaceState(null, "", "?" + new URLSearchParams(kept).toString());
}
const fetchURL = window.location.href.split("?")[0];
const subscriptionUrl = new URL(fetchURL);
subscriptionUrl.protocol = subscriptionUrl.protocol === "https:" ? "wss:" : "ws:";
subscriptionUrl.hash = "";
const fetcher = GraphiQL.createFetcher({ url: fetchURL, subscriptionUrl: subscriptionUrl.toString() });
function ChimeraGraphiQL() {
  const [query, setQuery] = React.useState(parameters.q);
  const [variables, setVariables] = React.useState(parameters.variables);
  return React.createElement(GraphiQL, {
    fetcher,
    defaultEditorToolsVisibility: true,
    plugins: [GraphiQLPluginExplorer.explorerPlugin()],
    query,
    variables,
    onEditQuery: (value) => { setQuery(value); updateURL({ q: value }); },
    onEditVariables: (value) => { setVariables(value); updateURL({ variables: value }); },
    inputValueDeprecation: true,
    isHeadersEditorEnabled: true,
    shouldPersistHeaders: false,  // a pasted token stays out of localStorage
    // Every response then carries extensions.plan: the store calls the query made.
    defaultHeaders: JSON.stringify({ "X-Chimera-Plan": "1" }, null, 2),
  });
}
ReactDOM.createRoot(document.getElementById("graphiql")).render(
  React.createElement(ChimeraGraphiQL),
);
"""


@cache
def integrity() -> dict[str, str]:
    """File name to its subresource-integrity value, from the pinned manifest."""
    manifest: dict[str, dict[str, str]] = json.loads((ASSETS_DIR / "assets.json").read_text())
    return {name: entry["integrity"] for name, entry in manifest.items()}


@cache
def graphiql_html() -> str:
    pinned = integrity()

    def url(name: str) -> str:
        return escape(f"{ASSETS_URL}/{name}")

    styles = "\n".join(
        f'    <link rel="stylesheet" href="{url(name)}" integrity="{pinned[name]}" />'
        for name in STYLESHEETS
    )
    scripts = "\n".join(
        f'    <script src="{url(name)}" integrity="{pinned[name]}"></script>' for name in SCRIPTS
    )
    return f"""<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>Chimera GraphiQL</title>
    <style>
      body {{ height: 100%; margin: 0; width: 100%; overflow: hidden; }}
      #graphiql {{ height: 100vh; display: flex; }}
      .docExplorerWrap {{ width: unset !important; min-width: unset !important; }}
      .graphiql-explorer-actions select {{ margin-left: 4px; }}
    </style>
{styles}
  </head>
  <body>
    <div id="graphiql" class="graphiql-container">Loading...</div>
{scripts}
    <script>{PAGE_SCRIPT}</script>
  </body>
</html>
"""


def graphiql_response() -> HTMLResponse:
    return HTMLResponse(graphiql_html())


def graphiql_routes(settings: Settings) -> list[BaseRoute]:
    """The route of GraphiQL's files: in dev only, where GraphiQL is."""
    if settings.is_production:
        return []
    return [Mount(ASSETS_URL, app=StaticFiles(directory=ASSETS_DIR), name="graphiql-assets")]
