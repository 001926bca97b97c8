"""The Quanyi process: the Starlette app, its lifecycle and the ``quanyi`` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import getpass
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import asyncpg
import uvicorn
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from redis.asyncio import BlockingConnectionPool, Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.types import ExecutionResult
from strawberry.types.unset import UnsetType

import supplier_sim
from actors.registry import PoolRegistry
from domain.credentials import CredentialError
from domain.risk import AllowAll, RiskCheck
from middleware import BodyLimit
from observability import Metrics, RequestContext, configure_logging
from persistence import migrations
from persistence.database import create_pool
from persistence.embedded import EmbeddedPostgres, EmbeddedValkey
from persistence.events import EventHub
from persistence.keyring import Keyring
from persistence.read_cache import ReadCache, SharedInvalidation
from resolvers import exports, links, payments
from resolvers.audit import AuditChainer
from resolvers.authentication import authenticate
from resolvers.order_expiry import OrderExpiry
from resolvers.outbox import Outbox
from resolvers.realtime import SupplierOrderRecovery
from resolvers.risk_control import RiskControl
from resolvers.supplier_clients import SupplierClients
from resolvers.supplier_sync import SupplierSync
from schema.context import Context
from schema.errors import code_of_uncoded, refused_request_body
from schema.root import make_schema
from settings import Settings

log = logging.getLogger("quanyi")
# Seconds a thread holds the interpreter while another waits for it (_tune_interpreter).
SWITCH_INTERVAL = 0.0005
# The collector's generation thresholds (_tune_interpreter).
GC_THRESHOLDS = (20_000, 10, 10)


@dataclass
class Services:
    """The process's handles on the outside world, shared by every request."""

    settings: Settings
    db: asyncpg.Pool[Any]
    redis: Redis
    events: EventHub
    session_key: bytes
    metrics: Metrics
    keyring: Keyring
    pools: PoolRegistry
    reads: ReadCache
    invalidation: SharedInvalidation
    suppliers: SupplierClients
    outbox: Outbox
    risk: RiskCheck = field(default_factory=AllowAll)


class GraphQLApp(GraphQL[Context, None]):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        # strawberry answers a request it cannot read (not JSON, a batch, a mutation over
        # GET, an unknown content type) in plain text; a client parses every answer as JSON.
        try:
            response: Response = await self.run(Request(scope, receive=receive))
        except HTTPException as refused:
            response = JSONResponse(
                refused_request_body(refused.reason), status_code=refused.status_code
            )
        await response(scope, receive, send)

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        # strawberry assumes a decoded body (and a multipart `map`) is an object and fails
        # with a 500 on `"x"`, `null` or bytes that are not UTF-8; those are client errors.
        try:
            return await super().parse_http_body(request)
        except (AttributeError, TypeError, UnicodeDecodeError) as error:
            raise HTTPException(
                400, "The request must be a JSON object with a `query` string."
            ) from error

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        # Every error carries a code, so that clients branch on codes, never on messages.
        response = await super().process_result(request, result)
        for error in response.get("errors") or ():
            if isinstance(error, dict):
                code = code_of_uncoded(str(error.get("message")))
                error.setdefault("extensions", {}).setdefault("code", code)
        return response

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        services: Services = request.app.state.services
        context = Context(services=services, request=request, response=response)
        if isinstance(request, Request):
            await _authenticate(context, request.headers.get("authorization"))
        return context

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        params = context.connection_params or {}
        given = params.get("authorization") or params.get("Authorization")
        if not isinstance(given, str):
            given = context.request.headers.get("authorization")
        await _authenticate(context, given)
        if context.viewer is None:
            raise ConnectionRejectionError({"message": context.auth_error or "Unauthenticated"})
        # A socket lives long: its credential is checked again for every operation and,
        # in subscriptions, every few seconds, so a revoked key stops working there too.
        context.reauthenticate = partial(_authenticate, context, given)
        return await super().on_ws_connect(context)


async def _authenticate(context: Context, authorization: str | None) -> None:
    services = context.services
    try:
        context.viewer = await authenticate(
            services.db, services.reads, services.session_key, authorization
        )
    except CredentialError as error:
        context.viewer = None
        context.auth_error = str(error)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    services: Services = request.app.state.services
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(2):
            await services.db.fetchval("SELECT 1")
        checks["database"] = "ok"
    except Exception as error:
        checks["database"] = f"unreachable: {type(error).__name__}"
    try:
        async with asyncio.timeout(2):
            await services.redis.ping()
        checks["valkey"] = "ok"
    except Exception as error:
        checks["valkey"] = f"unreachable: {type(error).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )


async def metrics(request: Request) -> Response:
    services: Services = request.app.state.services
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def create_app(settings: Settings) -> Starlette:
    """The ASGI app. ``settings`` must name the database and Valkey (see ``infrastructure``)."""
    assert settings.database_url, "resolve the servers first (see infrastructure)"
    assert settings.redis_url, "resolve the servers first (see infrastructure)"
    app_metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        assert settings.database_url
        assert settings.redis_url
        if settings.migrate_on_start:
            await migrations.migrate(settings.database_url)
        db = await create_pool(settings.database_url, settings.db_pool_size)
        # A burst beyond the pool waits for a connection rather than failing the request.
        redis = Redis(
            connection_pool=BlockingConnectionPool.from_url(
                settings.redis_url, max_connections=settings.redis_connections, timeout=10
            )
        )
        events = EventHub(redis)
        await events.start()
        pools = PoolRegistry(db, events, settings)
        await pools.start()
        expiry = OrderExpiry(db, pools, events, settings.reservation_sweep_seconds)
        await expiry.start()
        reads = ReadCache(ttl=settings.read_cache_seconds)
        invalidation = SharedInvalidation(reads, events)
        await invalidation.start()
        keyring = await Keyring.load(db, settings.resolved_master_key())
        suppliers = SupplierClients(db, keyring, settings)
        outbox = Outbox(db, keyring, settings)
        await outbox.start()
        app.state.services = Services(
            settings=settings,
            db=db,
            redis=redis,
            events=events,
            session_key=settings.resolved_session_secret(),
            metrics=app_metrics,
            keyring=keyring,
            pools=pools,
            reads=reads,
            invalidation=invalidation,
            suppliers=suppliers,
            outbox=outbox,
            risk=RiskControl(db, redis, reads),
        )
        recovery = SupplierOrderRecovery(app.state.services)
        await recovery.start()
        catalog_sync = SupplierSync(db, suppliers, invalidation, settings.supplier_sync_seconds)
        await catalog_sync.start()
        chainer = AuditChainer(db, settings.audit_chain_seconds)
        await chainer.start()
        try:
            yield
        finally:
            await chainer.stop()
            await catalog_sync.stop()
            await recovery.stop()
            await outbox.stop()
            await suppliers.aclose()
            await invalidation.stop()
            await expiry.stop()
            await pools.stop()
            await events.stop()
            await redis.aclose()
            await db.close()

    graphql = GraphQLApp(make_schema(settings), multipart_uploads_enabled=True)
    app = Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            Route("/exports/statements/{channel_id}.csv", exports.statement_csv),
            Route("/payments/callback", payments.payment_callback, methods=["POST"]),
            Route("/r/{token}", links.link_page),
            Route("/r/{token}/qr.svg", links.link_qr),
        ],
        lifespan=lifespan,
    )
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
    )
    app.add_middleware(RequestContext, metrics=app_metrics)
    return app


@contextlib.contextmanager
def infrastructure(settings: Settings, *, serving: bool = True) -> Iterator[Settings]:
    """Settings with database and Valkey URLs, starting embedded servers for those not given.

    The embedded servers are stopped when the block ends, however it ends. One-shot
    commands (``serving=False``) need no Valkey and leave a running server's PostgreSQL
    alone.
    """
    with contextlib.ExitStack() as stack:
        resolved = settings.model_copy()
        if not settings.database_url:
            postgres = EmbeddedPostgres(settings.data_dir, owner=serving)
            stack.callback(postgres.stop)
            resolved.database_url = postgres.start()
            log.info("embedded PostgreSQL running in %s", postgres.pgdata)
        if serving and not settings.redis_url:
            valkey = EmbeddedValkey(settings.data_dir)
            stack.callback(valkey.stop)
            resolved.redis_url = valkey.start()
            log.info("embedded Valkey running in %s", valkey.dir)
        yield resolved


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = args.data_dir
    if getattr(args, "cpu", None) is not None:
        overrides["cpu"] = args.cpu
    return Settings(**overrides)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    configure_logging(settings.log_level)
    if settings.cpu is not None and (problem := _pinning_problem(settings.cpu)):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with infrastructure(settings) as resolved, contextlib.ExitStack() as demo:
        assert resolved.database_url
        asyncio.run(migrations.migrate(resolved.database_url))
        if args.demo:
            from demo import seed, supplier_simulator

            # The demo's supplier is a local process, and its links must open as given.
            resolved = resolved.model_copy(
                update={
                    "allow_private_targets": True,
                    "public_url": resolved.public_url or f"http://{args.host}:{args.port}",
                }
            )
            supplier = demo.enter_context(supplier_simulator(resolved.data_dir))
            print(
                asyncio.run(seed(resolved, host=args.host, port=args.port, supplier=supplier)),
                flush=True,
            )
        config = http_server_config(create_app(resolved), resolved, host=args.host, port=args.port)
        _tune_interpreter()
        # After the embedded servers started: they keep every CPU.
        elsewhere = None if settings.cpu is None else _pin(settings.cpu)
        _Server(config, blocking_work_cpus=elsewhere).run()
    return 0


def http_server_config(app: Starlette, settings: Settings, **where: Any) -> uvicorn.Config:
    """How uvicorn serves the app: for ``quanyi serve`` and the tests alike."""
    return uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        loop="asyncio",
        http="httptools",
        lifespan="on",
        ws="websockets-sansio",
        # An idle connection should be closed by the client or the proxy in front, not by
        # us: a client that sends its next request just as we close the connection gets
        # an error for a request we never saw, and for a POST (placeOrder) it cannot know
        # whether to retry. Clients and proxies keep idle connections 5 to 60 s (httpx 5,
        # nginx upstreams and cloud load balancers 60); uvicorn's own 5 s is no longer
        # than the shortest of them.
        timeout_keep_alive=settings.keep_alive_seconds,
        **where,
    )


def _pinning_problem(cpu: int) -> str | None:
    if not hasattr(os, "sched_setaffinity"):
        return "running on one CPU (--cpu, QUANYI_CPU) needs Linux"
    allowed = sorted(os.sched_getaffinity(0))
    if cpu not in allowed:
        return f"CPU {cpu} is not one this process may run on ({', '.join(map(str, allowed))})"
    return None


def _pin(cpu: int) -> frozenset[int]:
    """Run every thread of this process, and the threads they start, on ``cpu``; returns
    the CPUs they could run on before.

    The event loop, the pool actors and their database loop hand batches to each other
    many times per order, and only one of them holds the interpreter at a time. Spread
    over CPUs, each hand-over wakes a thread on another CPU with cold caches, beside
    PostgreSQL; on one CPU the server placed about a third more orders a second (README,
    "Orders over HTTP").
    """
    before = frozenset(os.sched_getaffinity(0))
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(tid), {cpu})
    return before


def _tune_interpreter() -> None:
    """Settings for the serving process as a whole (tests running the app in their own
    process keep theirs)."""
    # What is built by now (the schema, the app, every module) lives as long as the
    # process. Frozen, it is left out of the collector's full passes, which otherwise walk
    # it about once a second under load and stop every request for 100 ms each time.
    gc.collect()
    gc.freeze()
    # Orders wait for their pool's batch with their requests' objects alive, so the
    # default young generation (700 objects) was collected hundreds of times a second,
    # walking the same live requests each time: a tenth of an order's time. Fewer, larger
    # collections walk each object about once (pauses of some 20 ms).
    gc.set_threshold(*GC_THRESHOLDS)
    # A pool's batch passes between its actor's thread, the actors' database loop and the
    # event loop, and each pass waits for the thread holding the interpreter to let go: by
    # default up to 5 ms while requests keep it busy, which held a batch of orders (and
    # the orders queued behind it) for tens of milliseconds.
    sys.setswitchinterval(SWITCH_INTERVAL)


class _Server(uvicorn.Server):
    def __init__(
        self, config: uvicorn.Config, *, blocking_work_cpus: frozenset[int] | None
    ) -> None:
        super().__init__(config)
        self.blocking_work_cpus = blocking_work_cpus

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        if self.blocking_work_cpus is not None:
            # What requests hand to threads (password hashing above all: 150 ms each)
            # mostly lets go of the interpreter, so it may run beside a pinned loop.
            asyncio.get_running_loop().set_default_executor(
                ThreadPoolExecutor(
                    thread_name_prefix="asyncio",
                    initializer=os.sched_setaffinity,
                    initargs=(0, self.blocking_work_cpus),
                )
            )
        await super().serve(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """SIGINT/SIGTERM start a graceful shutdown, and then ``run`` returns.

        uvicorn's own version re-raises the signal after shutdown, which would end the
        process before ``infrastructure`` stops the embedded servers.
        """
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    configure_logging(settings.log_level)
    with infrastructure(settings, serving=False) as resolved:
        assert resolved.database_url
        applied = asyncio.run(migrations.migrate(resolved.database_url))
    for migration in applied:
        print(f"applied {migration.version:04d}_{migration.name}")
    if not applied:
        print("database is up to date")
    return 0


def cmd_create_admin(args: argparse.Namespace) -> int:
    from demo import create_admin

    settings = _settings(args)
    configure_logging(settings.log_level)
    password = args.password or getpass.getpass("Password for the platform owner: ")
    with infrastructure(settings, serving=False) as resolved:
        assert resolved.database_url
        asyncio.run(migrations.migrate(resolved.database_url))
        problem = asyncio.run(create_admin(resolved.database_url, args.email, password))
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    print(f"created platform owner {args.email.strip().lower()}")
    return 0


def cmd_rotate_keys(args: argparse.Namespace) -> int:
    from persistence.rotation import RotationInProgress, rotate_database

    if args.batch_size < 1:
        print("error: --batch-size must be at least 1", file=sys.stderr)
        return 2
    settings = _settings(args)
    configure_logging(settings.log_level)
    with infrastructure(settings, serving=False) as resolved:
        assert resolved.database_url
        asyncio.run(migrations.migrate(resolved.database_url))
        try:
            asyncio.run(
                rotate_database(
                    resolved.database_url,
                    settings.resolved_master_key(),
                    batch_rows=args.batch_size,
                    progress=lambda line: print(line, flush=True),
                )
            )
        except RotationInProgress as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    return 0


def cmd_print_schema(args: argparse.Namespace) -> int:
    print(make_schema(Settings()).as_str())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="quanyi", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--data-dir", help="where embedded servers and secrets live")
    serve.add_argument("--demo", action="store_true", help="seed a demo platform and print logins")
    serve.add_argument(
        "--cpu", type=int, help="run the server's Python threads on this CPU (Linux; see README)"
    )
    serve.set_defaults(run=cmd_serve)

    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("--data-dir")
    migrate.set_defaults(run=cmd_migrate)

    admin = commands.add_parser("create-admin", help="create the platform owner")
    admin.add_argument("--email", required=True)
    admin.add_argument("--password", help="asked for when omitted")
    admin.add_argument("--data-dir")
    admin.set_defaults(run=cmd_create_admin)

    rotate = commands.add_parser(
        "rotate-keys", help="re-encrypt code secrets under a new data key (safe while serving)"
    )
    rotate.add_argument("--data-dir")
    rotate.add_argument("--batch-size", type=int, default=1000, help="rows per transaction")
    rotate.set_defaults(run=cmd_rotate_keys)

    simulator = commands.add_parser(
        "supplier-sim", help="run a supplier that speaks the supplier protocol (demo, tests)"
    )
    supplier_sim.add_arguments(simulator)
    simulator.set_defaults(run=supplier_sim.run)

    printer = commands.add_parser("print-schema", help="print the GraphQL schema (SDL)")
    printer.set_defaults(run=cmd_print_schema)

    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except ValidationError as error:
        if error.title != Settings.__name__:
            raise
        for problem in error.errors():
            print(f"error: {_setting_name(problem['loc'])}: {problem['msg']}", file=sys.stderr)
        return 2
    return code


def _setting_name(loc: tuple[int | str, ...]) -> str:
    """The environment variable a setting is read from (and its flag overrides)."""
    return f"QUANYI_{str(loc[0]).upper()}" if loc else "QUANYI_*"


if __name__ == "__main__":
    sys.exit(main())
