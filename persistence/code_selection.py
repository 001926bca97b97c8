"""Selecting the codes a freeze, unfreeze or void takes: by ids, order, batch, pool or
channel subtree.

Only reads. A selection of millions of codes is walked in keyset pages, each classified
by state in one statement and grouped by pool, so no more than a page of ids is held at
a time. The pool actors make the changes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from persistence.queries import queries
from persistence.types import Db

Q = queries("code_selection")

# Code ids per page of a pool or batch; orders per page of a channel subtree (each with
# at most a few hundred codes).
CODES_PER_PAGE = 10_000
ORDERS_PER_PAGE = 1_000


@dataclass(frozen=True, slots=True)
class ByIds:
    code_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ByOrder:
    order_id: int


@dataclass(frozen=True, slots=True)
class ByBatch:
    batch_id: int
    pool_id: int


@dataclass(frozen=True, slots=True)
class ByPool:
    pool_id: int


@dataclass(frozen=True, slots=True)
class ByChannel:
    """The codes sold to orders of the channels in the subtree at ``path``."""

    path: str


Selector = ByIds | ByOrder | ByBatch | ByPool | ByChannel


@dataclass(frozen=True, slots=True)
class Rule:
    """Which of the selected codes a change concerns.

    ``moves``: the states it moves codes from. ``keeps``: states it selects but leaves
    as they are (reserved codes belong to an order in flight). ``unredeemed``: only codes
    with uses left. ``frozen_from``: only codes whose last freeze was made from the
    subtree at this path (the others are kept).
    """

    moves: tuple[str, ...]
    keeps: tuple[str, ...] = ()
    unredeemed: bool = False
    frozen_from: str | None = None


@dataclass(slots=True)
class Page:
    """A page of a selection: the codes to move by pool, in id order, and how many of
    the selected codes stay as they are."""

    movable: dict[int, list[int]] = field(default_factory=dict)
    kept: int = 0


async def in_scope(db: Db, code_ids: list[int], subtree: str | None) -> set[int]:
    """The codes of ``code_ids`` that exist and, given ``subtree``, were sold to an order
    of a channel in it."""
    return {r["id"] for r in await db.fetch(Q["in_scope"], code_ids, subtree)}


async def batch_pool(db: Db, batch_id: int) -> int | None:
    """The pool a batch of codes was imported or generated into; None for no batch."""
    pool_id: int | None = await db.fetchval(Q["batch_pool"], batch_id)
    return pool_id


async def pages(db: Db, selector: Selector, rule: Rule) -> AsyncIterator[Page]:
    async for ids in _candidates(db, selector):
        if ids:
            yield await _classify(db, ids, rule)


async def _candidates(db: Db, selector: Selector) -> AsyncIterator[list[int]]:
    """The selected code ids in pages, whatever their state."""
    match selector:
        case ByIds(code_ids):
            yield list(code_ids)
        case ByOrder(order_id):
            yield [r["id"] for r in await db.fetch(Q["of_order"], order_id)]
        case ByPool(pool_id):
            after = 0
            while ids := [
                r["id"] for r in await db.fetch(Q["pool_page"], pool_id, after, CODES_PER_PAGE)
            ]:
                yield ids
                after = ids[-1]
        case ByBatch(batch_id, pool_id):
            after = 0
            while ids := [
                r["id"]
                for r in await db.fetch(Q["batch_page"], pool_id, batch_id, after, CODES_PER_PAGE)
            ]:
                yield ids
                after = ids[-1]
        case ByChannel(path):
            after = 0
            while True:
                row = await db.fetchrow(Q["channel_page"], path, after, ORDERS_PER_PAGE)
                if row is None or row["last_order"] is None:
                    return
                yield list(row["ids"])
                after = row["last_order"]


async def _classify(db: Db, code_ids: list[int], rule: Rule) -> Page:
    rows = await db.fetch(
        Q["classify"],
        code_ids,
        list(rule.moves),
        list(rule.keeps),
        rule.unredeemed,
        rule.frozen_from,
    )
    page = Page()
    for row in rows:
        if row["movable"]:
            page.movable.setdefault(row["pool_id"], []).append(row["id"])
        else:
            page.kept += 1
    return page
