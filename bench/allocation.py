"""Allocation throughput: the PoolActor path against a SKIP LOCKED baseline, in one run.

    python bench/allocation.py [--seconds 10] [--codes 200000] [--clients 64]

Both variants run against the same embedded PostgreSQL with full durability (fsync and
synchronous_commit on), each on a fresh pool of ``--codes`` codes, with ``--clients``
concurrent requesters each reserving one code at a time:

  baseline  one transaction per request:
            UPDATE codes ... WHERE id = (SELECT id ... FOR UPDATE SKIP LOCKED LIMIT 1)
            over the partial index on (pool_id, id) WHERE status = 'available'
  actor     PoolRegistry.reserve from the asyncio side: requests that arrive while a
            batch is being written travel together as the next batch (one statement)

It prints allocations/s, p50 and p99 for each, the ratio, and checks that no code was
given twice and that the database's counts match what the requesters got.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.messages import Reserved
from actors.registry import PoolRegistry
from persistence import migrations
from persistence.embedded import EmbeddedPostgres, EmbeddedValkey
from persistence.events import EventHub
from settings import Settings

BASELINE = """
UPDATE codes SET status = 'reserved', reservation_ref = $2,
                 reserved_until = now() + interval '15 minutes'
WHERE id = (
    SELECT id FROM codes
    WHERE pool_id = $1 AND status = 'available'
    ORDER BY id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING id
"""


async def make_pool(db: asyncpg.Pool[Any], size: int) -> int:
    await db.execute(
        "INSERT INTO encryption_keys (id, wrapped_key, active) VALUES (1, '\\x00', true)"
        " ON CONFLICT DO NOTHING"
    )
    product: int = await db.fetchval(
        "INSERT INTO products (name, category, face_value, cost_price, base_price, fulfilment)"
        " VALUES ('bench card', 'GAME', 100, 90, 95, 'POOL') RETURNING id"
    )
    pool: int = await db.fetchval(
        "INSERT INTO pools (product_id, name, available) VALUES ($1, 'bench', $2) RETURNING id",
        product,
        size,
    )
    await db.execute(
        """INSERT INTO codes (pool_id, fingerprint, code_ciphertext, key_id, last4)
           SELECT p, sha256(convert_to(p::text || ':' || g::text, 'UTF8')), '\\x00', 1, 'xxxx'
           FROM (SELECT $1::bigint AS p) AS pool, generate_series(1, $2) AS g""",
        pool,
        size,
    )
    await db.execute("ANALYZE codes")
    return pool


async def drive(
    clients: int, seconds: float, allocate: Callable[[str], Awaitable[list[int]]]
) -> tuple[list[int], list[float], float]:
    """Run ``clients`` requesters for ``seconds``; return codes, latencies, elapsed."""
    codes: list[int] = []
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds

    async def requester(n: int) -> None:
        i = 0
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            got = await allocate(f"c{n}-{i}")
            if not got:
                return
            latencies.append(time.perf_counter() - started)
            codes.extend(got)
            i += 1

    started = time.perf_counter()
    await asyncio.gather(*(requester(n) for n in range(clients)))
    return codes, latencies, time.perf_counter() - started


def report(name: str, codes: list[int], latencies: list[float], elapsed: float) -> float:
    rate = len(codes) / elapsed
    q = statistics.quantiles(latencies, n=100)
    print(
        f"{name:9} {len(codes):8d} codes in {elapsed:5.1f} s = {rate:9.0f} allocations/s"
        f"   p50 {q[49] * 1000:7.2f} ms   p99 {q[98] * 1000:7.2f} ms"
    )
    return rate


async def check(db: asyncpg.Pool[Any], pool: int, codes: list[int], name: str) -> None:
    assert len(codes) == len(set(codes)), f"{name}: a code was given twice"
    reserved = await db.fetchval(
        "SELECT count(*) FROM codes WHERE pool_id = $1 AND status = 'reserved'", pool
    )
    assert reserved == len(codes), f"{name}: database has {reserved}, requesters {len(codes)}"


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
    db = await asyncpg.create_pool(dsn, min_size=args.clients, max_size=args.clients + 8)
    settings = await db.fetch(
        "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit')"
    )
    print("PostgreSQL", ", ".join(f"{r['name']}={r['setting']}" for r in settings))

    pool_a = await make_pool(db, args.codes)
    plan = await db.fetch("EXPLAIN " + BASELINE, pool_a, "x")
    print("baseline plan:\n  " + "\n  ".join(r[0] for r in plan))

    async def baseline(ref: str) -> list[int]:
        code = await db.fetchval(BASELINE, pool_a, ref)
        return [code] if code is not None else []

    codes_a, lat_a, el_a = await drive(args.clients, args.seconds, baseline)
    await check(db, pool_a, codes_a, "baseline")

    pool_b = await make_pool(db, args.codes)
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    events = EventHub(redis)
    await events.start()
    registry = PoolRegistry(db, events, Settings(database_url=dsn, redis_url=redis_url))
    await registry.start()
    ttl = timedelta(minutes=15)

    async def actor(ref: str) -> list[int]:
        result = await registry.reserve(pool_b, ref, 1, ttl)
        return list(result.code_ids) if isinstance(result, Reserved) else []

    codes_b, lat_b, el_b = await drive(args.clients, args.seconds, actor)
    await registry.stop()
    await events.stop()
    await redis.aclose()
    await check(db, pool_b, codes_b, "actor")

    print()
    rate_a = report("baseline", codes_a, lat_a, el_a)
    rate_b = report("actor", codes_b, lat_b, el_b)
    p99_a = statistics.quantiles(lat_a, n=100)[98]
    p99_b = statistics.quantiles(lat_b, n=100)[98]
    print(
        f"\nactor / baseline: {rate_b / rate_a:.1f}x throughput, "
        f"p99 {p99_b * 1000:.2f} ms vs {p99_a * 1000:.2f} ms"
    )
    print("checks: no code given twice, database counts match (both variants)")
    await db.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--codes", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=64)
    main(parser.parse_args())
