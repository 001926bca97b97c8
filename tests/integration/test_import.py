"""Code imports against real PostgreSQL: duplicates, encryption at rest, idempotency."""

from __future__ import annotations

import asyncio
import io
import random
import secrets
import tempfile
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from domain.codes import DUPLICATE_IN_UPLOAD, DUPLICATE_STORED, RowFault
from persistence import codes
from persistence.codes import ImportRefused, ImportResult
from persistence.import_sources import CsvSource, ListSource
from persistence.keyring import Keyring
from tests.integration.code_fixtures import (
    CODE_MARK,
    LATER,
    PASSWORD_MARK,
    Rows,
    fresh_rows,
    keyring,
    make_pool,
    new_code,
    pg,
)

# Fixtures, imported for pytest to find.
__all__ = ["keyring", "pg"]


async def stored(db: asyncpg.Connection[Any], pool_id: int) -> tuple[int, int, int]:
    """(codes in the pool, its available counter, batches of the pool)."""
    row = await db.fetchrow(
        """SELECT (SELECT count(*) FROM codes WHERE pool_id = $1) AS codes,
                  (SELECT available FROM pools WHERE id = $1) AS available,
                  (SELECT count(*) FROM code_batches WHERE pool_id = $1) AS batches""",
        pool_id,
    )
    assert row is not None
    return row["codes"], row["available"], row["batches"]


def relation_bytes(data_directory: str, relative: str) -> bytes:
    """A relation's files on disk: the main fork and any 1 GB segments after it."""
    base = Path(data_directory) / relative
    parts = [base, *sorted(base.parent.glob(base.name + ".[0-9]*"))]
    return b"".join(p.read_bytes() for p in parts if p.exists())


async def test_ten_thousand_codes_with_a_hundred_duplicates(
    db: asyncpg.Connection[Any], pg: asyncpg.Pool[Any], keyring: Keyring
) -> None:
    # Given 40 codes already stored in another pool
    other_pool = await make_pool(db, "earlier")
    earlier = fresh_rows(40)
    first = await codes.import_codes(pg, keyring, other_pool, ListSource(earlier))
    assert first.imported == 40

    # And an upload of 10,000 rows: 9,900 new codes, 40 of the stored ones and 60 repeats
    # of codes earlier in the upload (in the same chunk of 5,000 rows and across chunks)
    rng = random.Random(3)
    positions = sorted(rng.sample(range(200, 10_000), 100))
    stored_at = set(rng.sample(positions, 40))
    rows: Rows = fresh_rows(10_000)
    expected: list[tuple[int, RowFault, str]] = []
    earlier_codes = iter(earlier)
    for index in positions:
        if index in stored_at:
            rows[index] = next(earlier_codes)
            expected.append((index + 1, RowFault.DUPLICATE_CODE, DUPLICATE_STORED))
        else:
            original = rng.choice([i for i in range(index) if i not in positions])
            rows[index] = rows[original]
            expected.append((index + 1, RowFault.DUPLICATE_CODE, DUPLICATE_IN_UPLOAD))
    pool_id = await make_pool(db)

    # When it is imported
    result = await codes.import_codes(pg, keyring, pool_id, ListSource(rows))

    # Then 9,900 are imported and the 100 duplicates are reported by row number
    assert result.imported == 9_900
    assert [(e.row, e.fault, e.message) for e in result.duplicates] == expected
    assert result.rejected == []
    assert await stored(db, pool_id) == (9_900, 9_900, 1)
    assert await stored(db, other_pool) == (40, 40, 1)

    # And every imported code decrypts to its row, in upload order
    ids = [
        r["id"]
        for r in await db.fetch("SELECT id FROM codes WHERE pool_id = $1 ORDER BY id", pool_id)
    ]
    plain = await codes.reveal(pg, keyring, ids)
    duplicate_rows = {row - 1 for row, _, _ in expected}
    originals = [r for i, r in enumerate(rows) if i not in duplicate_rows]
    assert [(p.code, p.password) for p in plain] == [(c, p) for c, p, _ in originals]
    assert all(p.expires_at == LATER for p in plain)

    # And the table's bytes on disk hold none of the plaintexts
    await db.execute("CHECKPOINT")
    data_directory = await db.fetchval("SHOW data_directory")
    relations = await db.fetch(
        """SELECT c.relname, pg_relation_filepath(c.oid) AS main,
                  pg_relation_filepath(NULLIF(c.reltoastrelid, 0)) AS toast
           FROM pg_class AS c WHERE c.relname IN ('codes', 'code_batches')"""
    )
    files = {r["relname"]: relation_bytes(data_directory, r["main"]) for r in relations}
    toasts = [relation_bytes(data_directory, r["toast"]) for r in relations if r["toast"]]
    everything = b"".join([*files.values(), *toasts])
    fingerprint = keyring.fingerprint(originals[0][0])
    assert fingerprint in files["codes"], "the scan reads the live table's file"
    assert CODE_MARK.encode() not in everything
    assert PASSWORD_MARK.encode() not in everything
    for code, password, _ in rng.sample(originals, 200):
        assert code.encode() not in everything
        assert password is not None
        assert password.encode() not in everything


async def test_a_retry_with_the_same_key_imports_once(
    db: asyncpg.Connection[Any], pg: asyncpg.Pool[Any], keyring: Keyring
) -> None:
    # Given an import of three codes, one expired, with an idempotency key
    pool_id = await make_pool(db)
    past = datetime.now(UTC) - timedelta(days=1)
    rows: Rows = [*fresh_rows(2), (new_code(), None, past)]
    first = await codes.import_codes(pg, keyring, pool_id, ListSource(rows), "upload-1")
    assert (first.imported, first.replayed) == (2, False)
    assert [(e.row, e.fault) for e in first.rejected] == [(3, RowFault.CODE_EXPIRED)]

    # When the same input is sent again with the same key
    again = await codes.import_codes(pg, keyring, pool_id, ListSource(list(rows)), "upload-1")

    # Then the first result comes back and nothing more is imported
    assert again == ImportResult(
        batch_id=first.batch_id,
        imported=2,
        duplicates=[],
        rejected=first.rejected,
        replayed=True,
    )
    assert await stored(db, pool_id) == (2, 2, 1)

    # And the same key with other input is refused, changing nothing
    with pytest.raises(ImportRefused) as refused:
        await codes.import_codes(pg, keyring, pool_id, ListSource(fresh_rows(2)), "upload-1")
    assert (refused.value.code, refused.value.message, refused.value.field) == (
        "IDEMPOTENCY_CONFLICT",
        "This idempotency key was used for another import into this pool.",
        "idempotencyKey",
    )
    assert await stored(db, pool_id) == (2, 2, 1)

    # And so is the same key with the same codes as a CSV file
    csv = "code,password,expiresAt\n" + "".join(
        f"{c},{p or ''},{e.isoformat() if e else ''}\n" for c, p, e in rows
    )
    with pytest.raises(ImportRefused) as as_csv:
        await codes.import_codes(
            pg, keyring, pool_id, CsvSource(io.BytesIO(csv.encode())), "upload-1"
        )
    assert as_csv.value.code == "IDEMPOTENCY_CONFLICT"
    assert await stored(db, pool_id) == (2, 2, 1)


async def test_a_large_import_gives_the_planner_statistics_of_the_codes(
    db: asyncpg.Connection[Any], pg: asyncpg.Pool[Any], keyring: Keyring
) -> None:
    # Given a pool in a database whose codes were never analysed
    pool_id = await make_pool(db)
    assert await planner_rows(db) == (0, False)

    # When an import brings in enough codes to change the plans of sales from the pool
    result = await codes.import_codes(
        pg, keyring, pool_id, ListSource(fresh_rows(codes.ANALYZE_AFTER_ROWS))
    )

    # Then the planner knows them at once, without waiting for autovacuum
    assert result.imported == codes.ANALYZE_AFTER_ROWS
    assert await planner_rows(db) == (codes.ANALYZE_AFTER_ROWS, True)


async def planner_rows(db: asyncpg.Connection[Any]) -> tuple[int, bool]:
    """(the planner's row count of codes, whether it has statistics of their status)."""
    row = await db.fetchrow(
        """SELECT greatest(reltuples, 0)::bigint AS rows,
                  EXISTS (SELECT 1 FROM pg_stats
                          WHERE tablename = 'codes' AND attname = 'status') AS known
           FROM pg_class WHERE oid = 'codes'::regclass"""
    )
    assert row is not None
    return row["rows"], row["known"]


async def test_concurrent_retries_with_one_key_import_once(
    db: asyncpg.Connection[Any], pg: asyncpg.Pool[Any], keyring: Keyring
) -> None:
    # Given one upload of 2,000 codes
    pool_id = await make_pool(db)
    rows = fresh_rows(2_000)

    # When eight clients send it at once with the same key
    results = await asyncio.gather(
        *(
            codes.import_codes(
                pg, keyring, pool_id, ListSource(rows), "retry-storm", chunk_rows=500
            )
            for _ in range(8)
        )
    )

    # Then it is imported once and every client gets that one result
    assert [(r.batch_id, r.imported, r.duplicates) for r in results] == [
        (results[0].batch_id, 2_000, [])
    ] * 8
    assert sorted(r.replayed for r in results) == [False] + [True] * 7
    assert await stored(db, pool_id) == (2_000, 2_000, 1)


async def test_concurrent_imports_of_the_same_codes_store_each_once(
    db: asyncpg.Connection[Any], pg: asyncpg.Pool[Any], keyring: Keyring
) -> None:
    # Given two pools and 1,000 codes
    pools = [await make_pool(db, "a"), await make_pool(db, "b")]
    rows = fresh_rows(1_000)

    # When both pools import them at once, without keys
    a, b = await asyncio.gather(
        *(codes.import_codes(pg, keyring, p, ListSource(rows), chunk_rows=100) for p in pools)
    )

    # Then each code is stored once: what one imported the other reports as a duplicate
    assert a.imported + b.imported == 1_000
    assert len(a.duplicates) + len(b.duplicates) == 1_000
    assert {e.message for e in a.duplicates + b.duplicates} <= {DUPLICATE_STORED}
    counts = [await stored(db, p) for p in pools]
    assert sum(available for _, available, _ in counts) == 1_000


async def test_uploads_of_the_same_codes_in_opposite_orders_both_finish(
    db: asyncpg.Connection[Any], pg: asyncpg.Pool[Any], keyring: Keyring
) -> None:
    # Given two pools and 300 codes, which one uploads in order and the other reversed,
    # a row at a time, so each holds rows the other waits for (PostgreSQL sees a deadlock)
    pools = [await make_pool(db, "a"), await make_pool(db, "b")]
    rows = fresh_rows(300)

    # When both run at once
    a, b = await asyncio.gather(
        codes.import_codes(pg, keyring, pools[0], ListSource(rows), chunk_rows=1),
        codes.import_codes(pg, keyring, pools[1], ListSource(rows[::-1]), chunk_rows=1),
    )

    # Then both finish, and each code is stored once
    assert a.imported + b.imported == 300
    assert len(a.duplicates) + len(b.duplicates) == 300
    counts = [await stored(db, p) for p in pools]
    assert sum(n for n, _, _ in counts) == 300


async def traced_csv_import(
    pg: asyncpg.Pool[Any], keyring: Keyring, pool_id: int, rows: int
) -> tuple[int, int, int]:
    """(rows imported, file size, peak of Python's traced allocations) for a CSV upload
    of ``rows`` long codes, spooled to disk as uploads are."""
    with tempfile.TemporaryFile() as file:
        file.write(b"code,password,expiresAt\n")
        for _ in range(rows):
            file.write(f"{new_code()}-{secrets.token_hex(24)},{secrets.token_hex(8)},\n".encode())
        size = file.tell()
        tracemalloc.start()
        try:
            result = await codes.import_codes(pg, keyring, pool_id, CsvSource(file))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    return result.imported, size, peak


async def test_a_csv_streams_in_memory_that_does_not_grow_with_the_file(
    db: asyncpg.Connection[Any], pg: asyncpg.Pool[Any], keyring: Keyring
) -> None:
    # Given a small and a six times larger CSV file
    # When each is imported
    small = await traced_csv_import(pg, keyring, await make_pool(db, "small"), 10_000)
    large = await traced_csv_import(pg, keyring, await make_pool(db, "large"), 60_000)

    # Then all rows are imported, and the larger file needed no more memory than the
    # smaller one: what is held is one chunk of rows, whatever the size of the file
    assert (small[0], large[0]) == (10_000, 60_000)
    assert large[1] > 5 * small[1]
    assert large[2] < 1.25 * small[2], f"peaks {small[2]:,} and {large[2]:,} bytes"
