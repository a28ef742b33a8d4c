"""OpenTelemetry for the service: traces, configured by the standard ``OTEL_*`` variables.

Off unless configured, and then free: no provider, no instrumentation, no extension, no span
is made. On, one request is one trace: the HTTP request (ASGI instrumentation, honouring an
incoming ``traceparent``), the GraphQL operation with its parse, validation and execution
(app/extensions/operation_tracing.py), each loader batch (loaders/base.py), and the store
calls under it from the maintained instrumentations of asyncpg, redis-py, aiohttp (the
HTTP client aiobotocore speaks S3 with), and, with Weaviate, grpc.aio and httpx.
"""

from app.telemetry.tracing import Telemetry, instrumented, telemetry_from_environment

__all__ = ["Telemetry", "instrumented", "telemetry_from_environment"]
