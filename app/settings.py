"""Configuration from the environment.

One typed object, read once at the composition root, so that no module reaches into
``os.environ`` on its own and a newcomer can see every knob in one place. A store whose URL
is unset is started as an embedded engine in development; in production every URL is required.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    DEV = "dev"
    PRODUCTION = "production"


class VectorIndexKind(StrEnum):
    PGVECTOR = "pgvector"
    WEAVIATE = "weaviate"


class ObjectStoreKind(StrEnum):
    LOCAL = "local"
    S3 = "s3"


AddressingStyle = Literal["path", "virtual"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
RateLimitFallback = Literal["open", "closed", "open-reads"]
TrustedDocuments = Literal["off", "allow", "only"]

# Values people paste from examples, among them docker-compose.yml's old fallback. Refused in
# production whatever their length: they are public, so anyone could mint tokens with them.
PLACEHOLDER_SECRET_MARKERS = (
    "change-me",
    "changeme",
    "change_me",
    "replace-me",
    "replaceme",
    "placeholder",
    "example",
    "your-secret",
)
# Fewer distinct characters than this is a pattern ("aaaa...", "abcabc..."), not a random key.
# 32 random hex digits (`openssl rand -hex 16`, the shortest accepted) have about 14, and fewer
# than 8 about once in 25 million.
MIN_DISTINCT_SECRET_CHARACTERS = 8


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True)

    env: Environment = Field(default=Environment.DEV, validation_alias="CHIMERA_ENV")
    data_dir: Path = Field(default=Path(".chimera"), validation_alias="CHIMERA_DATA_DIR")

    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    # Reserved for the stores that later slices bring in; read here so that they are
    # documented and validated in one place from the start.
    # Vector index: "pgvector" (the embedded default; PGVECTOR_URL, else DATABASE_URL) or
    # "weaviate" (WEAVIATE_URL). Unset: weaviate when WEAVIATE_URL is set, pgvector otherwise.
    vector_index: VectorIndexKind | None = Field(
        default=None, validation_alias="CHIMERA_VECTOR_INDEX"
    )
    pgvector_url: str | None = Field(default=None, validation_alias="PGVECTOR_URL")
    database_read_urls: str | None = Field(
        default=None,
        validation_alias="DATABASE_READ_URLS",
        description="Streaming replicas of DATABASE_URL, comma-separated: queries read from "
        "them (docs/architecture.md, Read replicas).",
    )
    replica_max_lag_seconds: float = Field(
        default=5.0, gt=0, validation_alias="CHIMERA_REPLICA_MAX_LAG_SECONDS"
    )
    weaviate_url: str | None = Field(default=None, validation_alias="WEAVIATE_URL")
    weaviate_grpc_port: int = Field(
        default=50051, ge=1, le=65535, validation_alias="WEAVIATE_GRPC_PORT"
    )
    # The in-process indexer turns outbox events into vectors; turn it off where a separate
    # `chimera worker` does that job.
    indexer_enabled: bool = Field(default=True, validation_alias="CHIMERA_INDEXER")

    # Object storage: "local" (files in the data directory, served by the app with signed
    # URLs) or "s3" (AWS S3, MinIO or any S3-compatible store). Unset: s3 when S3_ENDPOINT is
    # set, local otherwise.
    object_store: ObjectStoreKind | None = Field(
        default=None, validation_alias="CHIMERA_OBJECT_STORE"
    )
    s3_endpoint: str | None = Field(default=None, validation_alias="S3_ENDPOINT")
    s3_public_endpoint: str | None = Field(
        default=None,
        validation_alias="S3_PUBLIC_ENDPOINT",
        description="Endpoint written into presigned URLs when clients reach the store by "
        "another address than the app does (e.g. MinIO in docker compose).",
    )
    s3_bucket: str = Field(default="chimera-media", validation_alias="S3_BUCKET")
    s3_region: str = Field(default="us-east-1", validation_alias="S3_REGION")
    s3_access_key_id: str | None = Field(
        default=None, validation_alias=AliasChoices("S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID")
    )
    s3_secret_access_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
    )
    s3_session_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("S3_SESSION_TOKEN", "AWS_SESSION_TOKEN")
    )
    s3_addressing_style: AddressingStyle = Field(
        default="path", validation_alias="S3_ADDRESSING_STYLE"
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        validation_alias="CHIMERA_PUBLIC_URL",
        description="Base URL clients use to reach this app; local media URLs start with it.",
    )
    media_max_bytes: int = Field(
        default=100 * 1024 * 1024, ge=1, validation_alias="CHIMERA_MEDIA_MAX_BYTES"
    )
    media_url_ttl_seconds: int = Field(
        default=900, ge=1, le=604800, validation_alias="CHIMERA_MEDIA_URL_TTL_SECONDS"
    )
    media_url_max_ttl_seconds: int = Field(
        default=86400, ge=1, le=604800, validation_alias="CHIMERA_MEDIA_URL_MAX_TTL_SECONDS"
    )
    upload_url_ttl_seconds: int = Field(
        default=900, ge=60, le=604800, validation_alias="CHIMERA_UPLOAD_URL_TTL_SECONDS"
    )

    auth_secret: SecretStr | None = Field(default=None, validation_alias="CHIMERA_AUTH_SECRET")
    jwks_url: str | None = Field(
        default=None,
        validation_alias="CHIMERA_JWKS_URL",
        description="An identity provider's JWKS: its RS256 and ES256 tokens are accepted "
        "beside the HS256 ones (app/jwks.py).",
    )
    jwt_issuer: str | None = Field(
        default=None,
        validation_alias="CHIMERA_JWT_ISSUER",
        description="The `iss` a provider's tokens must carry (checked when set).",
    )
    jwt_audience: str | None = Field(
        default=None,
        validation_alias="CHIMERA_JWT_AUDIENCE",
        description="The `aud` a provider's tokens must carry (checked when set).",
    )
    health_token: SecretStr | None = Field(
        default=None,
        validation_alias="CHIMERA_HEALTH_TOKEN",
        description="Bearer token that makes /readyz show each store's details (versions, "
        "addresses, errors, relay lag); without it /readyz says only which stores answer.",
    )
    token_ttl_seconds: int = Field(
        default=7 * 24 * 3600,
        ge=60,
        le=366 * 24 * 3600,  # as `chimera token --ttl` (app/auth.py TOKEN_TTL_MAX_SECONDS)
        validation_alias="CHIMERA_TOKEN_TTL_SECONDS",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        validation_alias="CHIMERA_METRICS_TOKEN",
        description="Bearer token a Prometheus scrape of /metrics must send. Without it, "
        "/metrics is open in development and not served in production.",
    )
    metrics_refresh_seconds: float = Field(
        default=15.0,
        gt=0,
        validation_alias="CHIMERA_METRICS_REFRESH_SECONDS",
        description="How often the numbers kept in the stores (backlogs, dead letters) are "
        "read for the metrics; a scrape of /metrics serves the last values read.",
    )

    media_sweep_seconds: float = Field(
        default=60.0,
        ge=0,
        validation_alias="CHIMERA_MEDIA_SWEEP_SECONDS",
        description="How often failed object deletes are retried; 0 turns the sweeper off.",
    )

    # Live updates.
    # Shared caches in Redis (0 turns one off): a search text's vector, so it is not embedded
    # again, and a campaign's similar campaigns, dropped when the campaign vectors change.
    embedding_cache_seconds: int = Field(
        default=86400, ge=0, le=30 * 86400, validation_alias="CHIMERA_EMBEDDING_CACHE_SECONDS"
    )
    similar_cache_seconds: int = Field(
        default=600, ge=0, le=86400, validation_alias="CHIMERA_SIMILAR_CACHE_SECONDS"
    )
    relay_enabled: bool = Field(default=True, validation_alias="CHIMERA_RELAY")
    relay_partitions: int = Field(
        default=1,
        ge=1,
        le=64,
        validation_alias="CHIMERA_RELAY_PARTITIONS",
        description="Partitions of the outbox relay, by tenant hash, each with its own lock "
        "and loop: more relay processes then publish in parallel. The same on every "
        "instance and worker; change it with every relay stopped.",
    )
    legacy_graphql_ws: bool = Field(default=False, validation_alias="CHIMERA_LEGACY_GRAPHQL_WS")
    max_subscriptions_per_connection: int = Field(
        default=20, ge=1, validation_alias="CHIMERA_MAX_SUBSCRIPTIONS_PER_CONNECTION"
    )
    max_subscriptions_per_tenant: int = Field(
        default=2000,
        ge=1,
        validation_alias="CHIMERA_MAX_SUBSCRIPTIONS_PER_TENANT",
        description="Per app instance: live subscriptions one tenant may hold open.",
    )
    ws_keepalive_seconds: float = Field(
        default=15.0,
        gt=0,
        validation_alias="CHIMERA_WS_KEEPALIVE_SECONDS",
        description="How often an idle WebSocket gets a ping, and an idle SSE stream a comment.",
    )
    sse_send_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        validation_alias="CHIMERA_SSE_SEND_TIMEOUT_SECONDS",
        description="An SSE reader that takes no data for this long is cut off with a "
        "SLOW_CONSUMER error naming the event to resume after.",
    )

    federation: bool = Field(
        default=False,
        validation_alias="CHIMERA_FEDERATION",
        description="Serve the schema as an Apollo Federation v2 subgraph: @key on each "
        "entity, _service and _entities (app/federation.py); schema.federation.graphql.",
    )
    fast_execution: bool = Field(
        default=True,
        validation_alias="CHIMERA_FAST_EXECUTION",
        description="Execute operations from compiled plans, a list level at a time "
        "(app/execution); false runs every operation on graphql-core's stock executor.",
    )

    log_level: LogLevel = Field(
        default="INFO",
        validation_alias="CHIMERA_LOG_LEVEL",
        description="Threshold of the log lines `chimera serve` and `chimera worker` write "
        "(uvicorn's included): DEBUG, INFO, WARNING, ERROR or CRITICAL, in any case.",
    )
    log_format: Literal["text", "json"] | None = Field(
        default=None,
        validation_alias="CHIMERA_LOG_FORMAT",
        description="`json` (one JSON object per line, for a log pipeline) or `text` (readable "
        "lines); by default JSON in production and text elsewhere.",
    )
    access_log: bool = Field(
        default=True,
        validation_alias="CHIMERA_ACCESS_LOG",
        description="One line per HTTP request and WebSocket connection: method, path, status, "
        "duration, cost, tenant and operation.",
    )

    cors_origins: str | None = Field(
        default=None,
        validation_alias="CHIMERA_CORS_ORIGINS",
        description="Browser origins allowed to call the API from pages of their own "
        "(`https://app.example.com,https://admin.example.com`, or `*` for any): a comma-"
        "separated list. Unset, no cross-origin request is granted; the dashboard at / is "
        "same-origin and needs none.",
    )

    # Limits that protect the service from hostile or careless clients.
    max_body_bytes: int = Field(
        default=1_000_000, ge=1024, validation_alias="CHIMERA_MAX_BODY_BYTES"
    )
    max_query_depth: int = Field(default=12, ge=2, validation_alias="CHIMERA_MAX_QUERY_DEPTH")
    max_aliases: int = Field(default=30, ge=1, validation_alias="CHIMERA_MAX_ALIASES")
    max_tokens: int = Field(default=2000, ge=100, validation_alias="CHIMERA_MAX_TOKENS")
    # Search texts are embedded in-process; these bound what they may cost the model, in the
    # word pieces it runs (a query counts up to 256). See docs/embeddings.md.
    max_embed_tokens_per_request: int = Field(
        default=2048,
        ge=1,
        validation_alias="CHIMERA_MAX_EMBED_TOKENS_PER_REQUEST",
        description="Tokens the search texts of one request may embed in all; over it the "
        "searches fail with OPERATION_LIMIT and nothing is embedded.",
    )
    embed_tokens_per_tenant_per_minute: int = Field(
        default=20_000,
        ge=1,
        validation_alias="CHIMERA_EMBED_TOKENS_PER_TENANT_PER_MINUTE",
        description="Per app instance: tokens of search text one tenant may embed per minute "
        "(a bucket refilled continuously); over it searches fail with OPERATION_LIMIT.",
    )
    # Persisted documents (app/documents/store.py).
    automatic_persisted_queries: bool = Field(
        default=True,
        validation_alias="CHIMERA_APQ",
        description="Apollo's automatic persisted queries: a client may send a document's "
        "hash alone once it has sent the document with it (kept in Redis per tenant).",
    )
    apq_ttl_seconds: int = Field(
        default=86_400,
        ge=60,
        validation_alias="CHIMERA_APQ_TTL_SECONDS",
        description="How long an automatically persisted document is kept since last sent in full.",
    )
    trusted_documents: TrustedDocuments = Field(
        default="off",
        validation_alias="CHIMERA_TRUSTED_DOCUMENTS",
        description="Documents registered with `chimera documents add`: off (not consulted), "
        "allow (runnable by hash, besides any other document), only (nothing else runs: "
        "production's safelist).",
    )
    store_timeout_seconds: float = Field(
        default=5.0, gt=0, validation_alias="CHIMERA_STORE_TIMEOUT_SECONDS"
    )
    shutdown_grace_seconds: float = Field(
        default=20.0,
        gt=0,
        validation_alias="CHIMERA_SHUTDOWN_GRACE_SECONDS",
        description="How long stopping the background work and closing the stores may take "
        "once the server stops serving; past it, what is still running is logged with its "
        "stack and left behind, so Ctrl-C and SIGTERM always end the process.",
    )
    # Demand control (docs/operations.md, "Choosing limits"): what one operation may cost,
    # and what a tenant and each of its clients may spend over time. A tenant's row may
    # override each (`chimera tenant limits`).
    max_cost: int = Field(
        default=10_000,
        ge=1,
        validation_alias="CHIMERA_MAX_COST",
        description="Points one operation may be priced at before it runs; over it the "
        "operation is refused with COST_LIMIT and nothing is executed.",
    )
    tenant_rate_capacity: int = Field(
        default=200_000,
        ge=1,
        validation_alias="CHIMERA_TENANT_RATE_CAPACITY",
        description="Points a tenant's bucket holds: the most its clients may spend at once.",
    )
    tenant_rate_per_second: float = Field(
        default=20_000,
        gt=0,
        validation_alias="CHIMERA_TENANT_RATE_PER_SECOND",
        description="Points a tenant's bucket regains per second: its sustained spend.",
    )
    client_rate_capacity: int = Field(
        default=50_000,
        ge=1,
        validation_alias="CHIMERA_CLIENT_RATE_CAPACITY",
        description="Points one client's bucket holds (a token, or an API key).",
    )
    client_rate_per_second: float = Field(
        default=5_000,
        gt=0,
        validation_alias="CHIMERA_CLIENT_RATE_PER_SECOND",
        description="Points one client's bucket regains per second.",
    )
    rate_limits: bool = Field(
        default=True,
        validation_alias="CHIMERA_RATE_LIMITS",
        description="Charge operations to the tenant's and the client's buckets in Redis; "
        "false prices them (COST_LIMIT still holds) but never throttles.",
    )
    rate_limit_when_redis_down: RateLimitFallback = Field(
        default="open-reads",
        validation_alias="CHIMERA_RATE_LIMIT_WHEN_REDIS_DOWN",
        description="When the buckets cannot be reached: open (serve everything, unmetered), "
        "closed (refuse everything with STORE_UNAVAILABLE) or open-reads (serve queries and "
        "subscriptions, refuse mutations). Each time: a log line and a counter.",
    )
    task_replicas: int = Field(
        default=0,
        ge=0,
        validation_alias="CHIMERA_TASK_REPLICAS",
        description="Redis replicas that must hold a new task before enqueueTask answers "
        "(Redis's WAIT). Redis replicates asynchronously, so a task the primary acknowledged "
        "just before a failover can be lost; with 1 it is on a replica first. Fewer "
        "confirmations in time: STORE_UNAVAILABLE, and a retry with the same idempotencyKey "
        "returns the task if it was kept. 0: the primary's answer is enough.",
    )
    task_replica_timeout_ms: int = Field(
        default=1000,
        ge=1,
        validation_alias="CHIMERA_TASK_REPLICA_TIMEOUT_MS",
        description="How long enqueueTask waits for CHIMERA_TASK_REPLICAS confirmations.",
    )
    db_pool_size: int = Field(
        default=20,
        ge=1,
        validation_alias="CHIMERA_DB_POOL_SIZE",
        description="PostgreSQL connections per app instance, a fixed pool; a request uses "
        "up to one per store call it has in flight.",
    )
    redis_pool_size: int = Field(
        default=50,
        ge=1,
        validation_alias="CHIMERA_REDIS_POOL_SIZE",
        description="Redis connections for requests; live-event readers have their own, one "
        "per tenant with subscribers on this instance.",
    )

    @field_validator("database_url", "pgvector_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        return _postgres_url(value)

    @field_validator("database_read_urls")
    @classmethod
    def _postgres_urls(cls, value: str | None) -> str | None:
        """Each of a comma-separated list, as DATABASE_URL; None when there is none."""
        urls = [_postgres_url(part.strip()) for part in (value or "").split(",")]
        kept = [url for url in urls if url]
        return ",".join(kept) or None

    @property
    def read_urls(self) -> list[str]:
        return self.database_read_urls.split(",") if self.database_read_urls else []

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: str | None) -> str | None:
        """Each an origin as a browser sends it (scheme, host, optional port; no path), or
        ``*`` alone; None when there is none."""
        origins = [part.strip() for part in (value or "").split(",") if part.strip()]
        if origins == ["*"]:
            return "*"
        for origin in origins:
            if origin == "*":
                raise ValueError("`*` allows every origin and cannot be listed with others")
            _check_url(origin, ("http", "https"), "https://app.example.com")
            parts = urlsplit(origin)
            if parts.path or parts.query or parts.fragment or parts.username or parts.password:
                raise ValueError(
                    "an origin is a scheme, a host and a port only (no path, query or "
                    "credentials), as in https://app.example.com:8443"
                )
        return ",".join(origins) or None

    @property
    def allowed_origins(self) -> list[str]:
        return self.cors_origins.split(",") if self.cors_origins else []

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        _check_url(
            value,
            ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster"),
            "redis://host:6379/0, or redis+cluster://node:6379/0 for a Redis Cluster",
        )
        return value

    @field_validator("weaviate_url", "s3_endpoint", "s3_public_endpoint", "public_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        _check_url(value, ("http", "https"), "http://host:port")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_any_case(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("auth_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        """HS256 keys shorter than the hash are guessable; refuse them at start-up."""
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("CHIMERA_AUTH_SECRET must be at least 32 characters")
        return value

    @field_validator("health_token", "metrics_token", mode="before")
    @classmethod
    def _empty_token_is_unset(cls, value: object) -> object:
        """An empty token (``CHIMERA_METRICS_TOKEN=`` in an env file or a compose default) is no
        token: taken as one, a request sending ``Bearer `` with nothing after it would match."""
        return value or None

    @field_validator("redis_url", "weaviate_url", "s3_endpoint", "s3_public_endpoint")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @property
    def is_production(self) -> bool:
        return self.env is Environment.PRODUCTION

    @property
    def json_logs(self) -> bool:
        return self.log_format == "json" or (self.log_format is None and self.is_production)

    @model_validator(mode="after")
    def _production_secret_is_strong(self) -> Settings:
        """A production secret must not be a known placeholder or a pattern: either would let
        anyone who has read the example mint tokens for every tenant."""
        if not self.is_production or self.auth_secret is None:
            return self
        secret = self.auth_secret.get_secret_value()
        lowered = secret.lower()
        if any(marker in lowered for marker in PLACEHOLDER_SECRET_MARKERS):
            raise ValueError(
                "CHIMERA_AUTH_SECRET is a placeholder (an example value); set 32+ random "
                "characters, e.g. from `openssl rand -hex 32`"
            )
        if len(set(secret)) < MIN_DISTINCT_SECRET_CHARACTERS:
            raise ValueError(
                "CHIMERA_AUTH_SECRET is too weak (a repeated pattern, "
                f"fewer than {MIN_DISTINCT_SECRET_CHARACTERS} distinct characters); set 32+ "
                "random characters, e.g. from `openssl rand -hex 32`"
            )
        return self

    @model_validator(mode="after")
    def _ttl_within_maximum(self) -> Settings:
        if self.media_url_ttl_seconds > self.media_url_max_ttl_seconds:
            raise ValueError(
                "CHIMERA_MEDIA_URL_TTL_SECONDS must not exceed CHIMERA_MEDIA_URL_MAX_TTL_SECONDS"
            )
        return self

    @model_validator(mode="after")
    def _embed_request_fits_tenant_budget(self) -> Settings:
        """A request allowed more tokens than its tenant gets in a minute could never run."""
        if self.max_embed_tokens_per_request > self.embed_tokens_per_tenant_per_minute:
            raise ValueError(
                "CHIMERA_MAX_EMBED_TOKENS_PER_REQUEST must not exceed"
                " CHIMERA_EMBED_TOKENS_PER_TENANT_PER_MINUTE"
            )
        return self

    @property
    def vector_index_kind(self) -> VectorIndexKind:
        if self.vector_index is not None:
            return self.vector_index
        return VectorIndexKind.WEAVIATE if self.weaviate_url else VectorIndexKind.PGVECTOR

    @property
    def uses_weaviate(self) -> bool:
        return self.vector_index_kind is VectorIndexKind.WEAVIATE

    @property
    def object_store_kind(self) -> ObjectStoreKind:
        if self.object_store is not None:
            return self.object_store
        return ObjectStoreKind.S3 if self.s3_endpoint else ObjectStoreKind.LOCAL

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()


def _check_url(value: str, schemes: tuple[str, ...], example: str) -> None:
    """Raise a ValueError naming the problem (never the URL: it may hold a password)."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - a non-numeric or out-of-range port raises here
    except ValueError:
        raise ValueError(f"not a valid URL; expected something like {example}") from None
    if parts.scheme not in schemes:
        kinds = " or ".join(f"{scheme}://" for scheme in schemes)
        got = f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"
        raise ValueError(f"must be a {kinds} URL like {example}, not one with {got}")
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError(f"no host; expected something like {example}")


def load_settings() -> Settings:
    return Settings()


def _postgres_url(value: str | None) -> str | None:
    """A PostgreSQL URL for asyncpg, from the forms operators paste (postgres://,
    postgresql://); refused at start-up when SQLAlchemy would fail on it later with a
    traceback: another database's scheme (whose driver is not installed) or a malformed URL.
    None for an empty value."""
    if value is None or value == "":
        return None
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg://"):
        if value.startswith(prefix):
            value = "postgresql+asyncpg://" + value[len(prefix) :]
            break
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(value)
        url.port  # noqa: B018 - parsed lazily; a non-numeric port raises here
    except (ArgumentError, ValueError):
        raise ValueError(
            "not a URL SQLAlchemy can read; expected postgresql://user:password@host:5432/dbname"
        ) from None
    if url.drivername != "postgresql+asyncpg":
        raise ValueError(
            f"not a PostgreSQL URL (scheme {url.drivername!r}); expected "
            "postgresql://user:password@host:5432/dbname"
        )
    return value
