"""Freezing a channel's codes in bulk: codes/s, and what it costs orders on the same pool.

    python bench/freeze.py [--codes 100000] [--stock 20000] [--chunk 2000] [--clients 8]

A channel holds ``--codes`` sold codes in orders of 100, and the pool has ``--stock``
more on sale, all made straight in SQL. The bench then freezes the channel's codes,
unfreezes them and voids them through the same core as ``freezeCodes`` (selection in
keyset pages, pool actors in chunks of ``--chunk``), while ``--clients`` requesters
keep reserving one code at a time from the same pool. It prints codes/s for each step,
the requesters' p50 and p99 while it runs, and checks that the pool's counters match its
codes and that no frozen code was reserved.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.messages import Reserved
from actors.registry import PoolRegistry
from persistence import migrations
from persistence.code_selection import ByChannel
from persistence.code_states import MoveEvent
from persistence.embedded import EmbeddedPostgres, EmbeddedValkey
from persistence.events import EventHub
from resolvers import code_changes
from resolvers.code_changes import Change
from settings import Settings


async def make_channel_stock(db: asyncpg.Pool[Any], codes: int, stock: int) -> tuple[int, str]:
    """A pool whose first ``codes`` codes are sold to a channel in orders of 100."""
    await db.execute(
        "INSERT INTO encryption_keys (id, wrapped_key, active) VALUES (1, '\\x00', true)"
    )
    product: int = await db.fetchval(
        "INSERT INTO products (name, category, face_value, cost_price, base_price, fulfilment)"
        " VALUES ('bench card', 'GAME', 100, 90, 95, 'POOL') RETURNING id"
    )
    pool: int = await db.fetchval(
        "INSERT INTO pools (product_id, name, available, sold) VALUES ($1, 'bench', $2, $3)"
        " RETURNING id",
        product,
        stock,
        codes,
    )
    await db.execute(
        """INSERT INTO codes (pool_id, fingerprint, code_ciphertext, key_id, last4, status)
           SELECT $1, sha256(convert_to(g::text, 'UTF8')), '\\x00', 1, 'xxxx',
                  CASE WHEN g <= $2::int THEN 'sold' ELSE 'available' END
           FROM generate_series(1, $2::int + $3::int) AS g""",
        pool,
        codes,
        stock,
    )
    channel = await db.fetchrow(
        """INSERT INTO channels (id, parent_id, name, path)
           SELECT 1000, id, 'bench agent', path || '1000' FROM channels WHERE parent_id IS NULL
           RETURNING id, path::text"""
    )
    assert channel is not None
    sale: int = await db.fetchval(
        "INSERT INTO ledger_transactions (kind, reference) VALUES ('SALE', 'bench') RETURNING id"
    )
    await db.execute(
        """INSERT INTO orders (channel_id, product_id, idempotency_key, input_hash, quantity,
                               unit_price, total, payment, status, pool_id,
                               sale_transaction_id)
           SELECT $1, $2, 'bench-' || g, '', 100, 95, 9500, 'BALANCE', 'PAID', $3, $4
           FROM generate_series(1, $5) AS g""",
        channel["id"],
        product,
        pool,
        sale,
        codes // 100,
    )
    await db.execute(
        """INSERT INTO order_codes (order_id, code_id)
           SELECT o.id, c.id
           FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM orders) AS o
           JOIN (SELECT id, row_number() OVER (ORDER BY id) AS n FROM codes
                 WHERE status = 'sold') AS c ON (c.n - 1) / 100 + 1 = o.n"""
    )
    await db.execute("ANALYZE")
    return pool, channel["path"]


async def while_reserving(
    registry: PoolRegistry, pool: int, clients: int, work: Callable[[], Awaitable[Any]]
) -> tuple[Any, float, list[float], list[int]]:
    """Run ``work`` while ``clients`` requesters reserve one code at a time."""
    latencies: list[float] = []
    reserved: list[int] = []
    done = asyncio.Event()

    async def requester(n: int) -> None:
        i = 0
        while not done.is_set():
            started = time.perf_counter()
            got = await registry.reserve(pool, f"r{n}-{i}-{time.monotonic_ns()}", 1)
            latencies.append(time.perf_counter() - started)
            if isinstance(got, Reserved):
                reserved.extend(got.code_ids)
            i += 1

    requesters = [asyncio.create_task(requester(n)) for n in range(clients)]
    await asyncio.sleep(0.1)
    started = time.perf_counter()
    result = await work()
    elapsed = time.perf_counter() - started
    done.set()
    await asyncio.gather(*requesters)
    return result, elapsed, latencies, reserved


def main(args: argparse.Namespace) -> None:
    base = Path(tempfile.mkdtemp(prefix="quanyi-bench-"))
    postgres, valkey = EmbeddedPostgres(base), EmbeddedValkey(base)
    try:
        asyncio.run(run(args, postgres.start(), valkey.start()))
    finally:
        valkey.stop()
        postgres.stop()
        shutil.rmtree(base, ignore_errors=True)


async def run(args: argparse.Namespace, dsn: str, redis_url: str) -> None:
    await migrations.migrate(dsn)
    db = await asyncpg.create_pool(dsn, min_size=4, max_size=16)
    pool, path = await make_channel_stock(db, args.codes, args.stock)
    print(f"{args.codes:,} codes sold to one channel, {args.stock:,} on sale, chunk {args.chunk:,}")

    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    events = EventHub(redis)
    await events.start()
    registry = PoolRegistry(db, events, Settings(database_url=dsn, redis_url=redis_url))
    await registry.start()
    selector = ByChannel(path)
    detail = {"reason": "bench", "by_channel_id": 1}
    all_reserved: list[int] = []

    for change in (Change.FREEZE, Change.UNFREEZE, Change.VOID):
        rule = code_changes.rule(change, selector, None)
        event = MoveEvent(change.value, "bench", detail)
        outcome, elapsed, latencies, reserved = await while_reserving(
            registry,
            pool,
            args.clients,
            functools.partial(
                code_changes.apply, registry, db, selector, rule, change, event, chunk=args.chunk
            ),
        )
        all_reserved += reserved
        q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
        print(
            f"{change.name.lower():8} {outcome.changed:8,} codes in {elapsed:5.2f} s"
            f" = {outcome.changed / elapsed:8,.0f} codes/s;"
            f" {len(latencies):5,} reservations beside it, p50 {q[49] * 1000:6.1f} ms"
            f" p99 {q[98] * 1000:6.1f} ms"
        )

    await registry.stop()
    await events.stop()
    await redis.aclose()
    counters = await db.fetchrow("SELECT available, reserved, sold, frozen, voided FROM pools")
    assert counters is not None
    rows = await db.fetch("SELECT status, count(*) AS n FROM codes GROUP BY status")
    counted = {r["status"]: r["n"] for r in rows}
    assert {k: v for k, v in dict(counters).items() if v} == counted, (counters, counted)
    assert counted.get("voided") == args.codes, counted
    # The requesters' codes came from the stock and stayed reserved: none was the
    # channel's, and no freeze or void touched one.
    strays = await db.fetchval(
        """SELECT count(*) FROM codes c
           WHERE c.id = ANY($1::bigint[])
             AND (c.status <> 'reserved' OR EXISTS (
                 SELECT 1 FROM order_codes oc WHERE oc.code_id = c.id))""",
        all_reserved,
    )
    assert not strays, f"{strays} reserved codes were the channel's or were moved"
    print("checks: counters match the codes; the codes reserved beside stayed reserved")
    await db.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--codes", type=int, default=100_000)
    parser.add_argument("--stock", type=int, default=20_000)
    parser.add_argument("--chunk", type=int, default=code_changes.CHUNK)
    parser.add_argument("--clients", type=int, default=8)
    main(parser.parse_args())
