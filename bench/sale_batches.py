"""A pool's sale batch on fresh books against the same batch on grown books, in one run.

    python bench/sale_batches.py [--batches 200] [--batch 9] [--grow 50000]

Against an embedded PostgreSQL with full durability, one pool and one funded buyer: it
times ``--batches`` sale batches (``PaidOrder.sell_batch``, the statement a pool actor
sends, of ``--batch`` one-code orders) on an empty ledger, then sells ``--grow`` more
orders in large batches, so that the ledger, the orders and the codes' events hold what
a busy day leaves, and times the same batches again. It prints both and ``ratio`` =
grown/fresh: a batch's cost should not grow with the books (target: below 1.3). Then it
checks that every order holds its code and the ledger balances.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.allocation import make_pool
from domain import settlement
from domain.ledger import TransactionKind
from domain.orders import sale_reference
from persistence import channels, ledger, migrations, sales
from persistence.embedded import EmbeddedPostgres
from persistence.order_batches import PaidOrder

GROWTH_BATCH = 500


class Seller:
    """Sells the pool's codes in order, to one buyer, under fresh idempotency keys."""

    def __init__(self, db: asyncpg.Pool[Any], pool_id: int, buyer_id: int, terms: Any) -> None:
        self.db = db
        self.pool_id = pool_id
        self.buyer_id = buyer_id
        self.terms = terms
        self.codes: list[int] = []
        self.epoch = 0
        self.sold = 0

    async def load(self) -> None:
        rows = await self.db.fetch(
            "SELECT id FROM codes WHERE pool_id = $1 ORDER BY id", self.pool_id
        )
        self.codes = [r["id"] for r in rows]
        # No actor claims the pool here, so its epoch stays as it is.
        self.epoch = await self.db.fetchval("SELECT epoch FROM pools WHERE id = $1", self.pool_id)

    async def batch(self, size: int) -> float:
        """Sell ``size`` one-code orders in one batch; returns its seconds."""
        quote = sales.quote_from(self.terms, buyer_id=self.buyer_id, quantity=1)
        batch = []
        for code in self.codes[self.sold : self.sold + size]:
            key = f"bench-{code}"
            order = PaidOrder(
                *(self.pool_id, self.buyer_id, self.terms.product_id, key, key, {}, quote),
                *(sale_reference(self.buyer_id, key), "bench"),
            )
            batch.append((order, (code,)))
        self.sold += size
        async with self.db.acquire() as conn:
            started = time.perf_counter()
            _, results = await PaidOrder.sell_batch(conn, self.pool_id, self.epoch, batch)
            elapsed = time.perf_counter() - started
        refused = [r for r in results if isinstance(r, Exception)]
        assert not refused, f"a sale was refused: {refused[0]!r}"
        return elapsed


async def timed(seller: Seller, batches: int, size: int) -> list[float]:
    return [await seller.batch(size) for _ in range(batches)]


def report(name: str, seconds: list[float], size: int) -> float:
    q = statistics.quantiles(seconds, n=100)
    median = statistics.median(seconds)
    print(
        f"{name:6} {len(seconds)} batches of {size}: median {median * 1000:6.2f} ms"
        f"   p99 {q[98] * 1000:6.2f} ms   {size / median:7.0f} orders/s"
    )
    return median


async def run(args: argparse.Namespace, dsn: str) -> None:
    await migrations.migrate(dsn)
    db = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    total = 2 * args.batches * args.batch + args.grow
    pool_id = await make_pool(db, total)
    product_id = await db.fetchval("SELECT product_id FROM pools WHERE id = $1", pool_id)
    async with db.acquire() as conn:
        root = await channels.root(conn)
        buyer = await channels.insert_child(conn, root.id, "bench buyer", [], [])
        await ledger.post(
            conn,
            TransactionKind.TOP_UP,
            settlement.top_up(buyer.id, Decimal(100 * total), settlement.PAYMENT_CLEARING),
            reference="bench top-up",
        )
        terms = await sales.terms(conn, buyer.path, product_id)
    seller = Seller(db, pool_id, buyer.id, terms)
    await seller.load()

    fresh = await timed(seller, args.batches, args.batch)
    started = time.perf_counter()
    for _ in range(args.grow // GROWTH_BATCH):
        await seller.batch(GROWTH_BATCH)
    grown_by = time.perf_counter() - started
    entries = await db.fetchval("SELECT count(*) FROM ledger_entries")
    print(f"grew the books by {args.grow} orders in {grown_by:.1f} s ({entries} ledger entries)")
    grown = await timed(seller, args.batches, args.batch)

    print()
    before = report("fresh", fresh, args.batch)
    after = report("grown", grown, args.batch)
    ratio = after / before
    verdict = "meets" if ratio < 1.3 else "MISSES"
    print(f"\nratio = grown/fresh = {ratio:.2f}   ({verdict} the target: below 1.3)")

    counted = await db.fetchrow(
        "SELECT count(*), count(*) FILTER (WHERE EXISTS"
        " (SELECT 1 FROM order_codes oc WHERE oc.order_id = o.id)) FROM orders o"
    )
    assert counted is not None
    orders, held = counted
    assert orders == held == seller.sold, (orders, held, seller.sold)
    assert await db.fetchval("SELECT sum(amount) FROM ledger_entries") == 0
    print(f"check: {orders} orders, each holding its code; the ledger sums to 0")
    await db.close()


def main(args: argparse.Namespace) -> None:
    base = Path(tempfile.mkdtemp(prefix="quanyi-bench-"))
    postgres = EmbeddedPostgres(base)
    try:
        asyncio.run(run(args, postgres.start()))
    finally:
        postgres.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch", type=int, default=9)
    parser.add_argument("--grow", type=int, default=50_000)
    main(parser.parse_args())
