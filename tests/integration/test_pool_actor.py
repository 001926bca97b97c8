"""The PoolActor under concurrent load, faults and expiry, against real PostgreSQL."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from typing import Any

import asyncpg

from actors.messages import Committed, NotReserved, OutOfStock, Reserved
from actors.registry import PoolRegistry
from tests.integration.pool_fixtures import counters, make_pool, registry, states

__all__ = ["registry"]


async def test_concurrent_reservations_never_oversell(
    db: asyncpg.Connection[Any], registry: PoolRegistry
) -> None:
    # Given a pool of 200 codes
    pool_id = await make_pool(db, 200)

    # When 100 buyers reserve 3 codes each at once
    results = await asyncio.gather(
        *(registry.reserve(pool_id, f"order-{i}", 3) for i in range(100))
    )

    # Then exactly 66 get codes, 34 are out of stock, and no code is given twice
    reserved = [r for r in results if isinstance(r, Reserved)]
    refused = [r for r in results if isinstance(r, OutOfStock)]
    assert (len(reserved), len(refused)) == (66, 34)
    codes = [c for r in reserved for c in r.code_ids]
    assert len(codes) == len(set(codes)) == 198

    # And the database agrees, code by code and in the counters
    assert await states(db, pool_id) == {"reserved": 198, "available": 2}
    assert await counters(db, pool_id) == {"reserved": 198, "available": 2}
    held = await db.fetch(
        "SELECT reservation_ref, array_agg(id ORDER BY id) AS ids FROM codes"
        " WHERE pool_id = $1 AND status = 'reserved' GROUP BY 1",
        pool_id,
    )
    assert {r["reservation_ref"]: tuple(r["ids"]) for r in held} == {
        r.ref: tuple(sorted(r.code_ids)) for r in reserved
    }


async def test_commit_sells_exactly_the_reserved_codes_once(
    db: asyncpg.Connection[Any], registry: PoolRegistry
) -> None:
    # Given a reservation of 5 codes
    pool_id = await make_pool(db, 10)
    reservation = await registry.reserve(pool_id, "order-1", 5)
    assert isinstance(reservation, Reserved)

    # When it is committed twice (a retried payment) and an unknown one once
    first, again = await asyncio.gather(
        registry.commit(pool_id, "order-1"), registry.commit(pool_id, "order-1")
    )
    unknown = await registry.commit(pool_id, "order-2")

    # Then both commits name the same five codes, sold once
    assert first == again == Committed("order-1", tuple(sorted(reservation.code_ids)))
    assert unknown == NotReserved("order-2")
    assert await states(db, pool_id) == {"sold": 5, "available": 5}
    assert await counters(db, pool_id) == {"sold": 5, "available": 5}


async def test_released_codes_are_sold_again(
    db: asyncpg.Connection[Any], registry: PoolRegistry
) -> None:
    # Given a pool of 4 codes, all reserved
    pool_id = await make_pool(db, 4)
    held = await registry.reserve(pool_id, "cart-1", 4)
    assert isinstance(held, Reserved)
    assert isinstance(await registry.reserve(pool_id, "cart-2", 1), OutOfStock)

    # When the reservation is released
    released = await registry.release(pool_id, "cart-1")

    # Then its codes can be reserved again
    assert sorted(released.code_ids) == sorted(held.code_ids)
    again = await registry.reserve(pool_id, "cart-2", 4)
    assert isinstance(again, Reserved)
    assert sorted(again.code_ids) == sorted(held.code_ids)


async def test_reservations_expire_by_themselves(
    db: asyncpg.Connection[Any], registry: PoolRegistry
) -> None:
    # Given 10 codes reserved for half a second
    pool_id = await make_pool(db, 10)
    held = await registry.reserve(pool_id, "cart", 10, ttl=timedelta(seconds=0.5))
    assert isinstance(held, Reserved)

    # When nobody pays, and nobody asks for anything
    deadline = asyncio.get_running_loop().time() + 5
    while await counters(db, pool_id) != {"available": 10}:
        assert asyncio.get_running_loop().time() < deadline, await counters(db, pool_id)
        await asyncio.sleep(0.1)

    # Then the codes came back and sell again; the expired reservation cannot be paid
    assert await states(db, pool_id) == {"available": 10}
    assert await registry.commit(pool_id, "cart") == NotReserved("cart")
    assert isinstance(await registry.reserve(pool_id, "next", 10), Reserved)


async def test_actor_killed_mid_stream_loses_and_doubles_nothing(
    db: asyncpg.Connection[Any], registry: PoolRegistry
) -> None:
    # Given a pool of 500 codes and a stream of buyers
    pool_id = await make_pool(db, 500)

    async def buyer(i: int) -> Reserved | OutOfStock:
        await asyncio.sleep(random.random() * 0.2)
        return await registry.reserve(pool_id, f"order-{i}", 2)

    buyers = [asyncio.create_task(buyer(i)) for i in range(300)]

    # When its actor is stopped abruptly three times in the middle of the stream
    for _ in range(3):
        await asyncio.sleep(0.05)
        actor = registry.actor(pool_id)
        if actor is not None:
            actor.stop(block=False)
    results = await asyncio.gather(*buyers)

    # Then every buyer got an answer, no code went to two buyers, none was lost
    reserved = [r for r in results if isinstance(r, Reserved)]
    assert len(reserved) == 250
    assert all(isinstance(r, OutOfStock) for r in results if not isinstance(r, Reserved))
    codes = [c for r in reserved for c in r.code_ids]
    assert len(codes) == len(set(codes)) == 500
    assert await states(db, pool_id) == {"reserved": 500}
    assert await counters(db, pool_id) == {"reserved": 500}
    # And a new actor rebuilt from the database sees the same
    snapshot = await registry.snapshot(pool_id)
    assert (snapshot.available, snapshot.reserved) == (0, 500)


async def test_freezing_races_reservations_and_every_code_ends_in_one_state(
    db: asyncpg.Connection[Any], registry: PoolRegistry
) -> None:
    # Given a pool of 300 codes
    pool_id = await make_pool(db, 300)
    ids = [r["id"] for r in await db.fetch("SELECT id FROM codes WHERE pool_id = $1", pool_id)]

    # When buyers reserve while an operator freezes random slices of the same codes
    async def freezer(chunk: list[int]) -> int:
        await asyncio.sleep(random.random() * 0.05)
        return (await registry.freeze(pool_id, chunk)).count

    slices = [random.sample(ids, 40) for _ in range(10)]
    results = await asyncio.gather(
        *(registry.reserve(pool_id, f"order-{i}", 1) for i in range(200)),
        *(freezer(s) for s in slices),
    )

    # Then no reserved code is frozen and the counters match the codes exactly
    reserved = {c for r in results[:200] if isinstance(r, Reserved) for c in r.code_ids}
    frozen = {
        r["id"]
        for r in await db.fetch(
            "SELECT id FROM codes WHERE pool_id = $1 AND status = 'frozen'", pool_id
        )
    }
    assert not reserved & frozen
    assert sum(results[200:]) == len(frozen)
    by_state = await states(db, pool_id)
    assert by_state == await counters(db, pool_id)
    assert sum(by_state.values()) == 300
    assert by_state.get("reserved", 0) == len(reserved)

    # And a frozen code is never handed out afterwards either
    if by_state.get("available"):
        rest = await registry.reserve(pool_id, "sweep", by_state["available"])
        assert isinstance(rest, Reserved)
        assert not set(rest.code_ids) & frozen
    assert isinstance(await registry.reserve(pool_id, "more", 1), OutOfStock)

    # And unfreezing returns them to stock
    await registry.unfreeze(pool_id, sorted(frozen))
    back = await registry.reserve(pool_id, "after", len(frozen))
    assert isinstance(back, Reserved)
    assert set(back.code_ids) == frozen


async def test_a_buyer_is_not_kept_waiting_by_a_freeze_in_the_same_batch(
    db: asyncpg.Connection[Any], registry: PoolRegistry
) -> None:
    # Given a pool busy freezing 3,000 of its codes
    pool_id = await make_pool(db, 6000)
    ids = [
        r["id"]
        for r in await db.fetch("SELECT id FROM codes WHERE pool_id = $1 ORDER BY id", pool_id)
    ]
    first = asyncio.create_task(registry.freeze(pool_id, ids[:3000]))
    await asyncio.sleep(0)

    # When a freeze of 2,000 more and a reservation arrive meanwhile, and so travel together
    second = asyncio.create_task(registry.freeze(pool_id, ids[3000:5000]))
    buyer = asyncio.create_task(registry.reserve(pool_id, "buyer", 1))
    done, _ = await asyncio.wait({second, buyer}, return_when=asyncio.FIRST_COMPLETED)

    # Then the buyer has the code before that freeze is over, and one the freeze leaves
    assert done == {buyer}
    reserved = buyer.result()
    assert isinstance(reserved, Reserved)
    frozen = (await first).count + (await second).count
    assert frozen == 5000 - len(set(reserved.code_ids) & set(ids[:5000]))
    by_state = await states(db, pool_id)
    assert by_state == await counters(db, pool_id)
    assert by_state == {"frozen": frozen, "reserved": 1, "available": 6000 - frozen - 1}
