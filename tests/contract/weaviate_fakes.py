"""An in-process stand-in for Weaviate, for driving the real weaviate-client through our adapter.

Built the way weaviate-client tests itself (its mock_tests/): a grpc server on 127.0.0.1 that
registers the client's own generated ``WeaviateServicer`` (weaviate.proto.v1) and a gRPC health
servicer, plus pytest-httpserver answering the REST calls the client makes (``/v1/meta``,
``/v1/.well-known/ready`` and ``live``, ``/v1/schema`` for collections and their tenants).

The servicer records every request it receives, so tests can assert on what went over the wire
(collection, tenant, vector, limit, filters, hybrid query and alpha), and answers from a small
in-memory store keyed by (collection, tenant, uuid): searches rank the stored vectors by cosine
distance, so a real contract can run against it. Like Weaviate, it refuses a request for a
multi-tenant collection that names no tenant or a tenant that does not exist.

Fault injection: ``fail_grpc`` makes the next N gRPC calls (of one method, or any) end with a
status code, after an optional delay; ``fail_rest`` makes the next N REST calls (to one path
prefix, or any) answer with an HTTP status.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import struct
import threading
import time
import uuid
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from pytest_httpserver import HTTPServer
from weaviate.proto.v1 import (
    base_pb2,
    base_search_pb2,
    batch_delete_pb2,
    batch_pb2,
    properties_pb2,
    search_get_pb2,
    tenants_pb2,
    weaviate_pb2_grpc,
)
from werkzeug.wrappers import Request, Response

VERSION = "1.33.0"
DEFAULT_LIMIT = 10  # Weaviate's QUERY_DEFAULTS_LIMIT
RENDEZVOUS_MAX = 64

M = TypeVar("M", bound=Message)
Op = base_pb2.Filters.Operator


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


@dataclass
class StoredObject:
    uuid: str
    vector: list[float]
    properties: dict[str, Any]


@dataclass
class GrpcFault:
    code: grpc.StatusCode | None  # None: only delay, then answer normally
    remaining: int
    method: str | None
    delay: float
    details: str


@dataclass
class Rendezvous:
    """Calls that must all be in flight at once: each waits at the barrier for the others.
    A client that sends them one after another breaks it (after its timeout)."""

    barrier: threading.Barrier
    remaining: int
    method: str
    when: Callable[[Message], bool]


@dataclass
class RestFault:
    status: int
    remaining: int
    path: str | None


@dataclass
class RestCall:
    method: str
    path: str
    body: Any


@dataclass
class FakeWeaviate:
    """State, request log and fault plan shared by the fake gRPC and REST servers."""

    schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    tenants: dict[str, set[str]] = field(default_factory=dict)
    objects: dict[tuple[str, str], dict[str, StoredObject]] = field(default_factory=dict)
    grpc_requests: list[tuple[str, Message]] = field(default_factory=list)
    rest_requests: list[RestCall] = field(default_factory=list)
    grpc_port: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._grpc_faults: list[GrpcFault] = []
        self._rest_faults: list[RestFault] = []
        self._rendezvous: list[Rendezvous] = []
        self._server: grpc.Server | None = None
        self._stopping = threading.Event()

    # -- lifecycle ------------------------------------------------------------------------

    def start_grpc(self) -> int:
        # Workers enough for a rendezvous of a page's searches, all held at once.
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=RENDEZVOUS_MAX + 8))
        weaviate_pb2_grpc.add_WeaviateServicer_to_server(  # type: ignore[no-untyped-call]
            FakeWeaviateServicer(self), server
        )
        health_pb2_grpc.add_HealthServicer_to_server(FakeHealthServicer(self), server)
        self.grpc_port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._server = server
        return self.grpc_port

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.stop(grace=None).wait(5)
            self._server = None

    def install(self, httpserver: HTTPServer) -> None:
        httpserver.expect_request(re.compile(r"^/.*$")).respond_with_handler(self._rest)

    # -- fault injection ------------------------------------------------------------------

    def fail_grpc(
        self,
        code: grpc.StatusCode | None,
        times: int = 1,
        *,
        method: str | None = None,
        delay: float = 0.0,
        details: str = "injected by the fake",
    ) -> None:
        """The next ``times`` calls (to ``method`` if given: "Search", "BatchObjects", ...)
        wait ``delay`` seconds, then fail with ``code`` (or, if None, answer normally)."""
        with self._lock:
            self._grpc_faults.append(GrpcFault(code, times, method, delay, details))

    def rendezvous(
        self,
        method: str,
        parties: int,
        *,
        when: Callable[[Message], bool] = lambda _request: True,
        timeout: float = 10.0,
    ) -> threading.Barrier:
        """The next ``parties`` calls to ``method`` (that ``when`` accepts) are held until all
        of them have arrived: proof, without timing anything, that the client had them in
        flight together. The returned barrier is broken if they did not meet in ``timeout``."""
        assert parties <= RENDEZVOUS_MAX, "more parties than the server has workers"
        barrier = threading.Barrier(parties, timeout=timeout)
        with self._lock:
            self._rendezvous.append(Rendezvous(barrier, parties, method, when))
        return barrier

    def fail_rest(self, status: int, times: int = 1, *, path: str | None = None) -> None:
        """The next ``times`` REST calls (whose path starts with ``path`` if given) answer
        ``status``."""
        with self._lock:
            self._rest_faults.append(RestFault(status, times, path))

    def clear_faults(self) -> None:
        with self._lock:
            self._grpc_faults.clear()
            self._rest_faults.clear()
            self._rendezvous.clear()

    # -- inspection -----------------------------------------------------------------------

    def requests(self, method: str, kind: type[M]) -> list[M]:
        with self._lock:
            return [r for m, r in self.grpc_requests if m == method and isinstance(r, kind)]

    def count(self, method: str) -> int:
        with self._lock:
            return sum(1 for m, _ in self.grpc_requests if m == method)

    def searches(self) -> list[search_get_pb2.SearchRequest]:
        return self.requests("Search", search_get_pb2.SearchRequest)

    def batches(self) -> list[batch_pb2.BatchObjectsRequest]:
        return self.requests("BatchObjects", batch_pb2.BatchObjectsRequest)

    def deletes(self) -> list[batch_delete_pb2.BatchDeleteRequest]:
        return self.requests("BatchDelete", batch_delete_pb2.BatchDeleteRequest)

    def tenant_gets(self) -> list[tenants_pb2.TenantsGetRequest]:
        return self.requests("TenantsGet", tenants_pb2.TenantsGetRequest)

    def grpc_methods(self) -> list[str]:
        with self._lock:
            return [m for m, _ in self.grpc_requests]

    def reset_log(self) -> None:
        with self._lock:
            self.grpc_requests.clear()
            self.rest_requests.clear()

    def stored(self, collection: str, tenant: str) -> dict[str, StoredObject]:
        with self._lock:
            return dict(self.objects.get((collection, tenant), {}))

    # -- gRPC plumbing --------------------------------------------------------------------

    def handle(
        self,
        method: str,
        request: M,
        context: grpc.ServicerContext,
        answer: Callable[[M], Any],
    ) -> Any:
        copy = type(request)()
        copy.CopyFrom(request)
        with self._lock:
            self.grpc_requests.append((method, copy))
            fault = self._take_grpc_fault(method)
            meeting = self._take_rendezvous(method, copy)
        if meeting is not None:
            with contextlib.suppress(threading.BrokenBarrierError):  # the test reads .broken
                meeting.wait()
        if fault is not None:
            if fault.delay:
                self._stopping.wait(fault.delay)
            if fault.code is not None:
                context.abort(fault.code, fault.details)
        try:
            with self._lock:
                return answer(request)
        except _Abort as abort:
            _abort(context, abort)

    def _take_grpc_fault(self, method: str) -> GrpcFault | None:
        for fault in self._grpc_faults:
            if fault.remaining > 0 and fault.method in (None, method):
                fault.remaining -= 1
                return fault
        return None

    def _take_rendezvous(self, method: str, request: Message) -> threading.Barrier | None:
        for meeting in self._rendezvous:
            if meeting.remaining > 0 and meeting.method == method and meeting.when(request):
                meeting.remaining -= 1
                return meeting.barrier
        return None

    def _check_scope(self, collection: str, tenant: str) -> None:
        if collection not in self.schemas:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"could not find class {collection} in schema")
        if _multi_tenant(self.schemas[collection]):
            if not tenant:
                raise _Abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"class {collection} has multi-tenancy enabled, but request was without tenant",
                )
            if tenant not in self.tenants.get(collection, set()):
                raise _Abort(grpc.StatusCode.NOT_FOUND, f'tenant not found: "{tenant}"')

    # -- gRPC answers ---------------------------------------------------------------------

    def search(self, request: search_get_pb2.SearchRequest) -> search_get_pb2.SearchReply:
        started = time.perf_counter()
        self._check_scope(request.collection, request.tenant)
        candidates = list(self.objects.get((request.collection, request.tenant), {}).values())
        if request.HasField("filters"):
            candidates = [o for o in candidates if _matches(request.filters, o)]
        limit = request.limit or DEFAULT_LIMIT
        scored: list[tuple[StoredObject, float | None, float | None]]  # object, distance, score
        if request.HasField("near_vector"):
            query = _near_vector(request.near_vector)
            distances = [(o, 1.0 - _cosine(query, o.vector)) for o in candidates]
            distances.sort(key=lambda pair: (pair[1], pair[0].uuid))
            scored = [(o, d, None) for o, d in distances]
        elif request.HasField("hybrid_search"):
            scored = _hybrid(request.hybrid_search, candidates)
        elif request.HasField("near_object") or request.HasField("bm25_search"):
            raise _Abort(grpc.StatusCode.UNIMPLEMENTED, "the fake does not do this search")
        else:  # fetch objects: uuid order, cursor in `after`
            candidates.sort(key=lambda o: o.uuid)
            if request.after:
                candidates = [o for o in candidates if o.uuid > request.after.lower()]
            scored = [(o, None, None) for o in candidates]
        page = scored[request.offset : request.offset + limit]
        schema = self.schemas[request.collection]
        wanted = list(request.properties.non_ref_properties)
        if request.properties.return_all_nonref_properties:
            wanted = [p["name"] for p in schema.get("properties", [])]
        results = []
        for obj, distance, score in page:
            metadata = search_get_pb2.MetadataResult(
                id=obj.uuid, id_as_bytes=uuid.UUID(obj.uuid).bytes
            )
            if request.metadata.distance and distance is not None:
                metadata.distance = distance
                metadata.distance_present = True
            if request.metadata.score and score is not None:
                metadata.score = score
                metadata.score_present = True
            if request.metadata.vector or "default" in request.metadata.vectors:
                metadata.vectors.append(
                    base_pb2.Vectors(
                        name="default",
                        vector_bytes=struct.pack(f"<{len(obj.vector)}f", *obj.vector),
                        type=base_pb2.Vectors.VECTOR_TYPE_SINGLE_FP32,
                    )
                )
            results.append(
                search_get_pb2.SearchResult(
                    metadata=metadata,
                    properties=search_get_pb2.PropertiesResult(
                        target_collection=request.collection,
                        non_ref_props=_properties(schema, obj, wanted),
                    ),
                )
            )
        return search_get_pb2.SearchReply(took=time.perf_counter() - started, results=results)

    def batch_objects(self, request: batch_pb2.BatchObjectsRequest) -> batch_pb2.BatchObjectsReply:
        started = time.perf_counter()
        errors = []
        for index, obj in enumerate(request.objects):
            try:
                self._check_scope(obj.collection, obj.tenant)
            except _Abort as abort:
                errors.append(
                    batch_pb2.BatchObjectsReply.BatchError(index=index, error=abort.details)
                )
                continue
            properties = MessageToDict(obj.properties.non_ref_properties)
            self.objects.setdefault((obj.collection, obj.tenant), {})[obj.uuid.lower()] = (
                StoredObject(obj.uuid.lower(), _object_vector(obj), properties)
            )
        return batch_pb2.BatchObjectsReply(took=time.perf_counter() - started, errors=errors)

    def batch_delete(
        self, request: batch_delete_pb2.BatchDeleteRequest
    ) -> batch_delete_pb2.BatchDeleteReply:
        started = time.perf_counter()
        self._check_scope(request.collection, request.tenant)
        stored = self.objects.get((request.collection, request.tenant), {})
        matched = [o for o in stored.values() if _matches(request.filters, o)]
        if not request.dry_run:
            for obj in matched:
                del stored[obj.uuid]
        return batch_delete_pb2.BatchDeleteReply(
            took=time.perf_counter() - started,
            matches=len(matched),
            successful=0 if request.dry_run else len(matched),
            failed=0,
            objects=[
                batch_delete_pb2.BatchDeleteObject(
                    uuid=uuid.UUID(o.uuid).bytes, successful=not request.dry_run
                )
                for o in matched
            ]
            if request.verbose
            else [],
        )

    def tenants_get(self, request: tenants_pb2.TenantsGetRequest) -> tenants_pb2.TenantsGetReply:
        started = time.perf_counter()
        if request.collection not in self.schemas:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"class {request.collection} not found")
        existing = self.tenants.get(request.collection, set())
        names = list(request.names.values) if request.HasField("names") else sorted(existing)
        return tenants_pb2.TenantsGetReply(
            took=time.perf_counter() - started,
            tenants=[
                tenants_pb2.Tenant(
                    name=name, activity_status=tenants_pb2.TENANT_ACTIVITY_STATUS_HOT
                )
                for name in names
                if name in existing
            ],
        )

    # -- REST -----------------------------------------------------------------------------

    def _rest(self, request: Request) -> Response:
        body = request.get_json(silent=True) if request.data else None
        path = request.path
        with self._lock:
            self.rest_requests.append(RestCall(request.method, path, body))
            for fault in self._rest_faults:
                if fault.remaining > 0 and (fault.path is None or path.startswith(fault.path)):
                    fault.remaining -= 1
                    return _json({"error": [{"message": "injected by the fake"}]}, fault.status)
            return self._route(request.method, path, body)

    def _route(self, method: str, path: str, body: Any) -> Response:
        if path == "/v1/meta" and method == "GET":
            return _json(
                {
                    "hostname": "http://[::]:8080",
                    "version": VERSION,
                    "modules": {},
                    "grpcMaxMessageSize": 104858000,
                }
            )
        if path in ("/v1/.well-known/ready", "/v1/.well-known/live"):
            return Response(status=200)
        if path == "/v1/schema" and method == "GET":
            return _json({"classes": list(self.schemas.values())})
        if path == "/v1/schema" and method == "POST":
            name = str(body["class"])
            if name in self.schemas:
                return _json({"error": [{"message": f"class name {name!r} already exists"}]}, 422)
            self.schemas[name] = body
            self.tenants[name] = set()
            return _json(body)
        if match := re.fullmatch(r"/v1/schema/(\w+)", path):
            name = match.group(1)
            if method == "GET":
                return _json(self.schemas[name]) if name in self.schemas else Response(status=404)
            if method == "DELETE":
                self.schemas.pop(name, None)
                self.tenants.pop(name, None)
                for key in [k for k in self.objects if k[0] == name]:
                    del self.objects[key]
                return Response(status=200)
        if match := re.fullmatch(r"/v1/schema/(\w+)/tenants", path):
            name = match.group(1)
            if name not in self.schemas:
                return _json({"error": [{"message": f"class {name} not found"}]}, 422)
            if method == "GET":
                return _json(
                    [{"name": t, "activityStatus": "HOT"} for t in sorted(self.tenants[name])]
                )
            if method == "POST":
                # Like Weaviate >= 1.25: adding an existing tenant is not an error.
                for tenant in body:
                    self.tenants[name].add(str(tenant["name"]))
                return _json(body)
        if match := re.fullmatch(r"/v1/schema/(\w+)/tenants/([\w-]+)", path):
            name, tenant = match.groups()
            found = tenant in self.tenants.get(name, set())
            if method in ("GET", "HEAD"):
                if not found:
                    return Response(status=404)
                return _json({"name": tenant, "activityStatus": "HOT"})
        return _json({"error": [{"message": f"the fake has no {method} {path}"}]}, 404)


class FakeWeaviateServicer(weaviate_pb2_grpc.WeaviateServicer):
    """The client's own generated servicer; the methods the adapter uses are answered."""

    def __init__(self, fake: FakeWeaviate) -> None:
        self.fake = fake

    def Search(
        self, request: search_get_pb2.SearchRequest, context: grpc.ServicerContext
    ) -> search_get_pb2.SearchReply:
        reply: search_get_pb2.SearchReply = self.fake.handle(
            "Search", request, context, self.fake.search
        )
        return reply

    def BatchObjects(
        self, request: batch_pb2.BatchObjectsRequest, context: grpc.ServicerContext
    ) -> batch_pb2.BatchObjectsReply:
        reply: batch_pb2.BatchObjectsReply = self.fake.handle(
            "BatchObjects", request, context, self.fake.batch_objects
        )
        return reply

    def BatchDelete(
        self, request: batch_delete_pb2.BatchDeleteRequest, context: grpc.ServicerContext
    ) -> batch_delete_pb2.BatchDeleteReply:
        reply: batch_delete_pb2.BatchDeleteReply = self.fake.handle(
            "BatchDelete", request, context, self.fake.batch_delete
        )
        return reply

    def TenantsGet(
        self, request: tenants_pb2.TenantsGetRequest, context: grpc.ServicerContext
    ) -> tenants_pb2.TenantsGetReply:
        reply: tenants_pb2.TenantsGetReply = self.fake.handle(
            "TenantsGet", request, context, self.fake.tenants_get
        )
        return reply


class FakeHealthServicer(health.HealthServicer):
    """grpc.health.v1 (the client's start-up and is_live checks), with the fake's faults."""

    def __init__(self, fake: FakeWeaviate) -> None:
        super().__init__()
        self.fake = fake

    def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        reply: health_pb2.HealthCheckResponse = self.fake.handle(
            "Check",
            request,
            context,
            lambda _: health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING),
        )
        return reply


# -- helpers --------------------------------------------------------------------------------


def _abort(context: grpc.ServicerContext, abort: _Abort) -> NoReturn:
    context.abort(abort.code, abort.details)


def _json(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, content_type="application/json")


def _multi_tenant(schema: dict[str, Any]) -> bool:
    return bool(schema.get("multiTenancyConfig", {}).get("enabled"))


def _unpack(data: bytes) -> list[float]:
    return list(struct.unpack(f"<{len(data) // 4}f", data))


def _near_vector(near: base_search_pb2.NearVector) -> list[float]:
    if near.vectors:
        return _unpack(near.vectors[0].vector_bytes)
    if near.vector_bytes:
        return _unpack(near.vector_bytes)
    if near.vector_for_targets:
        return _unpack(near.vector_for_targets[0].vector_bytes)
    return list(near.vector)


def hybrid_vector(hybrid: base_search_pb2.Hybrid) -> list[float]:
    if hybrid.vector_bytes:
        return _unpack(hybrid.vector_bytes)
    if hybrid.vectors:
        return _unpack(hybrid.vectors[0].vector_bytes)
    if hybrid.HasField("near_vector"):
        return _near_vector(hybrid.near_vector)
    return list(hybrid.vector)


def hybrid_alpha(hybrid: base_search_pb2.Hybrid) -> float:
    return hybrid.alpha_param if hybrid.use_alpha_param else hybrid.alpha


def _object_vector(obj: batch_pb2.BatchObject) -> list[float]:
    if obj.vectors:
        named = {v.name: v for v in obj.vectors}
        chosen = named.get("default", obj.vectors[0])
        return _unpack(chosen.vector_bytes)
    if obj.vector_bytes:
        return _unpack(obj.vector_bytes)
    return list(obj.vector)


def object_vector_of(obj: batch_pb2.BatchObject) -> list[float]:
    return _object_vector(obj)


def near_vector_of(request: search_get_pb2.SearchRequest) -> list[float]:
    return _near_vector(request.near_vector)


def _cosine(a: list[float], b: list[float]) -> float:
    if len(a) != len(b):
        raise _Abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"vector lengths don't match: {len(a)} vs {len(b)}",
        )
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def _tokens(text: str) -> set[str]:
    return {t for t in re.split(r"\W+", text.lower()) if t}


def _hybrid(
    hybrid: base_search_pb2.Hybrid, candidates: list[StoredObject]
) -> list[tuple[StoredObject, float | None, float | None]]:
    """A stand-in for Weaviate's fusion: alpha * vector similarity + (1 - alpha) * keywords."""
    alpha = hybrid_alpha(hybrid)
    vector = hybrid_vector(hybrid)
    terms = _tokens(hybrid.query)
    fields = list(hybrid.properties) or ["text"]
    scored: list[tuple[StoredObject, float | None, float | None]] = []
    for obj in candidates:
        similarity = (1.0 + _cosine(vector, obj.vector)) / 2 if vector else 0.0
        words: set[str] = set()
        for name in fields:
            words |= _tokens(str(obj.properties.get(name, "")))
        keywords = len(terms & words) / len(terms) if terms else 0.0
        scored.append((obj, None, alpha * similarity + (1 - alpha) * keywords))
    scored.sort(key=lambda t: (-(t[2] or 0.0), t[0].uuid))
    return scored


def _value(obj: StoredObject, name: str) -> str | None:
    if name == "_id":
        return obj.uuid
    value = obj.properties.get(name)
    return None if value is None else str(value)


def _same(a: str | None, b: str) -> bool:
    return a is not None and a.lower() == b.lower()


def _matches(where: base_pb2.Filters, obj: StoredObject) -> bool:
    op = where.operator
    if op == Op.OPERATOR_AND:
        return all(_matches(f, obj) for f in where.filters)
    if op == Op.OPERATOR_OR:
        return any(_matches(f, obj) for f in where.filters)
    if op == Op.OPERATOR_NOT:
        return not _matches(where.filters[0], obj)
    name = where.target.property if where.HasField("target") else where.on[-1]
    value = _value(obj, name)
    if op == Op.OPERATOR_EQUAL:
        return _same(value, where.value_text)
    if op == Op.OPERATOR_NOT_EQUAL:
        return not _same(value, where.value_text)
    if op == Op.OPERATOR_CONTAINS_ANY:
        return any(_same(value, v) for v in where.value_text_array.values)
    raise _Abort(grpc.StatusCode.UNIMPLEMENTED, f"the fake has no filter {Op.Name(op)}")


def _properties(
    schema: dict[str, Any], obj: StoredObject, wanted: list[str]
) -> properties_pb2.Properties:
    types = {p["name"]: p["dataType"][0] for p in schema.get("properties", [])}
    fields: dict[str, properties_pb2.Value] = {}
    for name in wanted:
        value = obj.properties.get(name)
        if value is None:
            continue
        if types.get(name) == "uuid":
            fields[name] = properties_pb2.Value(uuid_value=str(value))
        else:
            fields[name] = properties_pb2.Value(text_value=str(value))
    return properties_pb2.Properties(fields=fields)
