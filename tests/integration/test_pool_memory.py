"""A pool's actor costs its window, not its size."""

from __future__ import annotations

import gc
from typing import Any

import asyncpg
import psutil

from actors.messages import Reserved
from actors.registry import PoolRegistry
from tests.integration.pool_fixtures import make_pool, registry

__all__ = ["registry"]

MILLION = 1_000_000
# What holding every id would cost: a set of a million ints is about 60 MB and a list
# about 36 MB. The window (64 ids in these tests) and the reservations made are a few
# hundred KB; allow generous room for allocator noise.
LIMIT = 12 * 1024 * 1024


def rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


async def test_a_million_code_pool_costs_only_its_window(
    db: asyncpg.Connection[Any], registry: PoolRegistry
) -> None:
    # Given a pool of a million codes, and a warmed-up actor on a small pool (so the
    # one-off costs of threads, statements and buffers are paid before measuring)
    pool_id = await make_pool(db, MILLION)
    small = await make_pool(db, 100)
    assert isinstance(await registry.reserve(small, "warm-up", 10), Reserved)
    before = rss()

    # When its actor starts and hands out 20,000 codes in many batches
    for i in range(200):
        assert isinstance(await registry.reserve(pool_id, f"order-{i}", 100), Reserved)
    snapshot = await registry.snapshot(pool_id)

    # Then the process grew by far less than the pool's ids would take
    grown = rss() - before
    assert snapshot.available == MILLION - 20_000
    assert snapshot.window <= 64
    assert grown < LIMIT, f"RSS grew by {grown / 1e6:.1f} MB"
