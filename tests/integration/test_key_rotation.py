"""Key rotation against real PostgreSQL while codes are read and imported."""

from __future__ import annotations

import asyncio
import base64
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from domain.codes import RowError
from persistence import codes, webhook_endpoints
from persistence.import_sources import ListSource, RawRow
from persistence.keyring import Keyring
from persistence.rotation import (
    SUPPLIER_SECRET_AAD,
    RotationInProgress,
    RotationReport,
    rotate_keys,
)
from persistence.types import Db
from tests.integration.code_fixtures import Rows, fresh_rows, make_pool, pg

# Fixtures, imported for pytest to find.
__all__ = ["pg"]

QUANYI = str(Path(sys.executable).parent / "quanyi")


@pytest.fixture
def master_key() -> bytes:
    return os.urandom(32)


async def plaintexts(
    pg: asyncpg.Pool[Any], keyring: Keyring, pool_id: int, rows: Rows
) -> dict[int, tuple[str, str | None]]:
    """What each stored code of a pool must decrypt to, by id (rows had no duplicates)."""
    ids = [
        r["id"]
        for r in await pg.fetch("SELECT id FROM codes WHERE pool_id = $1 ORDER BY id", pool_id)
    ]
    assert len(ids) == len(rows)
    return {i: (code, password) for i, (code, password, _) in zip(ids, rows, strict=True)}


async def key_ids(db: asyncpg.Connection[Any]) -> tuple[list[int], list[int], list[int]]:
    """(keys stored, keys codes use, keys suppliers use)."""
    return (
        [r["id"] for r in await db.fetch("SELECT id FROM encryption_keys ORDER BY id")],
        [r["key_id"] for r in await db.fetch("SELECT DISTINCT key_id FROM codes ORDER BY 1")],
        [r["key_id"] for r in await db.fetch("SELECT DISTINCT key_id FROM suppliers ORDER BY 1")],
    )


async def add_supplier(db: asyncpg.Connection[Any], keyring: Keyring, secret: str) -> int:
    key_id, sealed = keyring.encrypt(secret, SUPPLIER_SECRET_AAD)
    supplier_id: int = await db.fetchval(
        """INSERT INTO suppliers (name, base_url, secret_ciphertext, key_id)
           VALUES ('Upstream', 'https://supplier.example', $1, $2) RETURNING id""",
        sealed,
        key_id,
    )
    return supplier_id


async def add_webhook_endpoint(db: asyncpg.Connection[Any], keyring: Keyring) -> int:
    root = await db.fetchval("SELECT id FROM channels WHERE parent_id IS NULL")
    key_id, sealed = webhook_endpoints.seal(
        keyring, webhook_endpoints.EndpointTarget("https://hooks.example/in?key=k", "whsec_x")
    )
    endpoint_id: int = await db.fetchval(
        """INSERT INTO webhook_endpoints (channel_id, kind, display_url, events,
                                          secret_ciphertext, key_id)
           VALUES ($1, 'GENERIC', 'https://hooks.example/in', '{order.paid}', $2, $3)
           RETURNING id""",
        root,
        sealed,
        key_id,
    )
    return endpoint_id


async def test_rotation_while_reads_and_imports_continue(
    db: asyncpg.Connection[Any], pg: asyncpg.Pool[Any], master_key: bytes
) -> None:
    # Given 6,000 codes and a supplier sealed under the first key
    keyring = await Keyring.load(pg, master_key)
    pool_id = await make_pool(db)
    rows = fresh_rows(6_000)
    await codes.import_codes(pg, keyring, pool_id, ListSource(rows))
    expected = await plaintexts(pg, keyring, pool_id, rows)
    supplier_id = await add_supplier(db, keyring, "supplier-shared-secret")
    endpoint_id = await add_webhook_endpoint(db, keyring)
    assert await key_ids(db) == ([1], [1], [1])

    # And a server process reading codes with a keyring of its own, and another importing
    reader_keyring = await Keyring.load(pg, master_key)
    importer_keyring = await Keyring.load(pg, master_key)
    rotating = asyncio.Event()
    done = asyncio.Event()
    reads = {"during": 0}
    all_ids = list(expected)

    async def reader(seed: int) -> None:
        rng = random.Random(seed)
        while not done.is_set():
            batch = rng.sample(all_ids, 50)
            plain = await codes.reveal(pg, reader_keyring, batch)
            assert [(p.code, p.password) for p in plain] == [expected[i] for i in batch]
            if rotating.is_set():
                reads["during"] += 1
            await asyncio.sleep(0)

    # And an import that began under the old key and commits only after the rotation
    # has re-encrypted the rest and tried to delete that key
    late_pool = await make_pool(db, "late")
    late_rows = fresh_rows(2_000)
    importing = asyncio.Event()
    rest_rotated = asyncio.Event()

    class HeldBack(ListSource):
        async def chunk(self, size: int) -> list[RawRow | RowError] | None:
            if importing.is_set():
                await rest_rotated.wait()
                await asyncio.sleep(0.01)
            importing.set()
            return await super().chunk(size)

    async def importer() -> None:
        await codes.import_codes(
            pg, importer_keyring, late_pool, HeldBack(late_rows), chunk_rows=500
        )

    lines: list[str] = []

    def progress(line: str) -> None:
        lines.append(line)
        if line == "codes re-encrypted: 6000":
            # Let the import go on once the rotation is waiting to delete the old key.
            asyncio.get_running_loop().call_later(0.3, rest_rotated.set)

    async def rotation() -> RotationReport:
        await importing.wait()
        rotating.set()
        try:
            return await rotate_keys(pg, Keyring(master_key), batch_rows=250, progress=progress)
        finally:
            done.set()

    async def reloader() -> None:
        # Other requests of the reading process reload its keyring now and then (an
        # import does at its start), so a row read just before its re-encryption may
        # name a key the keyring no longer holds by the time it is decrypted.
        while not done.is_set():
            await reader_keyring.reload(pg)
            await asyncio.sleep(0.005)

    # When the keys are rotated meanwhile
    *_, report = await asyncio.gather(
        *(reader(s) for s in range(4)), reloader(), importer(), rotation()
    )

    # Then no read failed (the readers assert), and reads went on during the rotation
    assert reads["during"] > 20
    # And every code, the late import's too, is under the new key, and the old key is gone
    assert await key_ids(db) == ([2], [2], [2])
    expected |= await plaintexts(pg, keyring, late_pool, late_rows)
    fresh = await Keyring.load(pg, master_key)
    assert sorted(fresh.keys) == [2]
    plain = await codes.reveal(pg, fresh, list(expected))
    assert {p.id: (p.code, p.password) for p in plain} == expected
    # And the supplier's secret still opens
    sealed = await db.fetchrow(
        "SELECT secret_ciphertext, key_id FROM suppliers WHERE id = $1", supplier_id
    )
    assert sealed is not None
    secret = await fresh.decrypt(
        pg, sealed["key_id"], sealed["secret_ciphertext"], SUPPLIER_SECRET_AAD
    )
    assert secret == "supplier-shared-secret"
    # And so does the webhook endpoint's
    endpoint = await db.fetchrow(
        "SELECT secret_ciphertext, key_id FROM webhook_endpoints WHERE id = $1", endpoint_id
    )
    assert endpoint is not None
    assert endpoint["key_id"] == 2
    target = await webhook_endpoints.open_sealed(
        pg, fresh, endpoint["key_id"], endpoint["secret_ciphertext"]
    )
    assert (target.url, target.secret) == ("https://hooks.example/in?key=k", "whsec_x")
    # And it took a second pass for the late import's rows
    assert (
        report.codes,
        report.suppliers,
        report.webhook_endpoints,
        report.passes,
        report.deleted_keys,
    ) == (8_000, 1, 1, 2, [1])
    # And the progress tells counts only
    assert lines[:2] == [
        "key 2 is active; old keys: [1]",
        "pass 1: 6000 codes, 1 suppliers and 1 webhook endpoints under old keys",
    ]
    assert "pass 2: 2000 codes, 0 suppliers and 0 webhook endpoints under old keys" in lines
    assert lines[-1] == (
        "done: 8000 codes, 1 suppliers and 1 webhook endpoints re-encrypted under key 2"
        " in 2 passes; deleted keys [1]"
    )
    printed = "\n".join(lines)
    assert not any(code in printed for code, _ in expected.values())


async def test_a_code_read_just_before_its_key_went_is_read_again(
    db: asyncpg.Connection[Any], pg: asyncpg.Pool[Any], master_key: bytes
) -> None:
    # Given codes under key 1, and a reader whose keyring drops key 1 between reading
    # the rows and decrypting them (a whole rotation happens in that moment)
    keyring = await Keyring.load(pg, master_key)
    pool_id = await make_pool(db)
    rows = fresh_rows(10)
    await codes.import_codes(pg, keyring, pool_id, ListSource(rows))
    ids = list(await plaintexts(pg, keyring, pool_id, rows))

    class RotatedMidRead(Keyring):
        rotated = False

        async def decrypt(self, db: Db, key_id: int, blob: bytes, aad: bytes) -> str:
            if not self.rotated:
                self.rotated = True
                await rotate_keys(pg, Keyring(master_key))
                await self.reload(db)
                assert sorted(self.keys) == [2]
            return await super().decrypt(db, key_id, blob, aad)

    reader = RotatedMidRead(master_key)
    await reader.reload(pg)

    # When it reveals them
    plain = await codes.reveal(pg, reader, ids)

    # Then it reads the rows again under the new key and every code decrypts
    assert reader.rotated
    assert [(p.code, p.password) for p in plain] == [(c, p) for c, p, _ in rows]


async def test_one_rotation_at_a_time(
    db: asyncpg.Connection[Any], pg: asyncpg.Pool[Any], master_key: bytes
) -> None:
    # Given a rotation holding the rotation lock
    await Keyring.load(pg, master_key)
    holder = await pg.acquire()
    try:
        await holder.execute("SELECT pg_advisory_lock(x'5155414E5949524B'::bigint)")

        # When another starts, it is refused and changes nothing
        with pytest.raises(RotationInProgress):
            await rotate_keys(pg, Keyring(master_key))
        assert (await key_ids(db))[0] == [1]
    finally:
        await pg.release(holder)


def test_supplier_secrets_are_sealed_the_way_the_rotation_opens_them() -> None:
    from resolvers.catalog import SUPPLIER_SECRET_AAD as SEALED_WITH

    assert SEALED_WITH == SUPPLIER_SECRET_AAD


async def test_rotate_keys_command(
    db: asyncpg.Connection[Any], pg: asyncpg.Pool[Any], database_url: str, master_key: bytes
) -> None:
    # Given 1,500 codes under the first key
    keyring = await Keyring.load(pg, master_key)
    pool_id = await make_pool(db)
    rows = fresh_rows(1_500)
    await codes.import_codes(pg, keyring, pool_id, ListSource(rows))

    # When an operator runs `quanyi rotate-keys` against the database
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("QUANYI_")},
        "DATABASE_URL": database_url,
        "QUANYI_MASTER_KEY": base64.b64encode(master_key).decode(),
        "QUANYI_LOG_LEVEL": "WARNING",
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [QUANYI, "rotate-keys", "--batch-size", "500"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    # Then it reports counts, never plaintext, and the codes moved to the new key
    assert done.returncode == 0, done.stderr
    assert "codes re-encrypted: 1500" in done.stdout
    assert done.stdout.splitlines()[-1] == (
        "done: 1500 codes, 0 suppliers and 0 webhook endpoints re-encrypted under key 2"
        " in 1 pass; deleted keys [1]"
    )
    assert not any(code in done.stdout + done.stderr for code, _, _ in rows)
    assert await key_ids(db) == ([2], [2], [])
    plain = await codes.reveal(pg, await Keyring.load(pg, master_key), [1, 2])
    assert [p.code for p in plain] == [rows[0][0], rows[1][0]]
