"""The vector index in Weaviate, through weaviate-client v4 (async client, gRPC for data).

Layout: one collection per kind (``ChimeraCampaign``, ``ChimeraAgent``, ``ChimeraMedia``,
``ChimeraMemory``), each with our own 384-d vectors (no vectorizer; one named vector,
"default", HNSW with cosine distance) and Weaviate's native multi-tenancy: every Chimera tenant
is a Weaviate tenant (a shard of its own) named by the tenant's uuid, so no query can reach
another tenant's objects whatever its filters say. Automatic tenant creation is off: the
adapter creates a tenant before its first write and remembers which tenants exist; a read
for a tenant that was never written finds nothing rather than failing.

Reads and writes go over gRPC (``Search``, ``BatchObjects``, ``BatchDelete``, ``TenantsGet``);
the schema and tenant creation, and the health checks, over REST. Weaviate's GraphQL API is
deprecated and not used.

Failures: every call runs under ``asyncio.timeout`` and the client's own per-call deadlines
(``Timeout(init, query, insert)``), and whatever the client raises for an unreachable, slow or
failing server becomes ``StoreUnavailable("Weaviate", ...)``. The client retries a gRPC
``UNAVAILABLE`` reply by itself with exponential backoff (1 s, 2 s, 4 s, ...), so a blip is
absorbed; a server that stays down is cut off by our timeout.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import weaviate
from grpc.aio import AioRpcError
from weaviate.classes.config import (
    Configure,
    DataType,
    Property,
    Tokenization,
    VectorDistances,
)
from weaviate.classes.init import AdditionalConfig, Timeout
from weaviate.classes.query import Filter, FilterReturn, MetadataQuery
from weaviate.collections import CollectionAsync
from weaviate.collections.classes.data import DataObject
from weaviate.exceptions import (
    UnexpectedStatusCodeError,
    WeaviateBaseError,
    WeaviateInvalidInputError,
)

from app.errors import StoreUnavailable
from app.stores.vectors.port import (
    DIMENSIONS,
    IndexedEntry,
    VectorHit,
    VectorKind,
    VectorQuery,
    VectorRecord,
    object_uuid,
)

T = TypeVar("T")

STORE = "Weaviate"
DEFAULT_GRPC_PORT = 50051
VECTOR_NAME = "default"
HYBRID_ALPHA = 0.5  # 0 = keywords only, 1 = vector only
WRITE_CHUNK = 1000  # objects per BatchObjects call / uuids per BatchDelete filter
PAGE_SIZE = 1000  # objects per page when listing a tenant's entries

COLLECTIONS: dict[VectorKind, str] = {
    VectorKind.CAMPAIGN: "ChimeraCampaign",
    VectorKind.AGENT: "ChimeraAgent",
    VectorKind.MEDIA: "ChimeraMedia",
    VectorKind.MEMORY: "ChimeraMemory",
}

Collection = CollectionAsync[dict[str, Any], None]


class WeaviateVectorIndex:
    name = "weaviate"

    def __init__(self, client: weaviate.WeaviateAsyncClient, *, timeout: float, url: str) -> None:
        self.client = client
        self.timeout = timeout
        self.url = url
        # Weaviate tenants known to exist, per collection. Only positive answers are kept:
        # another app instance may create a tenant at any time, none of ours deletes one.
        self._tenants: dict[str, set[str]] = {name: set() for name in COLLECTIONS.values()}
        self._tenant_lock = asyncio.Lock()

    # -- plumbing -------------------------------------------------------------------------

    async def _call(self, call: Awaitable[T], what: str) -> T:
        try:
            async with asyncio.timeout(self.timeout):
                return await call
        except StoreUnavailable:
            raise
        except WeaviateInvalidInputError:
            raise  # our bug, not the store's state
        except TimeoutError as exc:
            raise StoreUnavailable(STORE, f"{what}: no answer within {self.timeout:g}s") from exc
        except (WeaviateBaseError, AioRpcError, httpx.HTTPError, OSError) as exc:
            raise StoreUnavailable(STORE, f"{what}: {_describe(exc)}") from exc

    def _collection(self, kind: VectorKind, tenant: str | None = None) -> Collection:
        collection: Collection = self.client.collections.use(COLLECTIONS[kind])
        return collection.with_tenant(tenant) if tenant is not None else collection

    async def _tenant_exists(self, kind: VectorKind, tenant: str) -> bool:
        known = self._tenants[COLLECTIONS[kind]]
        if tenant in known:
            return True
        found = await self._collection(kind).tenants.get_by_names([tenant])
        if tenant in found:
            known.add(tenant)
            return True
        return False

    async def _ensure_tenant(self, kind: VectorKind, tenant: str) -> None:
        if tenant in self._tenants[COLLECTIONS[kind]]:
            return
        async with self._tenant_lock:
            if await self._tenant_exists(kind, tenant):
                return
            try:
                await self._collection(kind).tenants.create(tenant)
            except UnexpectedStatusCodeError:
                # Another instance may have created it between our check and our create.
                if not await self._tenant_exists(kind, tenant):
                    raise
            self._tenants[COLLECTIONS[kind]].add(tenant)

    # -- the port -------------------------------------------------------------------------

    async def ensure_ready(self) -> None:
        await self._call(
            _gather([self._ensure_collection(kind) for kind in COLLECTIONS]), "create collections"
        )

    async def _ensure_collection(self, kind: VectorKind) -> None:
        name = COLLECTIONS[kind]
        if await self.client.collections.exists(name):
            return
        try:
            await self.client.collections.create(
                name,
                description=f"Chimera {kind.value} vectors ({DIMENSIONS}-d, brought by the app)",
                vector_config=Configure.Vectors.self_provided(
                    name=VECTOR_NAME,
                    vector_index_config=Configure.VectorIndex.hnsw(
                        distance_metric=VectorDistances.COSINE
                    ),
                ),
                multi_tenancy_config=Configure.multi_tenancy(
                    enabled=True, auto_tenant_creation=False, auto_tenant_activation=False
                ),
                properties=[
                    Property(name="row_id", data_type=DataType.UUID),
                    Property(name="owner_id", data_type=DataType.UUID),
                    Property(name="text", data_type=DataType.TEXT, tokenization=Tokenization.WORD),
                    Property(
                        name="content_hash",
                        data_type=DataType.TEXT,
                        index_filterable=False,
                        index_searchable=False,
                    ),
                ],
            )
        except UnexpectedStatusCodeError:
            # Created concurrently by another instance: fine if it is there now.
            if not await self.client.collections.exists(name):
                raise

    async def upsert(self, tenant_id: uuid.UUID, records: Sequence[VectorRecord]) -> None:
        by_kind: dict[VectorKind, list[VectorRecord]] = {}
        for record in records:
            _check_vector(record.vector)
            by_kind.setdefault(record.kind, []).append(record)
        if not by_kind:
            return
        await self._call(
            _gather([self._upsert_kind(tenant_id, k, rs) for k, rs in by_kind.items()]),
            "upsert",
        )

    async def _upsert_kind(
        self, tenant_id: uuid.UUID, kind: VectorKind, records: list[VectorRecord]
    ) -> None:
        tenant = str(tenant_id)
        await self._ensure_tenant(kind, tenant)
        collection = self._collection(kind, tenant)
        for start in range(0, len(records), WRITE_CHUNK):
            objects: list[DataObject[dict[str, Any], None]] = []
            for record in records[start : start + WRITE_CHUNK]:
                properties: dict[str, Any] = {
                    "row_id": record.row_id,
                    "text": record.text,
                    "content_hash": record.content_hash,
                }
                if record.owner_id is not None:
                    properties["owner_id"] = record.owner_id
                objects.append(
                    DataObject(
                        properties=properties,
                        uuid=object_uuid(tenant_id, kind, record.row_id),
                        vector={VECTOR_NAME: [float(x) for x in record.vector]},
                    )
                )
            result = await collection.data.insert_many(objects)
            if result.has_errors:
                messages = sorted({error.message for error in result.errors.values()})
                raise StoreUnavailable(
                    STORE,
                    f"{len(result.errors)} of {len(objects)} {kind.value} vectors were not "
                    f"stored: {'; '.join(messages)[:300]}",
                )

    async def delete(
        self, tenant_id: uuid.UUID, kind: VectorKind, row_ids: Sequence[uuid.UUID]
    ) -> None:
        if not row_ids:
            return
        await self._call(self._delete(tenant_id, kind, row_ids), "delete")

    async def _delete(
        self, tenant_id: uuid.UUID, kind: VectorKind, row_ids: Sequence[uuid.UUID]
    ) -> None:
        tenant = str(tenant_id)
        if not await self._tenant_exists(kind, tenant):
            return  # nothing was ever written for this tenant: nothing to remove
        collection = self._collection(kind, tenant)
        ids = [object_uuid(tenant_id, kind, row_id) for row_id in row_ids]
        for start in range(0, len(ids), WRITE_CHUNK):
            await collection.data.delete_many(
                where=Filter.by_id().contains_any(ids[start : start + WRITE_CHUNK])
            )

    async def search(self, tenant_id: uuid.UUID, query: VectorQuery) -> list[VectorHit]:
        return (await self.search_many(tenant_id, [query]))[0]

    async def search_many(
        self, tenant_id: uuid.UUID, queries: Sequence[VectorQuery]
    ) -> list[list[VectorHit]]:
        for query in queries:
            _check_vector(query.vector)
        if not queries:
            return []
        tenant = str(tenant_id)
        return await self._call(_gather([self._search(tenant, q) for q in queries]), "search")

    async def _search(self, tenant: str, query: VectorQuery) -> list[VectorHit]:
        if query.limit <= 0 or not query.kinds:
            return []
        kinds = list(dict.fromkeys(query.kinds))
        per_kind = await _gather([self._search_kind(tenant, kind, query) for kind in kinds])
        hits = [hit for batch in per_kind for hit in batch]
        hits.sort(key=lambda hit: hit.score, reverse=True)
        return hits[: query.limit]

    async def _search_kind(
        self, tenant: str, kind: VectorKind, query: VectorQuery
    ) -> list[VectorHit]:
        if not await self._tenant_exists(kind, tenant):
            return []
        collection = self._collection(kind, tenant)
        vector = [float(x) for x in query.vector]
        conditions: list[FilterReturn] = []
        if query.owner_id is not None:
            conditions.append(Filter.by_property("owner_id").equal(query.owner_id))
        if query.exclude_row_id is not None:
            conditions.append(Filter.by_property("row_id").not_equal(query.exclude_row_id))
        filters = Filter.all_of(conditions) if len(conditions) > 1 else next(iter(conditions), None)
        if query.text:
            reply = await collection.query.hybrid(
                query=query.text,
                vector=vector,
                alpha=HYBRID_ALPHA,
                query_properties=["text"],
                target_vector=VECTOR_NAME,
                limit=query.limit,
                filters=filters,
                return_properties=["row_id"],
                return_metadata=MetadataQuery(score=True),
            )
            return [
                VectorHit(kind, _as_uuid(obj.properties["row_id"]), float(obj.metadata.score or 0))
                for obj in reply.objects
            ]
        reply = await collection.query.near_vector(
            near_vector=vector,
            target_vector=VECTOR_NAME,
            limit=query.limit,
            filters=filters,
            return_properties=["row_id"],
            return_metadata=MetadataQuery(distance=True),
        )
        return [
            # Cosine distance in Weaviate is 1 - cosine similarity.
            VectorHit(kind, _as_uuid(obj.properties["row_id"]), 1.0 - (obj.metadata.distance or 0))
            for obj in reply.objects
        ]

    async def similar_to(
        self,
        tenant_id: uuid.UUID,
        kind: VectorKind,
        row_ids: Sequence[uuid.UUID],
        kinds: tuple[VectorKind, ...],
        limit: int,
    ) -> dict[uuid.UUID, list[VectorHit]]:
        """Read the rows' stored vectors (one fetch per chunk of ids), then search with each,
        excluding the row itself, all concurrently."""
        if not row_ids or not kinds or limit <= 0:
            return {}
        return await self._call(
            self._similar_to(tenant_id, kind, list(dict.fromkeys(row_ids)), kinds, limit),
            "similar to",
        )

    async def _similar_to(
        self,
        tenant_id: uuid.UUID,
        kind: VectorKind,
        row_ids: list[uuid.UUID],
        kinds: tuple[VectorKind, ...],
        limit: int,
    ) -> dict[uuid.UUID, list[VectorHit]]:
        tenant = str(tenant_id)
        if not await self._tenant_exists(kind, tenant):
            return {}
        collection = self._collection(kind, tenant)
        vectors: dict[uuid.UUID, list[float]] = {}
        for start in range(0, len(row_ids), WRITE_CHUNK):
            chunk = row_ids[start : start + WRITE_CHUNK]
            found = await collection.query.fetch_objects(
                filters=Filter.by_id().contains_any(
                    [object_uuid(tenant_id, kind, row_id) for row_id in chunk]
                ),
                limit=len(chunk),
                include_vector=[VECTOR_NAME],
                return_properties=["row_id"],
            )
            for obj in found.objects:
                vector = obj.vector.get(VECTOR_NAME)
                if vector is not None:
                    vectors[_as_uuid(obj.properties["row_id"])] = _single(vector)
        sources = list(vectors)
        results = await _gather(
            [
                self._search(tenant, VectorQuery(vectors[row], kinds, limit, exclude_row_id=row))
                for row in sources
            ]
        )
        return dict(zip(sources, results, strict=True))

    async def entries(self, tenant_id: uuid.UUID, kind: VectorKind) -> list[IndexedEntry]:
        return await self._call(self._entries(str(tenant_id), kind), "list entries")

    async def _entries(self, tenant: str, kind: VectorKind) -> list[IndexedEntry]:
        if not await self._tenant_exists(kind, tenant):
            return []
        collection = self._collection(kind, tenant)
        found: list[IndexedEntry] = []
        after: uuid.UUID | None = None
        while True:
            page = await collection.query.fetch_objects(
                limit=PAGE_SIZE, after=after, return_properties=["row_id", "content_hash"]
            )
            for obj in page.objects:
                found.append(
                    IndexedEntry(
                        _as_uuid(obj.properties["row_id"]),
                        str(obj.properties.get("content_hash") or ""),
                    )
                )
            if len(page.objects) < PAGE_SIZE:
                return found
            after = page.objects[-1].uuid

    async def tenants(self) -> list[uuid.UUID]:
        """Tenants with a Weaviate tenant in any collection (created on their first write)."""
        names = await self._call(
            _gather([self._collection(kind).tenants.get() for kind in COLLECTIONS]), "tenants"
        )
        found: set[uuid.UUID] = set()
        for collection_name, tenants in zip(COLLECTIONS.values(), names, strict=True):
            for name in tenants:
                try:
                    found.add(uuid.UUID(name))
                except ValueError:
                    continue  # a tenant some other application made
                self._tenants[collection_name].add(name)
        return sorted(found)

    async def ping(self) -> str:
        meta = await self._call(self.client.get_meta(), "meta")
        # is_ready: REST /v1/.well-known/ready; is_live: REST /v1/.well-known/live and the
        # gRPC health service. Both answer False (not raise) when the server is down.
        if not await self._call(self.client.is_ready(), "ready check"):
            raise StoreUnavailable(STORE, f"{self.url} is not ready")
        if not await self._call(self.client.is_live(), "live check"):
            raise StoreUnavailable(STORE, f"{self.url}: gRPC health check failed")
        return f"Weaviate {meta.get('version', '?')} at {self.url}"

    async def close(self) -> None:
        await self.client.close()


def _check_vector(vector: Sequence[float]) -> None:
    if len(vector) != DIMENSIONS:
        raise ValueError(f"vectors have {DIMENSIONS} dimensions, got {len(vector)}")


def _single(vector: list[float] | list[list[float]]) -> list[float]:
    flat: list[float] = []
    for x in vector:
        if isinstance(x, list):
            raise StoreUnavailable(STORE, "a multi-vector came back where one vector was stored")
        flat.append(float(x))
    return flat


def _as_uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, AioRpcError):
        return f"gRPC {exc.code().name}: {exc.details()}"
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, AioRpcError):
        return f"{type(exc).__name__} (gRPC {cause.code().name}: {cause.details()})"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


async def _gather(calls: Sequence[Coroutine[Any, Any, T]]) -> list[T]:
    """Run calls concurrently; the first failure cancels the others and is raised as is."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


@asynccontextmanager
async def open_weaviate_index(
    url: str,
    timeout: float,
    *,
    grpc_port: int | None = None,
    api_key: str | None = None,
) -> AsyncIterator[WeaviateVectorIndex]:
    """Connect to Weaviate at ``url`` (REST) and the same host's gRPC port; close on exit.

    ``grpc_port`` defaults to 50051 (Weaviate's default). The client's start-up checks are
    skipped because one of them asks PyPI for the latest client version on every connect;
    the same server checks are made here instead (meta, ready, gRPC health).
    """
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise StoreUnavailable(STORE, f"WEAVIATE_URL must be http(s)://host[:port], got {url!r}")
    secure = parts.scheme == "https"
    host = parts.hostname
    http_port = parts.port or (443 if secure else 80)
    client = weaviate.use_async_with_custom(
        http_host=host,
        http_port=http_port,
        http_secure=secure,
        grpc_host=host,
        grpc_port=grpc_port or DEFAULT_GRPC_PORT,
        grpc_secure=secure,
        auth_credentials=api_key,
        additional_config=AdditionalConfig(
            timeout=Timeout(init=timeout, query=timeout, insert=timeout)
        ),
        skip_init_checks=True,
    )
    index = WeaviateVectorIndex(client, timeout=timeout, url=f"{parts.scheme}://{parts.netloc}")
    try:
        await index._call(client.connect(), "connect")
        await index.ping()
        yield index
    finally:
        await client.close()
