"""The registry keeps actor threads bounded: busy pools live, idle ones are passivated."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import asyncpg
from redis.asyncio import Redis

from actors.messages import Reserved
from actors.registry import PoolRegistry
from persistence.events import EventHub
from settings import Settings
from tests.integration.pool_fixtures import make_pool, make_product, registry

__all__ = ["registry"]


async def test_many_pools_never_hold_a_thread_each(
    settings: Settings, db: asyncpg.Connection[Any]
) -> None:
    # Given 300 pools and a registry allowed 20 live actors, passivating after 0.3 s idle
    assert settings.database_url
    assert settings.redis_url
    product = await make_product(db)
    pools = [await make_pool(db, 3, product) for _ in range(300)]
    db_pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=8)
    redis = Redis.from_url(settings.redis_url)
    events = EventHub(redis)
    await events.start()
    registry = PoolRegistry(
        db_pool,
        events,
        settings.model_copy(update={"pool_max_actors": 20, "pool_idle_seconds": 0.3}),
    )
    await registry.start()
    threads_before = threading.active_count()
    try:
        # When every pool is used once, 30 at a time
        for start in range(0, 300, 30):
            results = await asyncio.gather(
                *(registry.reserve(p, "order", 1) for p in pools[start : start + 30])
            )
            assert all(isinstance(r, Reserved) for r in results)
            # Then never more than the limit (plus the batch in hand) are alive
            assert registry.live_actors <= 30
            assert threading.active_count() - threads_before <= 30

        # And once they are idle, all of them are passivated
        deadline = asyncio.get_running_loop().time() + 5
        while registry.live_actors:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.1)

        # And a passivated pool comes back with its state rebuilt from the database
        snapshot = await registry.snapshot(pools[0])
        assert (snapshot.available, snapshot.reserved) == (2, 1)
    finally:
        await registry.stop()
        await events.stop()
        await redis.aclose()
        await db_pool.close()


async def test_a_replaced_actor_does_not_refuse_stock_its_successor_has(
    settings: Settings, db: asyncpg.Connection[Any]
) -> None:
    # Given two processes' registries on one database, and a pool that A sold out
    assert settings.database_url
    assert settings.redis_url
    pool_id = await make_pool(db, 5)
    registries = []
    for _ in range(2):
        db_pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=4)
        redis = Redis.from_url(settings.redis_url)
        events = EventHub(redis)
        await events.start()
        registry = PoolRegistry(db_pool, events, settings)
        await registry.start()
        registries.append((registry, events, redis, db_pool))
    a, b = registries[0][0], registries[1][0]
    try:
        assert isinstance(await a.reserve(pool_id, "all", 5), Reserved)
        # When new codes arrive and B's actor claims the pool and sees them
        await db.execute(
            """INSERT INTO codes (pool_id, fingerprint, code_ciphertext, key_id, last4)
               SELECT $1, int8send(900000000 + g), '\\x00', 1, 'new'
               FROM generate_series(1, 3) AS g""",
            pool_id,
        )
        await db.execute("UPDATE pools SET available = available + 3 WHERE id = $1", pool_id)
        await b.stock_added(pool_id)

        # Then A, whose actor still believes the pool empty, sells them instead of refusing
        again = await a.reserve(pool_id, "more", 2)
        assert isinstance(again, Reserved), again
        assert (await a.snapshot(pool_id)).available == 1
    finally:
        for registry, events, redis, db_pool in registries:
            await registry.stop()
            await events.stop()
            await redis.aclose()
            await db_pool.close()


async def test_a_pool_that_cannot_start_answers_each_command_once_and_the_next_ones_too(
    registry: PoolRegistry,
) -> None:
    # Given a pool id that names no pool
    missing = 999_999

    # When commands reach it, some together and some after the first were answered
    first = await asyncio.wait_for(
        asyncio.gather(
            *(registry.reserve(missing, f"r{i}", 1) for i in range(5)), return_exceptions=True
        ),
        timeout=10,
    )
    later = await asyncio.wait_for(
        asyncio.gather(registry.snapshot(missing), return_exceptions=True), timeout=10
    )

    # Then every one is told the pool does not exist, and no actor is left trying
    assert [type(e).__name__ for e in [*first, *later]] == ["PoolGone"] * 6
    await asyncio.sleep(0.3)
    assert registry.live_actors == 0


async def test_a_dead_actors_successor_leaves_out_what_its_callers_gave_up_on(
    registry: PoolRegistry, db: asyncpg.Connection[Any]
) -> None:
    # Given a pool whose first write of a reservation hangs, then fails, killing its actor
    pool_id = await make_pool(db, 10)
    await db.execute(
        """CREATE SEQUENCE reservation_writes;
           CREATE FUNCTION fail_first_reservation() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
               IF NEW.status = 'reserved' AND nextval('reservation_writes') = 1 THEN
                   PERFORM pg_sleep(0.5);
                   RAISE EXCEPTION 'the disk is gone';
               END IF;
               RETURN NEW;
           END $$;
           CREATE TRIGGER fail_first_reservation BEFORE UPDATE ON codes
               FOR EACH ROW EXECUTE FUNCTION fail_first_reservation();"""
    )

    # When one caller's reservation is in that write and another's waits behind it,
    # and the first gives up before the actor dies
    abandoned = asyncio.create_task(registry.reserve(pool_id, "abandoned", 2))
    await asyncio.sleep(0.2)
    waiting = asyncio.create_task(registry.reserve(pool_id, "waiting", 3))
    await asyncio.sleep(0.05)
    abandoned.cancel()
    answer = await asyncio.wait_for(waiting, timeout=10)

    # Then the next actor makes the waiting reservation and not the abandoned one
    assert isinstance(answer, Reserved)
    assert len(answer.code_ids) == 3
    held = await db.fetch(
        "SELECT reservation_ref, count(*) AS n FROM codes WHERE status = 'reserved'"
        " GROUP BY reservation_ref"
    )
    assert {r["reservation_ref"]: r["n"] for r in held} == {"waiting": 3}
    snapshot = await registry.snapshot(pool_id)
    assert (snapshot.available, snapshot.reserved) == (7, 3)
