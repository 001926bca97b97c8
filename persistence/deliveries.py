"""The delivery outbox: rows queued with a paid order, claimed and recorded by workers.

A worker claims due rows with a lease (``claim``) and records each attempt's outcome
conditionally on still holding that claim, so a row released from a worker that died or
stalled is never recorded twice. Each worker holds a session advisory lock named by its
id for as long as it runs; PostgreSQL drops the lock with the connection of a process that
died, and ``release_abandoned`` makes its claims due again at once instead of waiting
for their leases to run out.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from persistence.queries import queries
from persistence.types import Db

Q = queries("deliveries")

# The advisory lock class of outbox workers: `pg_advisory_lock(WORKER_LOCK_CLASS, worker)`.
WORKER_LOCK_CLASS = 0x51594F42  # "QYOB"
_WORKER_IDS = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Requested:
    order_id: int
    channel_id: int
    method: str  # "LINK" | "WEBHOOK" | "EMAIL" | "SMS" (API is never queued)
    target: str | None  # e-mail address, phone; None for LINK and WEBHOOK


async def enqueue(conn: Db, requested: Sequence[Requested]) -> None:
    """Queue deliveries of paid orders in the caller's transaction, with one statement for
    any number of orders. WEBHOOK expands to one row per active endpoint of the channel
    subscribed to ``order.paid`` (none when it has none). Queueing the same delivery of an
    order again changes nothing."""
    if not requested:
        return
    await conn.execute(
        Q["enqueue"],
        [r.order_id for r in requested],
        [r.channel_id for r in requested],
        [r.method for r in requested],
        [r.target for r in requested],
    )


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    id: int
    order_id: int
    channel_id: int
    method: str
    target: str | None
    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime
    delivered_at: datetime | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> DeliveryRecord:
        return cls(
            id=row["id"],
            order_id=row["order_id"],
            channel_id=row["channel_id"],
            method=row["method"],
            target=row["target"],
            status=row["status"],
            attempts=row["attempts"],
            last_error=row["last_error"],
            next_attempt_at=row["next_attempt_at"],
            delivered_at=row["delivered_at"],
            created_at=row["created_at"],
        )


async def of_order(db: Db, order_id: int) -> list[DeliveryRecord]:
    return [DeliveryRecord.from_row(r) for r in await db.fetch(Q["of_order"], order_id)]


# --- the worker's side ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: int
    kind: str
    secret_ciphertext: bytes
    key_id: int
    disabled: bool

    def __repr__(self) -> str:
        return f"Endpoint(id={self.id}, kind={self.kind})"


@dataclass(frozen=True, slots=True)
class Job:
    """A claimed delivery, with what sending it needs. ``attempt`` counts this one."""

    id: int
    worker: int
    attempt: int
    order_id: int
    channel_id: int
    method: str
    target: str | None
    order_status: str
    product_id: int
    product_name: str
    paid_at: datetime | None
    created_at: datetime
    endpoint: Endpoint | None
    # "order.paid" (the order's codes, read when sent) or another event with its message.
    event: str = "order.paid"
    payload: dict[str, Any] | None = None


async def notify(
    conn: Db,
    *,
    order_id: int,
    event: str,
    event_key: str,
    channel_ids: Sequence[int],
    payload: dict[str, Any],
) -> None:
    """Queue ``event`` about one of the order's codes (told apart by ``event_key``) to the
    webhook endpoints of ``channel_ids`` subscribed to it, in the caller's transaction.
    Queueing it again changes nothing."""
    await conn.execute(
        Q["notify"], order_id, event, event_key, list(channel_ids), json.dumps(payload)
    )


async def take_worker_id(conn: asyncpg.Connection[Any]) -> int:
    """A worker id, locked on ``conn`` (a connection of its own, kept open) for as long as
    that connection lives."""
    while True:
        worker = secrets.randbelow(_WORKER_IDS) + 1
        if await conn.fetchval(Q["try_worker_lock"], WORKER_LOCK_CLASS, worker):
            return worker


async def claim(db: Db, worker: int, limit: int, lease_seconds: float) -> list[Job]:
    rows = await db.fetch(Q["claim"], limit, worker, lease_seconds)
    return [
        Job(
            id=r["id"],
            worker=worker,
            attempt=r["attempts"],
            order_id=r["order_id"],
            channel_id=r["channel_id"],
            method=r["method"],
            target=r["target"],
            order_status=r["order_status"],
            product_id=r["product_id"],
            product_name=r["product_name"],
            paid_at=r["paid_at"],
            created_at=r["created_at"],
            endpoint=Endpoint(
                id=r["endpoint_id"],
                kind=r["endpoint_kind"],
                secret_ciphertext=r["secret_ciphertext"],
                key_id=r["key_id"],
                disabled=r["endpoint_disabled_at"] is not None,
            )
            if r["endpoint_id"] is not None
            else None,
            event=r["event"],
            payload=json.loads(r["payload"]) if r["payload"] is not None else None,
        )
        for r in rows
    ]


async def release_abandoned(db: Db, max_attempts: int) -> int:
    """Make the claims of dead workers and overrun leases due again; how many there were."""
    return len(await db.fetch(Q["release_abandoned"], WORKER_LOCK_CLASS, max_attempts))


async def mark_delivered(db: Db, job: Job) -> bool:
    """False when the claim was released meanwhile (nothing changed)."""
    return await db.fetchval(Q["delivered"], job.id, job.worker, job.attempt) is not None


async def mark_retry(db: Db, job: Job, error: str, delay_seconds: float) -> bool:
    return (
        await db.fetchval(Q["retry"], job.id, job.worker, job.attempt, error, delay_seconds)
        is not None
    )


async def mark_dead(db: Db, job: Job, error: str) -> bool:
    return await db.fetchval(Q["dead"], job.id, job.worker, job.attempt, error) is not None


# --- link pages -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkView:
    """One counted view of a link page: ``views`` counts it."""

    order_id: int
    channel_id: int
    views: int
    created_at: datetime
    product_name: str


@dataclass(frozen=True, slots=True)
class LinkState:
    views: int
    created_at: datetime
    order_status: str


async def view_link(
    db: Db, delivery_id: int, max_views: int, ttl_seconds: float
) -> LinkView | None:
    """Count a view of a live link; None (and nothing counted) for any other."""
    row = await db.fetchrow(Q["view_link"], delivery_id, max_views, ttl_seconds)
    if row is None:
        return None
    return LinkView(
        order_id=row["order_id"],
        channel_id=row["channel_id"],
        views=row["link_views"],
        created_at=row["created_at"],
        product_name=row["product_name"],
    )


async def link_state(db: Db, delivery_id: int) -> LinkState | None:
    row = await db.fetchrow(Q["link"], delivery_id)
    if row is None:
        return None
    return LinkState(row["link_views"], row["created_at"], row["order_status"])
