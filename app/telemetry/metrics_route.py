"""``/metrics``: the app's metrics as Prometheus text, for a scraper that holds the token.

Metric names and label values describe the deployment (tenants' operation names, stores,
backlogs), so they are not for everyone: with ``CHIMERA_METRICS_TOKEN`` set a scrape must
send it as a bearer token; without it the endpoint is open in development (on a laptop,
``curl localhost:8000/metrics`` just works) and absent in production.
"""

from __future__ import annotations

from prometheus_client.exposition import choose_encoder
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.auth import holds_token


async def serve_metrics(request: Request) -> Response:
    state = request.app.state
    settings = state.settings
    token = settings.metrics_token
    if token is None and settings.is_production:
        return JSONResponse(
            {"error": "/metrics needs CHIMERA_METRICS_TOKEN in production"}, status_code=404
        )
    if token is not None and not holds_token(request.headers.get("authorization"), token):
        return JSONResponse(
            {"error": "a bearer token is required"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    # The gauges read from the stores are as fresh as the app's refresher keeps them
    # (CHIMERA_METRICS_REFRESH_SECONDS): a scrape touches no store, so it answers at once
    # during an outage and N scrapers do not make N times the reads.
    metrics = state.metrics
    assert metrics.registry is not None
    # Prometheus's text format, or OpenMetrics for a scraper that asks for it.
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encoder(metrics.registry), headers={"Content-Type": content_type})
