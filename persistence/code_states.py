"""The statements a PoolActor runs: every write of a code's state lives here.

Each write takes the pool's epoch and is fenced by it, and returns the pool's counters
as they are after the write, so the actor never has to count codes.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from persistence.queries import queries
from persistence.types import Db

Q = queries("code_states")


@dataclass(frozen=True, slots=True)
class Counts:
    available: int
    reserved: int
    sold: int
    frozen: int
    voided: int

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Counts:
        return cls(row["available"], row["reserved"], row["sold"], row["frozen"], row["voided"])


@dataclass(frozen=True, slots=True)
class Claim:
    epoch: int
    product_id: int
    counts: Counts


@dataclass(frozen=True, slots=True)
class Moved:
    """The codes a write moved and the pool's counters after it."""

    ids: list[int]
    counts: Counts
    row: asyncpg.Record


class Fenced(Exception):
    """The pool's epoch moved on: another actor owns the pool now."""


async def claim(db: Db, pool_id: int) -> Claim | None:
    """Take ownership of a pool by bumping its epoch; None when the pool does not exist."""
    row = await db.fetchrow(Q["claim"], pool_id)
    if row is None:
        return None
    return Claim(row["epoch"], row["product_id"], Counts.from_row(row))


async def window(db: Db, pool_id: int, after_id: int, limit: int) -> list[int]:
    return [r["id"] for r in await db.fetch(Q["window"], pool_id, after_id, limit)]


async def reserve(
    db: Db, pool_id: int, epoch: int, ids: list[int], refs: list[str], until: list[datetime]
) -> Moved:
    return _moved(await db.fetchrow(Q["reserve"], pool_id, epoch, ids, refs, until))


async def reserved_for(db: Db, pool_id: int, refs: list[str]) -> dict[str, tuple[list[int], Any]]:
    rows = await db.fetch(Q["reserved_for"], pool_id, refs)
    return {r["ref"]: (list(r["ids"]), r["until"]) for r in rows}


async def commit(db: Db, pool_id: int, epoch: int, ref: str) -> Moved:
    return _moved(await db.fetchrow(Q["commit"], pool_id, epoch, ref))


async def release(
    db: Db, pool_id: int, epoch: int, ref: str | None, expired_by: datetime | None
) -> Moved:
    return _moved(await db.fetchrow(Q["release"], pool_id, epoch, ref, expired_by))


@dataclass(frozen=True, slots=True)
class MoveEvent:
    """The code event a move records for each code it moves, in the same statement."""

    kind: str
    actor: str
    detail: dict[str, Any]


async def move(
    db: Db,
    pool_id: int,
    epoch: int,
    ids: list[int],
    sources: list[str],
    target: str | None,
    event: MoveEvent | None = None,
) -> Moved:
    recorded = (event.kind, event.actor, json.dumps(event.detail)) if event else (None, None, None)
    return _moved(await db.fetchrow(Q["move"], pool_id, epoch, ids, sources, target, *recorded))


class StaleWindow(Exception):
    """Codes the actor believed free were not: its window must be rebuilt."""


# Writes what goes with a sale, given the transaction's connection and the codes sold.
SaleWork = Callable[[Any, tuple[int, ...]], Awaitable[Any]]


async def sell(
    pool: asyncpg.Pool[Any],
    pool_id: int,
    epoch: int,
    sales: Sequence[tuple[str, list[int], SaleWork]],
) -> tuple[Counts, list[Any]]:
    """Sell codes for many sales at once: one commit for the whole batch.

    Works of one kind that can write a whole batch and sell its codes in one statement
    (``sell_batch``, the paid orders of the hot path) do, when the batch is all theirs.
    Otherwise each work runs in a savepoint of its own inside one transaction; a work
    that raises undoes only its sale, and its exception takes the place of its result.
    The codes of the sales that stand are then marked sold in one statement, fenced by
    the pool's epoch.
    """
    sell_batch = getattr(sales[0][2], "sell_batch", None)
    async with pool.acquire() as conn:
        if sell_batch is not None and all(
            getattr(work, "sell_batch", None) is sell_batch for _, _, work in sales
        ):
            counts, written = await sell_batch(
                conn, pool_id, epoch, [(work, tuple(ids)) for _, ids, work in sales]
            )
            return counts, list(written)
        async with conn.transaction():
            return await _sell_one_by_one(conn, pool_id, epoch, sales)


async def _sell_one_by_one(
    conn: Any, pool_id: int, epoch: int, sales: Sequence[tuple[str, list[int], SaleWork]]
) -> tuple[Counts, list[Any]]:
    if await conn.fetchval(Q["fence"], pool_id, epoch) is None:
        raise Fenced
    results: list[Any] = []
    for _, code_ids, work in sales:
        try:
            async with conn.transaction():
                results.append(await work(conn, tuple(code_ids)))
        except Exception as error:
            results.append(error)
    ids: list[int] = []
    refs: list[str] = []
    for (ref, code_ids, _), result in zip(sales, results, strict=True):
        if not isinstance(result, BaseException):
            ids += code_ids
            refs += [ref] * len(code_ids)
    row = await conn.fetchrow(Q["sell"], pool_id, ids, refs)
    assert row is not None, "the fence holds the pool row"
    if row["moved"] != len(ids):
        raise StaleWindow
    return Counts.from_row(row), results


async def epoch(db: Db, pool_id: int) -> int | None:
    value: int | None = await db.fetchval(Q["epoch"], pool_id)
    return value


async def counts(db: Db, pool_id: int) -> Counts | None:
    row = await db.fetchrow(Q["counts"], pool_id)
    return Counts.from_row(row) if row else None


async def expired_pools(db: Db, now: datetime, limit: int) -> list[int]:
    return [r["pool_id"] for r in await db.fetch(Q["expired_pools"], now, limit)]


async def product_stock(db: Db, product_id: int) -> asyncpg.Record | None:
    return await db.fetchrow(Q["product_stock"], product_id)


def _moved(row: asyncpg.Record | None) -> Moved:
    if row is None:
        raise Fenced
    return Moved(list(row["ids"]), Counts.from_row(row), row)
