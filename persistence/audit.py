"""The audit chain's rows: chaining new events, reading the chain back, tracing a code."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from domain.audit import Entry, Event, Link
from persistence.channels import ChannelRecord
from persistence.orders import OrderCodeRecord, OrderRecord
from persistence.queries import queries
from persistence.types import Db

Q = queries("audit")

# An arbitrary constant that names "the chainer" for pg_try_advisory_xact_lock.
CHAINER_LOCK = 0x5155_414E_5949_4155  # "QUANYIAU"


@dataclass(frozen=True, slots=True)
class ChainerState:
    # Every event with an id up to this one is chained.
    horizon: int
    # No transaction that could add an event below the candidate is still writing: the
    # candidate may become the horizon once a search has chained what they wrote.
    settled: bool


@dataclass(frozen=True, slots=True)
class Unchained:
    events: list[Event]
    # The highest event id the search's snapshot held (None: no events at all), and a
    # time taken after that snapshot.
    seen_max: int | None
    seen_at: datetime


@dataclass(frozen=True, slots=True)
class UnchainedSummary:
    count: int
    first_stale: int | None


@dataclass(frozen=True, slots=True)
class TraceRow:
    event: Event
    chained: bool


def _event(row: asyncpg.Record) -> Event:
    return Event(
        id=row["id"],
        code_id=row["code_id"],
        kind=row["kind"],
        order_id=row["order_id"],
        channel_id=row["channel_id"],
        actor=row["actor"],
        created_at=row["created_at"],
        detail=row["detail"],
    )


async def try_lock(conn: Db) -> bool:
    """In a transaction: whether this one is the chainer until it ends."""
    locked: bool = await conn.fetchval(Q["try_lock"], CHAINER_LOCK)
    return locked


async def state(conn: Db) -> ChainerState:
    row = await conn.fetchrow(Q["state"])
    assert row is not None, "migration 0010 inserts the chainer's row"
    return ChainerState(row["horizon"], row["settled"])


async def promote(conn: Db, reach: int | None) -> None:
    await conn.execute(Q["promote"], reach)


async def propose(conn: Db, candidate: int, seen_at: datetime) -> None:
    await conn.execute(Q["propose"], candidate, seen_at)


async def head(conn: Db) -> tuple[int, bytes] | None:
    row = await conn.fetchrow(Q["head"])
    return (row["seq"], bytes(row["hash"])) if row else None


async def unchained(conn: Db, after_id: int, limit: int) -> Unchained:
    rows = await conn.fetch(Q["unchained"], after_id, limit)
    return Unchained(
        events=[_event(r) for r in rows if r["id"] is not None],
        seen_max=rows[0]["max_id"],
        seen_at=rows[0]["at"],
    )


async def append(conn: Db, links: Sequence[Link]) -> None:
    await conn.execute(
        Q["append"],
        [link.seq for link in links],
        [link.event_id for link in links],
        [link.prev_hash for link in links],
        [link.hash for link in links],
    )


async def entries(conn: Db, after_seq: int, through_seq: int, limit: int) -> list[Entry]:
    rows = await conn.fetch(Q["entries"], after_seq, through_seq, limit)
    return [
        Entry(
            seq=r["seq"],
            event_id=r["event_id"],
            prev_hash=bytes(r["prev_hash"]),
            hash=bytes(r["hash"]),
            event=_event(r) if r["id"] is not None else None,
        )
        for r in rows
    ]


async def unchained_summary(conn: Db, grace: timedelta) -> UnchainedSummary:
    row = await conn.fetchrow(Q["unchained_summary"], grace)
    assert row is not None
    return UnchainedSummary(row["unchained"], row["first_stale"])


async def event_code(conn: Db, event_id: int) -> int | None:
    code_id: int | None = await conn.fetchval(Q["event_code"], event_id)
    return code_id


async def traced_code(db: Db, code_id: int, subtree: str | None) -> OrderCodeRecord | None:
    """The code, if the caller may trace it: any code for the platform (``subtree``
    None), else a code of an order of the caller's subtree."""
    row = await db.fetchrow(Q["code"], code_id, subtree)
    if row is None:
        return None
    return OrderCodeRecord(row["id"], row["last4"], row["status"], row["expires_at"])


async def trace(db: Db, code_id: int, subtree: str | None) -> list[TraceRow]:
    rows = await db.fetch(Q["trace"], code_id, subtree)
    return [TraceRow(_event(r), r["chained"]) for r in rows]


async def orders_by_id(db: Db, order_ids: Sequence[int]) -> dict[int, OrderRecord]:
    rows = await db.fetch(Q["orders"], list(order_ids))
    return {r["id"]: OrderRecord.from_row(r) for r in rows}


async def channels_by_id(db: Db, channel_ids: Sequence[int]) -> dict[int, ChannelRecord]:
    rows = await db.fetch(Q["channels"], list(channel_ids))
    return {r["id"]: ChannelRecord.from_row(r) for r in rows}


async def merchant_names(db: Db, merchant_ids: Sequence[int]) -> dict[int, str]:
    rows: list[Any] = await db.fetch(Q["merchants"], list(merchant_ids))
    return {r["id"]: r["name"] for r in rows}
