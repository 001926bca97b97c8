"""Pools full of codes, made straight in SQL: the actor tests need volume, not secrets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from actors.registry import PoolRegistry
from persistence.events import EventHub
from settings import Settings


async def make_product(db: asyncpg.Connection[Any], name: str = "Test card") -> int:
    product_id: int = await db.fetchval(
        """INSERT INTO products (name, category, face_value, cost_price, base_price, fulfilment)
           VALUES ($1, 'GAME', 100, 90, 95, 'POOL') RETURNING id""",
        name,
    )
    return product_id


async def make_pool(db: asyncpg.Connection[Any], size: int, product_id: int | None = None) -> int:
    """A pool of ``size`` available codes with placeholder ciphertexts."""
    await db.execute(
        "INSERT INTO encryption_keys (id, wrapped_key, active) VALUES (1, '\\x00', true)"
        " ON CONFLICT DO NOTHING"
    )
    if product_id is None:
        product_id = await make_product(db)
    pool_id: int = await db.fetchval(
        "INSERT INTO pools (product_id, name, available) VALUES ($1, 'test pool', $2) RETURNING id",
        product_id,
        size,
    )
    async with db.transaction():
        # The rows point at the pool and key just made: checking their foreign keys one by
        # one adds half again to the time of a million rows.
        await db.execute("SET LOCAL session_replication_role = replica")
        await db.execute(
            """INSERT INTO codes (pool_id, fingerprint, code_ciphertext, key_id, last4)
               SELECT p, int8send(p * 100000000 + g), '\\x00', 1, lpad(g::text, 4, '0')
               FROM (SELECT $1::bigint AS p) AS pool, generate_series(1, $2) AS g""",
            pool_id,
            size,
        )
    return pool_id


async def states(db: asyncpg.Connection[Any], pool_id: int) -> dict[str, int]:
    rows = await db.fetch(
        "SELECT status, count(*) AS n FROM codes WHERE pool_id = $1 GROUP BY status", pool_id
    )
    return {r["status"]: r["n"] for r in rows}


async def counters(db: asyncpg.Connection[Any], pool_id: int) -> dict[str, int]:
    row = await db.fetchrow(
        "SELECT available, reserved, sold, frozen, voided FROM pools WHERE id = $1", pool_id
    )
    return {k: v for k, v in dict(row).items() if v}


@pytest.fixture
async def registry(settings: Settings) -> AsyncIterator[PoolRegistry]:
    assert settings.database_url
    assert settings.redis_url
    settings = settings.model_copy(
        update={"reservation_sweep_seconds": 0.2, "pool_window_size": 64}
    )
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=8)
    redis = Redis.from_url(settings.redis_url)
    events = EventHub(redis)
    await events.start()
    registry = PoolRegistry(pool, events, settings)
    await registry.start()
    yield registry
    await registry.stop()
    await events.stop()
    await redis.aclose()
    await pool.close()
