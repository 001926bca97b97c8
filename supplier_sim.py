"""Supplier simulator: a separate process that speaks the signed supplier protocol.

For the demo and the tests. It checks request signatures (401 otherwise) and signs every
answer. Orders are idempotent on ``ref``: the first successful call creates the codes, later
calls with the same ref, sku and quantity get the same codes back, even concurrently.

Faults on demand: ``latency_ms`` delays each answer by a uniform random time up to it, and
``failure_rate`` makes that share of protocol calls fail with 503, half of them before
anything happens and half after the order was created, answered with 503 or with a dropped
connection. That second half is the case a client must survive by retrying with the same ref.

Test hooks, signed like the rest: ``GET /stats`` counts creations per ref, and
``POST /admin/catalog`` replaces the catalog with the items given, taken as they are.

    python -m supplier_sim --port 9100 --secret <at least 16 bytes> --failure-rate 0.2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import string
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from integrations import supplier_signing

MIN_SECRET_BYTES = 16
MAX_QUANTITY = 100
CODE_ALPHABET = string.ascii_uppercase + string.digits
CODE_LENGTH = 16
PASSWORD_LENGTH = 6
CODE_LIFETIME = timedelta(days=365)

# Wire form, plus "withPassword" for cards that come as number + PIN; it is never served.
DEFAULT_CATALOG: tuple[dict[str, Any], ...] = (
    {
        "sku": "VIDEO-VIP-1M",
        "name": "Video VIP membership, 1 month",
        "category": "video_membership",
        "faceValue": "30.00",
        "cost": "25.50",
        "available": True,
        "withPassword": False,
    },
    {
        "sku": "MUSIC-VIP-1M",
        "name": "Music membership, 1 month",
        "category": "music_membership",
        "faceValue": "15.00",
        "cost": "12.30",
        "available": True,
        "withPassword": False,
    },
    {
        "sku": "GAME-100",
        "name": "Game card, 100 points",
        "category": "game_card",
        "faceValue": "100.00",
        "cost": "93.00",
        "available": True,
        "withPassword": True,
    },
    {
        "sku": "GIFT-200",
        "name": "Shopping gift card, 200",
        "category": "gift_card",
        "faceValue": "200.00",
        "cost": "196.00",
        "available": True,
        "withPassword": True,
    },
    {
        "sku": "COFFEE-COUPON",
        "name": "Coffee coupon, any size",
        "category": "coupon",
        "faceValue": "35.00",
        "cost": "18.90",
        "available": True,
        "withPassword": False,
    },
)

Fate = Literal["answer", "fail_before", "fail_after"]


class _ConnectionDropped(Exception):
    """Raised after the response started, so the server closes the connection mid-reply."""


class _DroppedReply(Response):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"ref":', "more_body": True})
        raise _ConnectionDropped


def _hide_dropped(record: logging.LogRecord) -> bool:
    """The server logs every dropped reply as an application error; these are on purpose."""
    return not (record.exc_info and record.exc_info[0] is _ConnectionDropped)


@dataclass(frozen=True)
class _Order:
    sku: str
    quantity: int
    codes: tuple[dict[str, str | None], ...]


class _Supplier:
    def __init__(
        self, secret: bytes, latency_ms: int, failure_rate: float, seed: int | None
    ) -> None:
        self.secret = secret
        self.latency_ms = latency_ms
        self.failure_rate = failure_rate
        # A simulator: seeded for reproducible runs, not for secrets.
        self.rng = random.Random(seed)  # noqa: S311
        self.catalog: list[dict[str, Any]] = [dict(item) for item in DEFAULT_CATALOG]
        self.orders: dict[str, _Order] = {}
        self.locks: dict[str, asyncio.Lock] = {}
        self.issued: set[str] = set()
        self.created = Counter[str]()
        self.requests = 0
        self.duplicates_prevented = 0
        self.lost_replies = 0

    def routes(self) -> list[Route]:
        return [
            Route("/catalog", self.get_catalog, methods=["GET"]),
            Route("/orders", self.post_order, methods=["POST"]),
            Route("/orders/{ref:path}", self.get_order, methods=["GET"]),
            Route("/stats", self.get_stats, methods=["GET"]),
            Route("/admin/catalog", self.replace_catalog, methods=["POST"]),
        ]

    async def get_catalog(self, request: Request) -> Response:
        self.requests += 1
        if await self._verified(request) is None:
            return self._reply(request, 401, {"error": "bad_signature"})
        fate = self._fate()
        await self._latency()
        if fate != "answer":
            return self._reply(request, 503, {"error": "unavailable"})
        items = [
            {key: value for key, value in item.items() if key != "withPassword"}
            for item in self.catalog
        ]
        return self._reply(request, 200, {"items": items})

    async def get_order(self, request: Request) -> Response:
        self.requests += 1
        if await self._verified(request) is None:
            return self._reply(request, 401, {"error": "bad_signature"})
        fate = self._fate()
        await self._latency()
        if fate != "answer":
            return self._reply(request, 503, {"error": "unavailable"})
        ref = request.path_params["ref"]
        order = self.orders.get(ref)
        if order is None:
            return self._reply(request, 404, {"error": "not_found"})
        return self._reply(request, 200, {"ref": ref, "codes": list(order.codes)})

    async def post_order(self, request: Request) -> Response:
        self.requests += 1
        body = await self._verified(request)
        if body is None:
            return self._reply(request, 401, {"error": "bad_signature"})
        try:
            data = json.loads(body)
            ref, sku, quantity = data["ref"], data["sku"], data["quantity"]
        except (ValueError, TypeError, KeyError):
            return self._reply(request, 400, {"error": "invalid_request"})
        if not (isinstance(ref, str) and ref and isinstance(sku, str)):
            return self._reply(request, 400, {"error": "invalid_request"})
        if not isinstance(quantity, int) or isinstance(quantity, bool):
            return self._reply(request, 400, {"error": "invalid_quantity"})
        if not 1 <= quantity <= MAX_QUANTITY:
            return self._reply(request, 400, {"error": "invalid_quantity"})
        fate = self._fate()
        if fate == "fail_before":
            await self._latency()
            return self._reply(request, 503, {"error": "unavailable"})
        # The latency is spent inside the lock, as a real supplier's issuing would be, so
        # concurrent calls for one ref really overlap there and the lock is what keeps them
        # from creating twice.
        async with self.locks.setdefault(ref, asyncio.Lock()):
            await self._latency()
            order = self.orders.get(ref)
            if order is not None:
                if (order.sku, order.quantity) != (sku, quantity):
                    return self._reply(request, 409, {"error": "ref_conflict"})
                self.duplicates_prevented += 1
            else:
                item = next((item for item in self.catalog if item.get("sku") == sku), None)
                if item is None:
                    return self._reply(request, 404, {"error": "unknown_sku"})
                if item.get("available") is not True:
                    return self._reply(request, 422, {"error": "out_of_stock"})
                order = _Order(sku, quantity, self._new_codes(quantity, item))
                self.orders[ref] = order
                self.created[ref] += 1
        if fate == "fail_after":
            self.lost_replies += 1
            if self.rng.random() < 0.5:
                return self._reply(request, 503, {"error": "unavailable"})
            return _DroppedReply()
        return self._reply(request, 200, {"ref": ref, "codes": list(order.codes)})

    async def get_stats(self, request: Request) -> Response:
        if await self._verified(request) is None:
            return self._reply(request, 401, {"error": "bad_signature"})
        stats = {
            "created": len(self.created),
            "requests": self.requests,
            "duplicates_prevented": self.duplicates_prevented,
            "lost_replies": self.lost_replies,
            "refs": dict(self.created),
        }
        return self._reply(request, 200, stats)

    async def replace_catalog(self, request: Request) -> Response:
        body = await self._verified(request)
        if body is None:
            return self._reply(request, 401, {"error": "bad_signature"})
        try:
            items = json.loads(body)["items"]
        except (ValueError, TypeError, KeyError):
            return self._reply(request, 400, {"error": "invalid_request"})
        if not isinstance(items, list) or not all(
            isinstance(item, dict) and isinstance(item.get("sku"), str) for item in items
        ):
            return self._reply(request, 400, {"error": "invalid_request"})
        self.catalog = items
        return self._reply(request, 200, {"items": len(items)})

    async def _verified(self, request: Request) -> bytes | None:
        body = await request.body()
        valid = supplier_signing.verify(
            self.secret, request.method, _wire_path(request), body, request.headers, time.time()
        )
        return body if valid else None

    def _reply(self, request: Request, status: int, payload: Any) -> Response:
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = supplier_signing.sign(
            self.secret, supplier_signing.RESPONSE, _wire_path(request), body, int(time.time())
        )
        return Response(body, status, headers, media_type="application/json")

    def _fate(self) -> Fate:
        if self.rng.random() >= self.failure_rate:
            return "answer"
        return "fail_before" if self.rng.random() < 0.5 else "fail_after"

    async def _latency(self) -> None:
        if self.latency_ms:
            await asyncio.sleep(self.rng.uniform(0, self.latency_ms) / 1000)

    def _new_codes(self, quantity: int, item: dict[str, Any]) -> tuple[dict[str, str | None], ...]:
        expires = (datetime.now(UTC) + CODE_LIFETIME).isoformat(timespec="seconds")
        codes: list[dict[str, str | None]] = []
        while len(codes) < quantity:
            code = "".join(self.rng.choices(CODE_ALPHABET, k=CODE_LENGTH))
            if code in self.issued:
                continue
            self.issued.add(code)
            password = (
                "".join(self.rng.choices(string.digits, k=PASSWORD_LENGTH))
                if item.get("withPassword") is True
                else None
            )
            codes.append({"code": code, "password": password, "expiresAt": expires})
        return tuple(codes)


def _wire_path(request: Request) -> str:
    """The request target as the client sent and signed it: raw path and query."""
    raw: bytes = request.scope.get("raw_path") or request.url.path.encode()
    query: bytes = request.scope.get("query_string", b"")
    if query:
        raw += b"?" + query
    return raw.decode("latin-1")


def create_app(
    secret: bytes, *, latency_ms: int = 0, failure_rate: float = 0.0, seed: int | None = None
) -> Starlette:
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the secret must have at least {MIN_SECRET_BYTES} bytes")
    if latency_ms < 0:
        raise ValueError("latency_ms must not be negative")
    if not 0.0 <= failure_rate <= 1.0:
        raise ValueError("failure_rate must be between 0 and 1")
    return Starlette(routes=_Supplier(secret, latency_ms, failure_rate, seed).routes())


def _secret(text: str) -> bytes:
    secret = text.encode()
    if len(secret) < MIN_SECRET_BYTES:
        raise argparse.ArgumentTypeError(f"must have at least {MIN_SECRET_BYTES} bytes")
    return secret


def _latency(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--secret", type=_secret, required=True, help="shared HMAC secret, at least 16 bytes"
    )
    parser.add_argument(
        "--latency-ms", type=_latency, default=0, help="answer after up to this many ms"
    )
    parser.add_argument(
        "--failure-rate", type=_rate, default=0.0, help="share of calls that fail, 0 to 1"
    )
    parser.add_argument("--seed", type=int, help="seed of the fault and code randomness")


def run(args: argparse.Namespace) -> int:
    app = create_app(
        args.secret, latency_ms=args.latency_ms, failure_rate=args.failure_rate, seed=args.seed
    )
    config = uvicorn.Config(
        app, host=args.host, port=args.port, log_level="warning", access_log=False, loop="asyncio"
    )
    logging.getLogger("uvicorn.error").addFilter(_hide_dropped)
    print(f"supplier simulator on http://{args.host}:{args.port}", flush=True)
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="supplier_sim", description=__doc__)
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
