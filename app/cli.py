"""The `chimera` command line: serve, migrate, seed, tenants, tokens, schema, doctor.

Every command that needs a store starts the embedded engine when its URL is unset (dev), or
attaches to the one a running `chimera serve` started. Failures are one line naming the
store, never a traceback: an operator should see what to fix, not where Python was. Exit
status 1 is a failure at work, 2 a configuration to fix (as argparse uses 2 for usage).
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import logging
import math
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

import jwt
from pydantic import ValidationError
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from app import migrations
from app.api_keys import create_api_key, looks_like_key
from app.auth import (
    ALGORITHM,
    TOKEN_TTL_MAX_SECONDS,
    TOKEN_TTL_MIN_SECONDS,
    Role,
    auth_secret,
    mint_token,
    minting_subject_problem,
)
from app.commands.documents import add_documents, registered_summary
from app.commands.tenants import create_tenant, set_tenant_limits, tenant_by_slug
from app.dashboard.session import demo_token
from app.documents.manifest import Document, ManifestError, read_documents
from app.embedded import EmbeddedNotAllowed, embedded_engines
from app.errors import BadUserInput, ChimeraError
from app.ids import decode_id
from app.lifespan import Stores, open_stores
from app.logs import configure_logging, narrate
from app.ratelimit.limits import default_limits, tenant_limits
from app.settings import Settings, load_settings
from app.stopping import stop_task
from app.stores.postgres import engine as pg
from app.stores.postgres.tables import agent as agent_table
from app.stores.redis import client as rd
from app.stores.redis.layout import upgrade_layout
from app.telemetry.environment import TelemetryConfigurationError, metrics_export, trace_export
from app.validation import clean_name

if TYPE_CHECKING:
    from app.telemetry import Telemetry

T = TypeVar("T")
log = logging.getLogger("chimera")


class CommandError(Exception):
    """A failure to report in one line with exit status 1."""


class ConfigurationError(CommandError):
    """A configuration to fix, found before anything is started: exit status 2."""


EXIT_CONFIGURATION = 2


@asynccontextmanager
async def _app_redis(ready: Settings) -> AsyncIterator[Redis]:
    """The app's Redis for one command: reachable (or a clear STORE_UNAVAILABLE error) and on
    this version's key layout, as the service itself would find it, closed afterwards."""
    url, timeout = ready.redis_url or "", ready.store_timeout_seconds
    redis = rd.create_redis(url, timeout=timeout)
    try:
        await rd.ping(redis, url, timeout=timeout)
        await upgrade_layout(redis)
        yield redis
    finally:
        await redis.aclose()


def _with_engine(settings: Settings, action: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    async def run() -> T:
        assert settings.database_url
        engine = pg.create_engine(settings.database_url, timeout=settings.store_timeout_seconds)
        try:
            await pg.ping(engine, timeout=settings.store_timeout_seconds)
            return await action(engine)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Check everything that can be checked without a store first (the settings themselves,
    production's URLs and secret, the port), so that a mistake is one line and exit status 2
    before anything is started, migrated or printed; then engines, migrations, demo data,
    the banner, and uvicorn on the socket bound at the start."""
    narrate("alembic.runtime.migration")
    from app.main import create_app
    from app.seed import database_is_empty, seed_demo
    from app.serving import ChimeraServer, server_config

    if "public_url" not in settings.model_fields_set:
        # Local media URLs must point at the address this server really listens on.
        host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
        settings = settings.model_copy(update={"public_url": f"http://{host}:{args.port}"})
    check_serving_configuration(settings)
    listener = listen(args.host, args.port)
    try:
        with embedded_engines(settings) as ready:

            async def prepare(engine: AsyncEngine) -> str | None:
                await rd.ping_url(ready.redis_url or "", timeout=ready.store_timeout_seconds)
                await migrations.upgrade(engine)
                if not ready.is_production and not args.no_seed and await database_is_empty(engine):
                    async with _app_redis(ready) as redis:
                        await seed_demo(engine, redis)
                return await demo_token(engine, ready, auth_secret(ready))

            token = _with_engine(ready, prepare)
            config = server_config(create_app(ready), ready, host=args.host, port=args.port)
            # uvicorn's Config installed its own handlers.
            configure_logging(
                ready.log_level, json_lines=ready.json_logs, uvicorn_access=not ready.access_log
            )
            print_banner(ready, f"http://{args.host}:{args.port}/graphql", token)
            ChimeraServer(config).run(sockets=[listener])
    finally:
        listener.close()
    return 0


def check_telemetry_configuration(*, metrics: bool) -> None:
    """Refuse OTEL_* values the process cannot honour (an exporter or protocol it lacks)
    before anything starts: for traces always, for metrics where the process exports them."""
    try:
        trace_export(os.environ)
        if metrics:
            metrics_export(os.environ)
    except TelemetryConfigurationError as exc:
        raise ConfigurationError(str(exc)) from exc


def check_serving_configuration(settings: Settings) -> None:
    """What `serve` needs beyond valid settings: in production, both store URLs and a secret
    (its strength is checked with the settings); and OTEL_* values it can honour."""
    check_telemetry_configuration(metrics=True)
    if settings.is_production:
        missing = [
            name
            for name, value in (
                ("DATABASE_URL", settings.database_url),
                ("REDIS_URL", settings.redis_url),
            )
            if not value
        ]
        if missing:
            raise ConfigurationError(
                f"{' and '.join(missing)} must be set when CHIMERA_ENV=production"
            )
        if settings.auth_secret is None:
            raise ConfigurationError(
                "CHIMERA_AUTH_SECRET must be set in production (32+ random characters, e.g. "
                "from `openssl rand -hex 32`)"
            )


def listen(host: str, port: int) -> socket.socket:
    """Bind the listening socket before anything else: a taken port is then found in a
    moment, not after the engines, migrations and banner. uvicorn serves on this very socket,
    so nothing can take the port in between."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ConfigurationError(
            f"cannot listen on {host}:{port}: {exc.strerror} (--host)"
        ) from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        hint = ""
        if exc.errno == errno.EADDRINUSE:
            hint = "; another process uses it (another `chimera serve`?): choose a port with --port"
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror}{hint}") from None
    return sock


def print_banner(settings: Settings, url: str, token: str | None) -> None:
    """Where the API is, and in dev a demo token in the two forms people paste it in: a shell
    line for curl, and the header GraphiQL takes."""
    ide = "" if settings.is_production else "  (GraphiQL on GET)"
    dashboard = url.removesuffix("/graphql") + "/"
    signed_in = "  (signs in the demo tenant by itself)" if token else ""
    lines = [f"Chimera dashboard: {dashboard}{signed_in}", f"Chimera GraphQL: {url}{ide}"]
    if token:
        lines += [
            "Demo tenant token (admin). For curl, paste into your shell:",
            f"  export TOKEN={token}",
            "In GraphiQL, paste into the Headers tab (X-Chimera-Plan: each answer lists its "
            "store calls):",
            f'  {{"Authorization": "Bearer {token}", "X-Chimera-Plan": "1"}}',
        ]
    lines.append(f"Data directory: {settings.resolved_data_dir}   Ctrl-C stops everything.")
    print("\n".join(lines), flush=True)


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    narrate("alembic")
    with embedded_engines(settings, redis=False) as ready:

        async def run(engine: AsyncEngine) -> str | None:
            if args.downgrade:
                await migrations.downgrade(engine, args.downgrade)
            else:
                await migrations.upgrade(engine, args.revision)
            return await migrations.current_revision(engine)

        print(f"database at revision {_with_engine(ready, run) or 'base'}")
    return 0


def cmd_seed(args: argparse.Namespace, settings: Settings) -> int:
    from app.seed import seed_demo

    if not args.demo:
        raise CommandError("nothing to seed: pass --demo")
    with embedded_engines(settings) as ready:

        async def run(engine: AsyncEngine) -> bool:
            await migrations.upgrade(engine)
            async with _app_redis(ready) as redis:
                return (await seed_demo(engine, redis)).created

        created = _with_engine(ready, run)
    print("demo tenant created" if created else "demo tenant already exists; left as is")
    return 0


def cmd_tenant_create(args: argparse.Namespace, settings: Settings) -> int:
    """Create a tenant. Its name is held to the API's rules for names, checked here first so
    that a bad one is refused by its flag before any engine starts."""
    if args.name is not None:
        clean_name(args.name, "--name")
    with embedded_engines(settings, redis=False) as ready:

        async def run(engine: AsyncEngine) -> Any:
            await migrations.upgrade(engine)
            return await create_tenant(engine, args.slug, args.name)

        row = _with_engine(ready, run)
    print(f"tenant {row.slug} created ({row.id})")
    return 0


LIMIT_OPTIONS = {
    "max_cost": ("--max-cost", int, "points one operation may be priced at"),
    "rate_capacity": ("--capacity", int, "points the tenant's bucket holds"),
    "rate_per_second": ("--per-second", float, "points the tenant's bucket regains a second"),
    "client_rate_capacity": ("--client-capacity", int, "points each client's bucket holds"),
    "client_rate_per_second": (
        "--client-per-second",
        float,
        "points each client's bucket regains a second",
    ),
}


def cmd_tenant_limits(args: argparse.Namespace, settings: Settings) -> int:
    """Show a tenant's limits, or change them: a number sets one, `default` clears it."""
    changes: dict[str, float | int | None] = {}
    for column, (_, kind, _) in LIMIT_OPTIONS.items():
        value = getattr(args, column)
        if value is None:
            continue
        if value == "default":
            changes[column] = None
            continue
        flag = LIMIT_OPTIONS[column][0]
        try:
            number = kind(value)
        except ValueError as exc:
            raise CommandError(f"{flag} takes a number or 'default', not {value!r}") from exc
        if not math.isfinite(number):
            raise CommandError(f"{flag} takes a number or 'default', not {value!r}")
        # Checked here as well as in set_tenant_limits so the message names the flag the
        # operator typed, not the column behind it.
        if number <= 0:
            raise CommandError(f"{flag} must be greater than 0")
        changes[column] = number
    with embedded_engines(settings, redis=False) as ready:

        async def run(engine: AsyncEngine) -> Any:
            await migrations.upgrade(engine)
            try:
                return await set_tenant_limits(engine, args.slug, changes)
            except BadUserInput as exc:
                raise CommandError(exc.message) from exc

        row = _with_engine(ready, run)
    if row is None:
        raise CommandError(f"no tenant {args.slug!r}; create it with `chimera tenant create`")
    effective = tenant_limits(default_limits(settings), row._mapping)
    print(f"tenant {row.slug} limits (applied by every instance within a minute):")
    shown = {
        "max_cost": effective.max_cost,
        "rate_capacity": effective.tenant_capacity,
        "rate_per_second": effective.tenant_per_second,
        "client_rate_capacity": effective.client_capacity,
        "client_rate_per_second": effective.client_per_second,
    }
    for column, (flag, _, meaning) in LIMIT_OPTIONS.items():
        origin = "set" if row._mapping[column] is not None else "default"
        print(f"  {flag[2:]:<18} {shown[column]:>12g}  ({origin}; {meaning})")
    return 0


def cmd_apikey_create(args: argparse.Namespace, settings: Settings) -> int:
    """Create a tenant API key and print it: the only time it is ever shown."""
    role = Role(args.role)
    with embedded_engines(settings, redis=False) as ready:

        async def run(engine: AsyncEngine) -> Any:
            await migrations.upgrade(engine)
            row = await tenant_by_slug(engine, args.tenant)
            if row is None:
                raise CommandError(
                    f"no tenant {args.tenant!r}; create it with `chimera tenant create`"
                )
            try:
                return await create_api_key(
                    engine, row.id, name=args.name, role=role, created_by="operator:chimera-cli"
                )
            except BadUserInput as exc:
                raise CommandError(exc.message) from exc

        created = _with_engine(ready, run)
    print(created.key)
    print(
        f"API key {created.prefix} ({role.value}) created for {args.tenant}; this is the only "
        "time it is shown. Send it as `Authorization: Bearer <key>`.",
        file=sys.stderr,
    )
    return 0


def cmd_documents_add(args: argparse.Namespace, settings: Settings) -> int:
    """Register a client build's documents as trusted (docs/operations.md)."""
    documents: list[Document] = []
    for name in args.files:
        try:
            documents += read_documents(Path(name))
        except ManifestError as exc:
            raise CommandError(str(exc)) from exc
    with embedded_engines(settings, redis=False) as ready:

        async def run(engine: AsyncEngine) -> Any:
            await migrations.upgrade(engine)
            return await add_documents(engine, documents)

        added = _with_engine(ready, run)
    print(registered_summary(added, len({d.id for d in documents})))
    return 0


def _agent_arg(value: str | None, role: Role) -> UUID | None:
    """``--agent``: a GraphQL Agent id or its UUID; required by, and only allowed with, the
    agent role."""
    if (value is None) != (role is not Role.AGENT):
        raise CommandError("--agent ID goes with --role agent, and that role needs it")
    if value is None:
        return None
    try:
        return UUID(value)
    except ValueError:
        try:
            return decode_id(value, "Agent")
        except ChimeraError as exc:
            raise CommandError(f"--agent {value!r} is not an agent id") from exc


def cmd_token_revoke(args: argparse.Namespace, settings: Settings) -> int:
    """Revoke a token: its id goes on its tenant's list in Redis until it would expire."""
    from app.revocations import revoke_token

    credential = sys.stdin.read().strip() if args.value in (None, "-") else args.value.strip()
    if looks_like_key(credential):
        # Not a JWT at all: without this, PyJWT's "Not enough segments" is all one would see.
        raise CommandError(
            "this is an API key, not a token: revoke it with the revokeApiKey mutation "
            "(as the tenant's admin; the apiKeys query lists the keys' ids)"
        )
    with embedded_engines(settings) as ready:
        secret = auth_secret(ready)
        try:
            claims = jwt.decode(
                credential,
                secret,
                algorithms=[ALGORITHM],
                options={"verify_exp": False, "require": ["exp", "tid", "jti"]},
            )
        except jwt.MissingRequiredClaimError as exc:
            raise CommandError(
                "this token has no id (jti) and cannot be revoked; rotate "
                "CHIMERA_AUTH_SECRET to void every token minted before token ids"
            ) from exc
        except jwt.InvalidTokenError as exc:
            raise CommandError(f"not a token of this deployment: {exc}") from exc

        async def run(engine: AsyncEngine) -> bool:
            async with _app_redis(ready) as redis:
                return await revoke_token(
                    redis, UUID(str(claims["tid"])), str(claims["jti"]), float(claims["exp"])
                )

        revoked = _with_engine(ready, run)
    who = f"{claims.get('sub')} of {claims.get('tenant')}"
    print(
        f"token {claims['jti']} ({who}) revoked; every instance refuses it within seconds"
        if revoked
        else f"token {claims['jti']} ({who}) has expired already; nothing to revoke"
    )
    return 0


def _token_ttl(text: str | None) -> int | None:
    """``--ttl``: whole seconds, at least a minute and at most TOKEN_TTL_MAX_SECONDS (a leaked
    token works until it expires); refused in one line, exit status 2."""
    if text is None:
        return None
    try:
        seconds = int(text)
    except ValueError:
        seconds = None
    if seconds is None or not TOKEN_TTL_MIN_SECONDS <= seconds <= TOKEN_TTL_MAX_SECONDS:
        raise ConfigurationError(
            f"--ttl must be a whole number of seconds from {TOKEN_TTL_MIN_SECONDS} to "
            f"{TOKEN_TTL_MAX_SECONDS} ({TOKEN_TTL_MAX_SECONDS // 86400} days), not {text!r}"
        )
    return seconds


def cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "revoke":
        return cmd_token_revoke(args, settings)
    if args.value is not None:
        raise CommandError(f"unexpected argument {args.value!r}")
    if args.tenant is None:
        raise CommandError("--tenant is required to mint a token")
    ttl = _token_ttl(args.ttl)
    problem = minting_subject_problem(args.subject)
    if problem is not None:
        # Refused before minting: the service would refuse the token (the audit trail
        # records its subject as the actor of every change it makes).
        raise ConfigurationError(f"--subject {problem}")
    role = Role(args.role)
    agent_id = _agent_arg(args.agent, role)
    with embedded_engines(settings, redis=False) as ready:

        async def find(engine: AsyncEngine) -> tuple[Any, bool]:
            row = await tenant_by_slug(engine, args.tenant)
            if row is None or agent_id is None:
                return row, True
            async with engine.connect() as conn:
                found = await conn.scalar(
                    select(agent_table.c.id).where(
                        agent_table.c.tenant_id == row.id, agent_table.c.id == agent_id
                    )
                )
            return row, found is not None

        row, agent_found = _with_engine(ready, find)
        if row is None:
            raise CommandError(f"no tenant {args.tenant!r}; create it with `chimera tenant create`")
        if not agent_found:
            raise CommandError(f"tenant {args.tenant!r} has no agent {args.agent!r}")
        print(
            mint_token(
                auth_secret(ready),
                tenant_id=row.id,
                tenant_slug=row.slug,
                role=role,
                subject=args.subject if agent_id is None else f"agent:{agent_id}",
                ttl_seconds=ttl or ready.token_ttl_seconds,
                agent_id=agent_id,
            )
        )
    return 0


def cmd_explain(args: argparse.Namespace, settings: Settings) -> int:
    """Run a query as the tenant's admin and print its store plan (docs/operations.md).

    A query that ran but answered with errors (a resolver's or a store's) still has a plan
    worth reading, so it is printed; the exit status is then 1 all the same, so that a
    script checking a query file does not take a failing query for a working one.
    """
    from app.commands.explain import ExplainError, explain, render

    try:
        document = Path(args.file).read_text()
    except OSError as exc:
        raise CommandError(f"cannot read {args.file}: {exc.strerror}") from exc
    try:
        variables = json.loads(args.variables) if args.variables else None
    except ValueError as exc:  # JSONDecodeError, or an integer over 4,300 digits
        raise CommandError(f"--variables is not JSON: {exc}") from exc
    if variables is not None and not isinstance(variables, dict):
        raise CommandError("--variables must be a JSON object")
    with embedded_engines(settings) as ready:
        try:
            explained = asyncio.run(
                explain(ready, document, args.tenant, variables, args.operation)
            )
        except ExplainError as exc:
            raise CommandError(str(exc)) from exc
    if args.json:
        print(json.dumps(explained.plan, indent=2))
        # stdout stays the plan's JSON alone; the errors go where a script's reader looks.
        for error in explained.errors:
            print(f"chimera: error: {error.get('message')}", file=sys.stderr)
    else:
        print(render(explained))
    return 1 if explained.errors else 0


def cmd_export_schema(args: argparse.Namespace, settings: Settings) -> int:
    from app.schema import schema_sdl

    sdl = schema_sdl(federation=args.federation)
    if args.output:
        Path(args.output).write_text(sdl)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(sdl)
    return 0


def cmd_schema_check(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 1 when schema.graphql or schema.federation.graphql breaks clients of the last
    release (or of HEAD's parent) without an entry in CHANGELOG.md's Unreleased section."""
    from app.schema_changes import check

    root = Path(args.root).resolve()
    report = check(root, args.against)
    if report is None:
        print("schema-check: no release tag or parent commit to compare with", file=sys.stderr)
        return 0
    for change in report.dangerous:
        print(f"dangerous  {change.file}: {change.description}")
    for change in report.breaking:
        state = "BREAKING" if change in report.unannounced else "announced"
        print(f"{state:<10} {change.file}: {change.description}")
    if report.unannounced:
        print(
            f"schema-check: {len(report.unannounced)} breaking change(s) since {report.base} "
            "not in CHANGELOG.md's '## Unreleased' section; list each there (its line above, "
            "or its `Type.field`) if it is meant",
            file=sys.stderr,
        )
        return 1
    print(f"schema-check: no unannounced breaking change since {report.base}", file=sys.stderr)
    return 0


def cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    """One line per store; exit 1 when any is down.

    In dev an unset URL means the embedded engine, which is attached to (or started) and
    checked like any other server, unless its data directory was made by another PostgreSQL
    major: that is then what the postgres line says.
    """
    from app.doctor import run_checks
    from app.embedded import embedded_postgres_problem

    # A data directory made by another PostgreSQL major would stop the embedded server from
    # starting; the postgres line then says why, and the other stores are still checked.
    unopenable = not settings.is_production and embedded_postgres_problem(settings) is not None
    with embedded_engines(settings, postgres=not unopenable) as ready:
        checks = asyncio.run(run_checks(ready))
    for check in checks:
        print(f"{check.name:<9} {'ok' if check.ok else 'DOWN':<5} {check.detail}")
    return 0 if all(check.ok for check in checks) else 1


def _with_stores(settings: Settings, action: Callable[[Stores], Awaitable[T]]) -> T:
    async def run() -> T:
        async with open_stores(settings, auth_secret(settings)) as stores:
            return await action(stores)

    return asyncio.run(run())


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """The relay and the indexer, without serving GraphQL, for deployments that keep them off
    the app instances. Once it says they run, Ctrl-C or SIGTERM stops both and exits 0.

    The relay always runs: only one relay publishes at a time (an advisory lock), so a worker
    beside app instances that relay too is safe. The indexer runs when the embedding model
    loads; without it the worker still relays, and says the indexer is off. The ``OTEL_*``
    variables trace it as they trace `serve`: the relay's and the indexer's batches of
    traced writes (app/telemetry/event_links.py).
    """
    check_telemetry_configuration(metrics=False)
    # Until _until_signalled takes both signals over, SIGTERM interrupts start-up the way
    # Ctrl-C does (exit 130), so embedded engines this process started are stopped too.
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    from app.telemetry import instrumented, telemetry_from_environment

    telemetry = telemetry_from_environment()
    try:
        # As in `serve`: the stores open instrumented, idle polls are not traced, batches of
        # traced writes are.
        with (
            embedded_engines(settings) as ready,
            instrumented(telemetry, weaviate=settings.uses_weaviate),
        ):
            work = partial(_work, telemetry=telemetry, relay_partitions=ready.relay_partitions)
            return _with_stores(ready, work)
    finally:
        signal.signal(signal.SIGTERM, previous)


async def _work(stores: Stores, *, telemetry: Telemetry | None, relay_partitions: int = 1) -> int:
    from app.events.relay import run_forever as relay_forever
    from app.indexing.indexer import run_forever as index_forever
    from app.metrics.consumer import run_forever as metrics_forever
    from app.queue.sweeper import run_forever as sweep_forever

    tracer = telemetry.tracer("chimera.worker") if telemetry is not None else None
    jobs: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
        "relay": lambda: relay_forever(
            stores.engine, stores.redis, tracer=tracer, partition_count=relay_partitions
        ),
        "metrics": lambda: metrics_forever(stores.engine),
        "tasks": lambda: sweep_forever(stores.engine, stores.redis),
    }
    embedder = stores.embedder
    if embedder is None:
        banner = (
            "relay, metrics and task sweeper running; indexer off (no embedding model: "
            f"{stores.embedder_error}); Ctrl-C stops them"
        )
    else:
        jobs["indexer"] = lambda: index_forever(
            stores.engine, stores.vectors, embedder, tracer=tracer
        )
        banner = "relay, metrics, task sweeper and indexer running; Ctrl-C stops them"
    await _until_signalled(jobs, banner)
    return 0


async def _until_signalled(
    jobs: dict[str, Callable[[], Coroutine[Any, Any, None]]], banner: str
) -> None:
    """Run ``jobs`` concurrently until SIGINT or SIGTERM, then cancel them and wait for them.

    ``banner`` is printed once the signals are ours, so a signal sent as soon as it appears
    stops the jobs cleanly. A job that ends by itself (they loop forever and log their own
    failures) stops the rest and re-raises its error.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    stopping = asyncio.create_task(stop.wait(), name="signal")
    tasks = [asyncio.create_task(job(), name=name) for name, job in jobs.items()]
    try:
        print(banner, flush=True)
        done, _ = await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Bounded, as the app's shutdown is (app/stopping.py): a job that will not stop is
        # named with where it waits, and the worker exits anyway.
        await asyncio.gather(stop_task(stopping), *(stop_task(t) for t in tasks if not t.done()))
        for signum in signals:
            loop.remove_signal_handler(signum)
    for task in tasks:
        if task in done:
            task.result()  # re-raise what ended it
            raise RuntimeError(f"the {task.get_name()} stopped unexpectedly")


def cmd_reindex(args: argparse.Namespace, settings: Settings) -> int:
    from app.indexing.reconcile import find_drift, repair

    with embedded_engines(settings) as ready:

        async def run(stores: Stores) -> int:
            if args.check:
                drifts = await find_drift(stores.engine, stores.vectors)
            else:
                if stores.embedder is None:
                    raise CommandError(f"no embedding model: {stores.embedder_error}")
                drifts = await repair(stores.engine, stores.vectors, stores.embedder)
            verb = "drift" if args.check else "repaired"
            for d in drifts:
                print(
                    f"{verb}: tenant {d.tenant_id} {d.kind.value}: {len(d.missing)} missing, "
                    f"{len(d.stale)} stale, {len(d.orphaned)} orphaned"
                )
            if not drifts:
                print("index matches PostgreSQL")
            return 1 if args.check and drifts else 0

        return _with_stores(ready, run)


def cmd_reconcile(args: argparse.Namespace, settings: Settings) -> int:
    """Engagement counters in Redis against the committed ENGAGEMENT events (ADR 0019), then
    what PostgreSQL derives from its own rows (campaign.spent from the ledger, metrics from
    the applied events): report drift (``--check``, exit 1 if any) or repair it. Needs
    PostgreSQL and Redis only."""
    from app.engagement.reconcile import ReconcileError, describe, reconcile
    from app.metrics import reconcile as derived

    with embedded_engines(settings) as ready:

        async def run(engine: AsyncEngine) -> int:
            async with _app_redis(ready) as redis:
                try:
                    reports = await reconcile(engine, redis, repair=not args.check)
                except ReconcileError as exc:
                    raise CommandError(str(exc)) from exc
            for line in describe(reports):
                print(line)
            drifted = any(d.repairable for r in reports for d in r.drifts)
            found = await derived.find_drift(engine, repair=not args.check)
            for line in derived.describe(found, repaired=not args.check):
                print(line)
            if args.check and found:
                return 1
            if any(not d.repairable for d in found):
                return 1  # repaired what it could; the rest needs a person
            return 1 if args.check and drifted else 0

        return _with_engine(ready, run)


def cmd_audit_prune(args: argparse.Namespace, settings: Settings) -> int:
    """Delete audit entries older than ``--before``, leaving an audit.prune entry per tenant."""
    from app.commands.audit import prune_audit

    before = _past(args.before)
    with embedded_engines(settings) as ready:

        async def run(engine: AsyncEngine) -> int:
            pruned = await prune_audit(engine, before)
            for tenant_id, count in sorted(pruned.items(), key=lambda item: str(item[0])):
                print(f"pruned: tenant {tenant_id}: {count} entries before {before.isoformat()}")
            if not pruned:
                print(f"no audit entries before {before.isoformat()}")
            return 0

        return _with_engine(ready, run)


def cmd_metrics_prune(args: argparse.Namespace, settings: Settings) -> int:
    """Delete per-minute metrics older than ``--before``: the time series' retention job."""
    from app.metrics.consumer import prune_metrics

    before = _past(args.before)
    with embedded_engines(settings) as ready:

        async def run(engine: AsyncEngine) -> int:
            deleted = await prune_metrics(engine, before)
            print(f"pruned: {deleted} metric rows before {before.isoformat()}")
            return 0

        return _with_engine(ready, run)


def _past(before: datetime) -> datetime:
    """A retention cut-off: never in the future, where rows are still being written."""
    if before > datetime.now(UTC):
        raise CommandError("--before is in the future: that would delete rows being written")
    return before


def _moment(text: str) -> datetime:
    """An ISO 8601 date or date and time; without an offset it is UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("must be an ISO 8601 date, like 2026-01-31") from exc
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be a port number, 1 to 65535")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chimera", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the GraphQL service (embedded engines in dev)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=8000)
    serve.add_argument("--no-seed", action="store_true", help="do not seed an empty database")
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="apply Alembic migrations")
    migrate.add_argument("revision", nargs="?", default="head")
    migrate.add_argument("--downgrade", metavar="REVISION", help="downgrade to REVISION instead")
    migrate.set_defaults(func=cmd_migrate)

    seed = sub.add_parser("seed", help="load demo data")
    seed.add_argument("--demo", action="store_true")
    seed.set_defaults(func=cmd_seed)

    tenant = sub.add_parser("tenant", help="manage tenants")
    tenant_sub = tenant.add_subparsers(dest="tenant_command", required=True)
    tenant_create = tenant_sub.add_parser("create", help="create a tenant")
    tenant_create.add_argument("slug")
    tenant_create.add_argument("--name")
    tenant_create.set_defaults(func=cmd_tenant_create)
    tenant_limits_parser = tenant_sub.add_parser(
        "limits",
        help="show or set a tenant's cost and rate limits ('default' clears one)",
    )
    tenant_limits_parser.add_argument("slug")
    for column, (flag, _, meaning) in LIMIT_OPTIONS.items():
        tenant_limits_parser.add_argument(flag, dest=column, metavar="N|default", help=meaning)
    tenant_limits_parser.set_defaults(func=cmd_tenant_limits)

    apikey = sub.add_parser("apikey", help="manage tenant API keys")
    apikey_sub = apikey.add_subparsers(dest="apikey_command", required=True)
    apikey_create = apikey_sub.add_parser(
        "create", help="create an API key and print it once (revoke it with revokeApiKey)"
    )
    apikey_create.add_argument("--tenant", required=True)
    apikey_create.add_argument("--role", required=True, choices=["viewer", "editor", "admin"])
    apikey_create.add_argument("--name", required=True, help="what the key is for")
    apikey_create.set_defaults(func=cmd_apikey_create)

    documents_parser = sub.add_parser("documents", help="manage trusted documents")
    documents_sub = documents_parser.add_subparsers(dest="documents_command", required=True)
    documents_add = documents_sub.add_parser(
        "add",
        help="register documents from a client's build output: Apollo's persisted query "
        "manifest, a Relay-style {hash: document} JSON map, or .graphql files",
    )
    documents_add.add_argument("files", nargs="+", metavar="FILE")
    documents_add.set_defaults(func=cmd_documents_add)

    token = sub.add_parser(
        "token",
        help="print a bearer token for a tenant and role; `token revoke TOKEN` revokes one",
    )
    token.add_argument("action", nargs="?", choices=["revoke"], help="revoke a token")
    token.add_argument("value", nargs="?", metavar="TOKEN", help="the token to revoke (- : stdin)")
    token.add_argument("--tenant")
    token.add_argument("--role", choices=[r.value for r in Role], default=Role.VIEWER.value)
    token.add_argument("--subject", default="cli")
    token.add_argument(
        "--agent", help="with --role agent: the agent (id or UUID) the runtime's token is bound to"
    )
    token.add_argument(
        "--ttl", help=f"lifetime in seconds, {TOKEN_TTL_MIN_SECONDS} to {TOKEN_TTL_MAX_SECONDS}"
    )
    token.set_defaults(func=cmd_token)

    export = sub.add_parser("export-schema", help="print the GraphQL SDL")
    export.add_argument("--output", "-o", help="write to this file instead of stdout")
    export.add_argument(
        "--federation", action="store_true", help="the federation subgraph's SDL instead"
    )
    export.set_defaults(func=cmd_export_schema)

    schema_check = sub.add_parser(
        "schema-check", help="fail on breaking schema changes CHANGELOG.md does not announce"
    )
    schema_check.add_argument(
        "--against", metavar="REF", help="git ref to compare with (default: last v* tag, or HEAD^)"
    )
    schema_check.add_argument("--root", default=".", help="the repository (default: here)")
    schema_check.set_defaults(func=cmd_schema_check)

    explain_parser = sub.add_parser(
        "explain",
        help="run a query as a tenant's admin and print the store calls it made",
        epilog="exit status: 0 the query ran without errors; 1 it did not run (it does not "
        "parse or validate, its variables do not fit, no such tenant) or it ran and answered "
        "with errors (its plan is printed first); 2 a configuration to fix",
    )
    explain_parser.add_argument("file", metavar="FILE.graphql")
    explain_parser.add_argument("--tenant", required=True, metavar="SLUG")
    explain_parser.add_argument("--variables", metavar="JSON", help="the query's variables")
    explain_parser.add_argument("--operation", metavar="NAME", help="which operation to run")
    explain_parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    explain_parser.set_defaults(func=cmd_explain)

    doctor = sub.add_parser("doctor", help="check every store; exit 1 when one is down")
    doctor.set_defaults(func=cmd_doctor)

    worker = sub.add_parser("worker", help="run the relay and the indexer without serving GraphQL")
    worker.set_defaults(func=cmd_worker)

    reindex = sub.add_parser("reindex", help="repair drift between PostgreSQL and the index")
    reindex.add_argument("--check", action="store_true", help="only report drift (exit 1 if any)")
    reindex.set_defaults(func=cmd_reindex)

    reconcile = sub.add_parser(
        "reconcile",
        help="repair drift of engagement counters, ledger totals and metrics from their sources",
    )
    reconcile.add_argument("--check", action="store_true", help="only report drift (exit 1 if any)")
    reconcile.set_defaults(func=cmd_reconcile)

    audit = sub.add_parser("audit", help="the audit trail's retention")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    prune = audit_sub.add_parser(
        "prune", help="delete audit entries older than a date (the pruning is itself audited)"
    )
    prune.add_argument("--before", type=_moment, required=True, help="ISO 8601 date or time")
    prune.set_defaults(func=cmd_audit_prune)

    metrics = sub.add_parser("metrics", help="the engagement time series' retention")
    metrics_sub = metrics.add_subparsers(dest="metrics_command", required=True)
    metrics_prune = metrics_sub.add_parser(
        "prune", help="delete per-minute metrics older than a date"
    )
    metrics_prune.add_argument("--before", type=_moment, required=True, help="ISO 8601 date")
    metrics_prune.set_defaults(func=cmd_metrics_prune)
    return parser


def describe(exc: ValidationError) -> str:
    """One line for every invalid setting, named by its environment variable."""
    problems = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        name = ".".join(map(str, error["loc"]))
        problems.append(message if not name or message.startswith(name) else f"{name}: {message}")
    return "; ".join(problems)


# Commands that are expected to make a data directory where none is: they start, set up or
# fill one.
MAKES_ITS_DATA_DIR = frozenset({"serve", "seed", "migrate"})


def _unmade_data_dir(command: str, settings: Settings) -> Path | None:
    """The dev data directory, when it does not exist yet and ``command`` is not one that is
    expected to make it. Its default is relative to the current directory, so a command run
    from elsewhere would otherwise work, silently, on a new empty database (and a new token
    secret) instead of the running service's."""
    if command in MAKES_ITS_DATA_DIR or settings.is_production:
        return None
    path = settings.resolved_data_dir
    return None if path.exists() else path


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        configure_logging(settings.log_level, json_lines=settings.json_logs)
        unmade = _unmade_data_dir(args.command, settings)
        try:
            status: int = args.func(args, settings)
        finally:
            if unmade is not None and unmade.exists():
                print(
                    f"chimera: note: created a new empty data directory at {unmade}; a running "
                    "`chimera serve` keeps its data in the directory it was started from "
                    "(run this there, or set CHIMERA_DATA_DIR)",
                    file=sys.stderr,
                )
    except ValidationError as exc:
        print(f"chimera: error: invalid configuration: {describe(exc)}", file=sys.stderr)
        return EXIT_CONFIGURATION
    except (ConfigurationError, EmbeddedNotAllowed) as exc:
        print(f"chimera: error: {exc}", file=sys.stderr)
        return EXIT_CONFIGURATION
    except DBAPIError as exc:
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        print(f"chimera: error: database: {detail}", file=sys.stderr)
        return 1
    except (ChimeraError, CommandError, RuntimeError) as exc:
        message = exc.message if isinstance(exc, ChimeraError) else str(exc)
        print(f"chimera: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
