"""Key rotation: a new active data key, every secret re-encrypted under it, old keys gone.

It runs beside live servers. Each batch is its own short transaction that rewrites only
ciphertexts (never a code's status), skipping rows another transaction holds. Imports
that started under an old key lock that key until they commit, so deleting it fails
until their rows are re-encrypted too: the rotation makes passes until no row names an
old key and every old key is deleted. Progress reports counts only, never plaintext.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from domain import crypto
from domain.codes import code_aad, password_aad
from persistence.database import create_pool
from persistence.keyring import Keyring, add_key
from persistence.queries import queries
from persistence.webhook_endpoints import SECRET_AAD as WEBHOOK_SECRET_AAD

Q = queries("rotation")
log = logging.getLogger(__name__)

# Must match the associated data resolvers/catalog.py seals supplier secrets with.
SUPPLIER_SECRET_AAD = b"supplier-secret"
# Secrets sealed whole under one key per row: (table's SQL blocks, associated data).
_SUPPLIERS = ("suppliers_batch", "rewrite_suppliers", SUPPLIER_SECRET_AAD)
_WEBHOOKS = ("webhook_endpoints_batch", "rewrite_webhook_endpoints", WEBHOOK_SECRET_AAD)
# pg_advisory_lock key: one rotation at a time across every process.
_LOCK_KEY = 0x5155_414E_5949_524B  # "QUANYIRK"
BATCH_ROWS = 1000
MAX_PASSES = 50

Progress = Callable[[str], None]


class RotationInProgress(Exception):
    """Another ``rotate-keys`` holds the rotation lock."""


@dataclass
class RotationReport:
    new_key_id: int
    codes: int = 0
    suppliers: int = 0
    webhook_endpoints: int = 0
    passes: int = 0
    deleted_keys: list[int] = field(default_factory=list)


def _quiet(message: str) -> None:
    log.info("%s", message)


async def rotate_database(
    dsn: str, master_key: bytes, *, batch_rows: int = BATCH_ROWS, progress: Progress = _quiet
) -> RotationReport:
    """``quanyi rotate-keys``: a rotation over its own small connection pool."""
    db = await create_pool(dsn, 3)
    try:
        keyring = await Keyring.load(db, master_key)
        return await rotate_keys(db, keyring, batch_rows=batch_rows, progress=progress)
    finally:
        await db.close()


async def rotate_keys(
    db: asyncpg.Pool[Any],
    keyring: Keyring,
    *,
    batch_rows: int = BATCH_ROWS,
    progress: Progress = _quiet,
    pause: float = 0.05,
) -> RotationReport:
    async with db.acquire() as lock:
        if not await lock.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK_KEY):
            raise RotationInProgress("another key rotation is running")
        try:
            return await _rotate(db, keyring, batch_rows, progress, pause)
        finally:
            await lock.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)


async def _rotate(
    db: asyncpg.Pool[Any], keyring: Keyring, batch_rows: int, progress: Progress, pause: float
) -> RotationReport:
    async with db.acquire() as conn, conn.transaction():
        await keyring.reload(conn)
        new_key_id = await add_key(conn, keyring, activate=True)
    await keyring.reload(db)
    report = RotationReport(new_key_id=new_key_id)
    progress(f"key {new_key_id} is active; old keys: {_old_keys(keyring, new_key_id)}")

    while True:
        await keyring.reload(db)
        old = _old_keys(keyring, new_key_id)
        if not old:
            break
        report.passes += 1
        if report.passes > MAX_PASSES:
            raise RuntimeError(f"old keys still in use after {MAX_PASSES} passes")
        codes_left = await db.fetchval(Q["count_codes_with_keys"], old)
        suppliers_left = await db.fetchval(Q["count_suppliers_with_keys"], old)
        webhooks_left = await db.fetchval(Q["count_webhook_endpoints_with_keys"], old)
        progress(
            f"pass {report.passes}: {codes_left} codes, {suppliers_left} suppliers and"
            f" {webhooks_left} webhook endpoints under old keys"
        )
        report.codes += await _rewrite_codes(db, keyring, new_key_id, old, batch_rows, progress)
        report.suppliers += await _rewrite_secrets(
            db, keyring, new_key_id, old, batch_rows, _SUPPLIERS
        )
        report.webhook_endpoints += await _rewrite_secrets(
            db, keyring, new_key_id, old, batch_rows, _WEBHOOKS
        )
        try:
            deleted = [r["id"] for r in await db.fetch(Q["delete_unused_keys"], old)]
        except asyncpg.ForeignKeyViolationError:
            # A transaction that started under an old key committed rows just now.
            deleted = []
        report.deleted_keys += deleted
        if deleted:
            progress(f"deleted keys {deleted}")
        if set(deleted) != set(old):
            await asyncio.sleep(pause)
    await keyring.reload(db)
    passes = f"{report.passes} pass" + ("" if report.passes == 1 else "es")
    progress(
        f"done: {report.codes} codes, {report.suppliers} suppliers and"
        f" {report.webhook_endpoints} webhook endpoints re-encrypted under key"
        f" {new_key_id} in {passes}; deleted keys {sorted(report.deleted_keys)}"
    )
    return report


def _old_keys(keyring: Keyring, new_key_id: int) -> list[int]:
    return sorted(k for k in keyring.keys if k != new_key_id)


async def _rewrite_codes(
    db: asyncpg.Pool[Any],
    keyring: Keyring,
    new_key_id: int,
    old: list[int],
    batch_rows: int,
    progress: Progress,
) -> int:
    done, after = 0, 0
    while True:
        async with db.acquire() as conn, conn.transaction():
            rows = await conn.fetch(Q["codes_batch"], old, after, batch_rows)
            if not rows:
                return done
            sealed = await asyncio.to_thread(_reseal_codes, keyring, new_key_id, rows)
            await conn.execute(Q["rewrite_codes"], new_key_id, *sealed)
        after = rows[-1]["id"]
        done += len(rows)
        progress(f"codes re-encrypted: {done}")


def _reseal_codes(
    keyring: Keyring, new_key_id: int, rows: list[asyncpg.Record]
) -> tuple[list[int], list[int], list[bytes], list[bytes | None]]:
    new_key = keyring.keys[new_key_id]
    ids, old_keys, codes, passwords = [], [], [], []
    for row in rows:
        old_key = keyring.keys[row["key_id"]]
        fingerprint = row["fingerprint"]
        code = crypto.open_sealed(old_key, row["code_ciphertext"], code_aad(fingerprint))
        codes.append(crypto.seal(new_key, code, code_aad(fingerprint)))
        password = row["password_ciphertext"]
        if password is not None:
            plain = crypto.open_sealed(old_key, password, password_aad(fingerprint))
            password = crypto.seal(new_key, plain, password_aad(fingerprint))
        passwords.append(password)
        ids.append(row["id"])
        old_keys.append(row["key_id"])
    return ids, old_keys, codes, passwords


async def _rewrite_secrets(
    db: asyncpg.Pool[Any],
    keyring: Keyring,
    new_key_id: int,
    old: list[int],
    batch_rows: int,
    table: tuple[str, str, bytes],
) -> int:
    batch, rewrite, aad = table
    done, after = 0, 0
    new_key = keyring.keys[new_key_id]
    while True:
        async with db.acquire() as conn, conn.transaction():
            rows = await conn.fetch(Q[batch], old, after, batch_rows)
            if not rows:
                return done
            secrets = [
                crypto.seal(
                    new_key,
                    crypto.open_sealed(keyring.keys[r["key_id"]], r["secret_ciphertext"], aad),
                    aad,
                )
                for r in rows
            ]
            await conn.execute(
                Q[rewrite],
                new_key_id,
                [r["id"] for r in rows],
                [r["key_id"] for r in rows],
                secrets,
            )
        after = rows[-1]["id"]
        done += len(rows)
