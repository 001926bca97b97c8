"""Crash safety of the outbox: `kill -9` of the server while deliveries are being sent.

The real `quanyi serve` sends webhooks to a slow receiver in this process (uvicorn in a
thread of its own). The server is killed with SIGKILL while some deliveries are recorded
DELIVERED, some are on the wire and some wait, then started again on the same data
directory. The receiver must then have every delivery, each under its one webhook-id, and
nothing sent again after its success was recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import uvicorn
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from persistence import deliveries
from persistence.deliveries import Requested
from persistence.embedded import EmbeddedPostgres
from schema import ids
from tests.integration import test_process_lifecycle as lifecycle
from tests.integration.test_crash import PLACE, _payload, _platform_key, _seed
from tests.integration.test_outbox import free_socket
from tests.integration.test_process_lifecycle import _postmaster_pid, data_dir, serving

__all__ = ["data_dir"]  # the fixture, imported for this module's tests

pytestmark = pytest.mark.slow

ORDERS = 60
# Long enough that the outbox's 32 concurrent sends are on the wire together.
REPLY_DELAY = 0.3
KILL_AFTER_REQUESTS = 40
SETTLE_TIMEOUT = 30.0

CREATE_ENDPOINT = """
mutation($i: CreateWebhookEndpointInput!) {
  createWebhookEndpoint(input: $i) { secret userErrors { code message } }
}
"""


@dataclass
class Hit:
    webhook_id: str
    at: float


@dataclass
class SlowReceiver:
    """Answers 204 after REPLY_DELAY; processes each webhook-id once, as receivers should."""

    secret: str = ""
    hits: list[Hit] = field(default_factory=list)
    processed: list[str] = field(default_factory=list)
    bad_signatures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        with self.lock:
            self.hits.append(Hit(headers.get("webhook-id", ""), time.time()))
        try:
            Webhook(self.secret).verify(body, headers)
        except Exception:
            with self.lock:
                self.bad_signatures += 1
            return Response(status_code=400)
        await asyncio.sleep(REPLY_DELAY)
        with self.lock:
            if headers["webhook-id"] not in self.processed:
                self.processed.append(headers["webhook-id"])
        return Response(status_code=204)

    def count(self) -> int:
        with self.lock:
            return len(self.hits)


@contextlib.contextmanager
def receiving() -> Iterator[tuple[SlowReceiver, str]]:
    peer = SlowReceiver()
    sock = free_socket()
    app = Starlette(routes=[Route("/hook", peer.handle, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="off", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield peer, f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def quick_outbox(monkeypatch: pytest.MonkeyPatch) -> None:
    """`quanyi serve` with quick retries, allowed to post to this machine."""
    environment: Callable[[], dict[str, str]] = lifecycle._env
    monkeypatch.setattr(
        lifecycle,
        "_env",
        lambda: (
            environment()
            | {
                "QUANYI_ALLOW_PRIVATE_TARGETS": "true",
                "QUANYI_OUTBOX_POLL_SECONDS": "0.05",
                "QUANYI_OUTBOX_RETRY_BASE_SECONDS": "0.05",
                "QUANYI_OUTBOX_RETRY_CAP_SECONDS": "0.2",
            }
        ),
    )


async def _queue_webhooks(dsn: str) -> list[int]:
    """Queue a WEBHOOK delivery of every paid order in one transaction, as a payment would."""
    conn = await asyncpg.connect(dsn)
    try:
        paid = await conn.fetch("SELECT id, channel_id FROM orders WHERE status = 'PAID'")
        async with conn.transaction():
            await deliveries.enqueue(
                conn, [Requested(r["id"], r["channel_id"], "WEBHOOK", None) for r in paid]
            )
        return [r["id"] for r in await conn.fetch("SELECT id FROM deliveries ORDER BY id")]
    finally:
        await conn.close()


async def _rows(dsn: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(
            "SELECT id, status, attempts, delivered_at FROM deliveries ORDER BY id"
        )
    finally:
        await conn.close()


def _wait_settled(dsn: str) -> list[asyncpg.Record]:
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        rows = asyncio.run(_rows(dsn))
        if all(r["status"] in ("DELIVERED", "DEAD") for r in rows):
            return rows
        assert time.monotonic() < deadline, [tuple(r) for r in rows]
        time.sleep(0.2)


def test_kill_9_while_sending_delivers_every_message_once(
    data_dir: Path, tmp_path: Path, quick_outbox: None
) -> None:
    postgres: EmbeddedPostgres | None = None
    try:
        with receiving() as (receiver, url):
            # Given a running server, an agent with paid orders and a webhook endpoint
            with serving(data_dir, tmp_path, reap=False) as first:
                postgres = EmbeddedPostgres(data_dir, owner=False)
                dsn = postgres.start()
                token, product = _seed(first, asyncio.run(_platform_key(dsn)))
                receiver.secret = _payload(first, CREATE_ENDPOINT, {"i": {"url": url}}, token)[
                    "secret"
                ]
                for n in range(ORDERS):
                    _payload(
                        first,
                        PLACE,
                        {"input": {"idempotencyKey": f"o{n}", "productId": product, "quantity": 1}},
                        token,
                    )
                postmaster = _postmaster_pid(data_dir)

                # When their deliveries are queued and the server is killed mid-send
                queued = asyncio.run(_queue_webhooks(dsn))
                assert len(queued) == ORDERS
                deadline = time.monotonic() + 20
                while receiver.count() < KILL_AFTER_REQUESTS:
                    assert time.monotonic() < deadline, "the deliveries did not start"
                    time.sleep(0.01)
                first.proc.send_signal(signal.SIGKILL)
                first.proc.wait(timeout=10)
            before_restart = asyncio.run(_rows(dsn))
            delivered_before = {r["id"] for r in before_restart if r["status"] == "DELIVERED"}
            sending_before = {r["id"] for r in before_restart if r["status"] == "SENDING"}
            assert delivered_before, "the kill came before any delivery was recorded"
            assert sending_before, "the kill came after every delivery was recorded"

            # And the server is started again on the same data directory
            with serving(data_dir, tmp_path, reap=False):
                assert _postmaster_pid(data_dir) == postmaster
                rows = _wait_settled(dsn)
                time.sleep(0.5)  # time for anything that would still be sent

        # Then every delivery is DELIVERED, and the receiver processed each exactly once
        assert [r["status"] for r in rows] == ["DELIVERED"] * ORDERS
        assert receiver.bad_signatures == 0
        expected = [ids.encode("Delivery", i) for i in queued]
        assert sorted(receiver.processed) == sorted(expected)
        assert len(set(receiver.processed)) == len(receiver.processed)

        # And no message was sent again once its success was recorded: repeats are only
        # of messages on the wire at the kill, each sent before its DELIVERED was written
        delivered_at: dict[str, datetime] = {
            ids.encode("Delivery", r["id"]): r["delivered_at"] for r in rows
        }
        for hit in receiver.hits:
            assert hit.at <= delivered_at[hit.webhook_id].timestamp(), hit
        repeated = {
            h.webhook_id
            for h in receiver.hits
            if sum(x.webhook_id == h.webhook_id for x in receiver.hits) > 1
        }
        assert repeated <= {ids.encode("Delivery", i) for i in sending_before}
        resent_after_success = {ids.encode("Delivery", i) for i in delivered_before} & repeated
        assert resent_after_success == set()
        # And the interrupted attempts were counted
        attempts: dict[int, Any] = {r["id"]: r["attempts"] for r in rows}
        assert all(attempts[i] == 2 for i in sending_before)
    finally:
        if postgres is not None:
            with contextlib.suppress(Exception):
                postgres.stop()
