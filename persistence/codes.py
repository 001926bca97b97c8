"""Codes at rest: imports (list and CSV), masked listings and the decryption API.

An import runs in one transaction: it claims its idempotency key, locks the active data
key against deletion, then takes the rows in chunks. Each chunk is checked, fingerprinted
and encrypted off the event loop and written with one ``INSERT ... ON CONFLICT DO
NOTHING RETURNING``, whose missing rows are the duplicates. Memory stays bounded by the
chunk size (plus the list of refused rows), whatever the size of the upload.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from domain import crypto
from domain.codes import (
    DUPLICATE_IN_UPLOAD,
    DUPLICATE_STORED,
    CodeRow,
    RowError,
    RowFault,
    check_row,
    code_aad,
    password_aad,
    tail,
)
from persistence import pools
from persistence.import_sources import MalformedInput, RawRow, RowSource
from persistence.keyring import Keyring
from persistence.queries import queries
from persistence.types import Db

Q = queries("codes")
log = logging.getLogger(__name__)

CHUNK_ROWS = 5000
# An import this large gets the planner's statistics refreshed at once. Until autovacuum
# reaches new rows (a minute or more), the planner takes a pool for a handful of rows and
# plans a sale of thousands of its codes as a nested loop: quadratic, seconds per batch.
ANALYZE_AFTER_ROWS = 1000
_DEADLOCK_ATTEMPTS = 3
_IMPORT_LOCK = 0x5155_414E_5949_4D50  # pg_advisory_xact_lock key: "QUANYIMP"


# --- the import -------------------------------------------------------------------------


@dataclass
class ImportResult:
    batch_id: int
    imported: int = 0
    duplicates: list[RowError] = field(default_factory=list)
    rejected: list[RowError] = field(default_factory=list)
    # True when an earlier import with the same idempotency key gave this result.
    replayed: bool = False

    def to_json(self) -> str:
        return json.dumps(
            {
                "imported": self.imported,
                "duplicates": [[e.row, e.fault.value, e.message] for e in self.duplicates],
                "rejected": [[e.row, e.fault.value, e.message] for e in self.rejected],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, batch_id: int, text: str) -> ImportResult:
        data = json.loads(text)
        return cls(
            batch_id=batch_id,
            imported=data["imported"],
            duplicates=[RowError(r, RowFault(f), m) for r, f, m in data["duplicates"]],
            rejected=[RowError(r, RowFault(f), m) for r, f, m in data["rejected"]],
            replayed=True,
        )


class ImportRefused(Exception):
    """The import as a whole was refused; nothing was imported."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


@dataclass
class _Chunk:
    """One chunk, checked, fingerprinted and encrypted, in arrays ready for the INSERT."""

    rejected: list[RowError] = field(default_factory=list)
    duplicates: list[RowError] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    fingerprints: list[bytes] = field(default_factory=list)
    codes: list[bytes] = field(default_factory=list)
    passwords: list[bytes | None] = field(default_factory=list)
    tails: list[str] = field(default_factory=list)
    expiries: list[datetime | None] = field(default_factory=list)


def _prepare(
    raw: list[RawRow | RowError], fingerprint_key: bytes, data_key: bytes, now: datetime
) -> _Chunk:
    chunk = _Chunk()
    seen: set[bytes] = set()
    for item in raw:
        checked = (
            item
            if isinstance(item, RowError)
            else check_row(item.row, item.code, item.password, item.expires_at, now)
        )
        if isinstance(checked, RowError):
            chunk.rejected.append(checked)
            continue
        fingerprint = crypto.fingerprint(fingerprint_key, checked.code)
        if fingerprint in seen:
            chunk.duplicates.append(
                RowError(checked.row, RowFault.DUPLICATE_CODE, DUPLICATE_IN_UPLOAD)
            )
            continue
        seen.add(fingerprint)
        _append(chunk, checked, fingerprint, data_key)
    return chunk


def _append(chunk: _Chunk, row: CodeRow, fingerprint: bytes, data_key: bytes) -> None:
    chunk.rows.append(row.row)
    chunk.fingerprints.append(fingerprint)
    chunk.codes.append(crypto.seal(data_key, row.code.encode(), code_aad(fingerprint)))
    chunk.passwords.append(
        crypto.seal(data_key, row.password.encode(), password_aad(fingerprint))
        if row.password is not None
        else None
    )
    chunk.tails.append(tail(row.code))
    chunk.expiries.append(row.expires_at)


def input_hash(keyring: Keyring, kind: str, pool_id: int, content_hash: bytes) -> str:
    """What an idempotency key's input is compared by: keyed, so it reveals nothing."""
    message = f"{kind}:{pool_id}:".encode() + content_hash
    return hmac.new(
        crypto.derive(keyring.master_key, "import-input"), message, "sha256"
    ).hexdigest()


@contextlib.asynccontextmanager
async def _connection(db: Db) -> AsyncIterator[Any]:
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            yield conn
    else:
        yield db


async def import_codes(
    db: Db,
    keyring: Keyring,
    pool_id: int,
    source: RowSource,
    idempotency_key: str | None = None,
    *,
    chunk_rows: int = CHUNK_ROWS,
    now: datetime | None = None,
) -> ImportResult:
    """Import the rows of ``source`` into an existing pool, all or nothing.

    Raises ImportRefused for an idempotency key used with other input
    (IDEMPOTENCY_CONFLICT) and for an unreadable upload (INVALID_INPUT).
    """
    now = now or datetime.now(UTC)
    for attempt in range(1, _DEADLOCK_ATTEMPTS + 1):
        try:
            async with _connection(db) as conn, conn.transaction():
                # Imports run side by side under a shared lock. Two uploads with the same
                # codes in opposite orders can wait on each other's rows; PostgreSQL then
                # aborts one, which starts again alone once the imports running now end.
                lock = "pg_advisory_xact_lock" if attempt > 1 else "pg_advisory_xact_lock_shared"
                await conn.execute(f"SELECT {lock}($1)", _IMPORT_LOCK)
                result = await _import(
                    conn, keyring, pool_id, source, idempotency_key, chunk_rows, now
                )
        except asyncpg.DeadlockDetectedError:
            if attempt == _DEADLOCK_ATTEMPTS:
                raise
            log.warning("import into pool %d deadlocked with another; retrying", pool_id)
            source.rewind()
            continue
        if not result.replayed:
            log.info(
                "import into pool %d (batch %d): %d imported, %d duplicates, %d rejected",
                pool_id,
                result.batch_id,
                result.imported,
                len(result.duplicates),
                len(result.rejected),
            )
            if result.imported >= ANALYZE_AFTER_ROWS:
                await _analyze_codes(db)
        return result
    raise AssertionError("unreachable")


async def _analyze_codes(db: Db) -> None:
    """Fresh statistics on codes; the import stands whether or not this succeeds."""
    try:
        async with _connection(db) as conn:
            await conn.execute(Q["analyze_codes"])
    except asyncpg.PostgresError as error:
        log.warning("statistics on codes not refreshed after an import: %r", error)


async def _import(
    conn: Any,
    keyring: Keyring,
    pool_id: int,
    source: RowSource,
    idempotency_key: str | None,
    chunk_rows: int,
    now: datetime,
) -> ImportResult:
    # Another process may have rotated the keys since this one last looked.
    await keyring.reload(conn)
    batch_id = await conn.fetchval(Q["claim_batch"], pool_id, "IMPORT", idempotency_key)
    if batch_id is None:
        return await _replay(conn, keyring, pool_id, source, idempotency_key)
    key_id = await conn.fetchval(Q["lock_active_key"])
    if key_id not in keyring.keys:
        await keyring.reload(conn)
    data_key, fingerprint_key = keyring.keys[key_id], keyring.fingerprint_key

    result = ImportResult(batch_id=batch_id)
    rows_seen = 0
    while True:
        try:
            raw = await source.chunk(chunk_rows)
        except MalformedInput as error:
            raise ImportRefused("INVALID_INPUT", str(error), source.field) from None
        if raw is None:
            break
        rows_seen += len(raw)
        chunk = await asyncio.to_thread(_prepare, raw, fingerprint_key, data_key, now)
        result.rejected += chunk.rejected
        result.duplicates += chunk.duplicates
        await _insert(conn, pool_id, batch_id, key_id, chunk, result)

    if rows_seen == 0:
        raise ImportRefused("INVALID_INPUT", "There are no codes to import.", source.field)
    result.duplicates.sort(key=lambda e: e.row)
    result.rejected.sort(key=lambda e: e.row)
    if result.imported:
        await pools.add_available(conn, pool_id, result.imported)
    digest = input_hash(keyring, source.kind, pool_id, await source.content_hash())
    await conn.execute(Q["finish_batch"], batch_id, digest, result.to_json())
    return result


async def _insert(
    conn: Any, pool_id: int, batch_id: int, key_id: int, chunk: _Chunk, result: ImportResult
) -> None:
    if not chunk.rows:
        return
    inserted = await conn.fetch(
        Q["insert_codes"],
        pool_id,
        batch_id,
        key_id,
        chunk.rows,
        chunk.fingerprints,
        chunk.codes,
        chunk.passwords,
        chunk.tails,
        chunk.expiries,
    )
    result.imported += len(inserted)
    if len(inserted) == len(chunk.rows):
        return
    stored = {r["fingerprint"] for r in inserted}
    skipped = [
        (row, fp)
        for row, fp in zip(chunk.rows, chunk.fingerprints, strict=True)
        if fp not in stored
    ]
    owners = {
        r["fingerprint"]: r["batch_id"]
        for r in await conn.fetch(Q["batches_of_fingerprints"], [fp for _, fp in skipped])
    }
    for row, fingerprint in skipped:
        message = DUPLICATE_IN_UPLOAD if owners.get(fingerprint) == batch_id else DUPLICATE_STORED
        result.duplicates.append(RowError(row, RowFault.DUPLICATE_CODE, message))


async def _replay(
    conn: Any, keyring: Keyring, pool_id: int, source: RowSource, idempotency_key: str | None
) -> ImportResult:
    """The stored result of the import that holds the key, if the input is the same."""
    batch = await conn.fetchrow(Q["batch_by_key"], pool_id, idempotency_key)
    assert batch is not None, "the key's claim was committed before ours gave way"
    digest = input_hash(keyring, source.kind, pool_id, await source.content_hash())
    if batch["input_hash"] is None or not hmac.compare_digest(batch["input_hash"], digest):
        raise ImportRefused(
            "IDEMPOTENCY_CONFLICT",
            "This idempotency key was used for another import into this pool.",
            "idempotencyKey",
        )
    return ImportResult.from_json(batch["id"], batch["result"])


# --- listings and decryption ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CodeRecord:
    """A code as listings show it: no ciphertext, only the stored tail."""

    id: int
    pool_id: int
    batch_id: int | None
    last4: str
    status: str
    expires_at: datetime | None
    created_at: datetime


async def page(
    db: Db, pool_id: int, status: str | None, after_id: int, limit: int
) -> list[CodeRecord]:
    rows = await db.fetch(Q["page"], pool_id, after_id, status, limit)
    return [
        CodeRecord(
            id=r["id"],
            pool_id=r["pool_id"],
            batch_id=r["batch_id"],
            last4=r["last4"],
            status=r["status"],
            expires_at=r["expires_at"],
            created_at=r["created_at"],
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class PlainCode:
    """A decrypted code. Never log one; callers that hand it out must log the reveal."""

    id: int
    code: str
    password: str | None
    expires_at: datetime | None

    def __repr__(self) -> str:
        return f"PlainCode(id={self.id}, code=<secret>, password=<secret>)"


_REVEAL_ATTEMPTS = 5


async def reveal(db: Db, keyring: Keyring, code_ids: Sequence[int]) -> list[PlainCode]:
    """The plaintext of the given codes, in the order asked; unknown ids are left out.

    Safe while ``rotate-keys`` runs: a row read just before it was re-encrypted may name
    a key that is gone by the time this process reloads its keyring; such rows are read
    again, and then carry the new key.
    """
    wanted = list(dict.fromkeys(code_ids))
    plain: dict[int, PlainCode] = {}
    pending = wanted
    for _ in range(_REVEAL_ATTEMPTS):
        again: list[int] = []
        for row in await db.fetch(Q["secrets"], pending):
            try:
                plain[row["id"]] = await _open(db, keyring, row)
            except KeyError:
                again.append(row["id"])
        if not again:
            break
        pending = again
    else:
        raise RuntimeError("codes kept naming unknown keys; is the master key the same?")
    return [plain[i] for i in wanted if i in plain]


async def reveal_order(db: Db, keyring: Keyring, order_id: int) -> list[PlainCode]:
    """The plaintext of an order's codes, in id order, read with one query."""
    return await open_sealed(db, keyring, await db.fetch(Q["order_secrets"], order_id))


async def sealed(db: Db, code_ids: Sequence[int]) -> list[asyncpg.Record]:
    """The codes' secrets as stored (see ``open_sealed``), in the order asked."""
    rows = {r["id"]: r for r in await db.fetch(Q["secrets"], list(code_ids))}
    return [rows[i] for i in code_ids if i in rows]


async def open_sealed(db: Db, keyring: Keyring, rows: Sequence[asyncpg.Record]) -> list[PlainCode]:
    """The plaintext of codes read as stored (id, fingerprint, ciphertexts, key id)."""
    try:
        return [await _open(db, keyring, row) for row in rows]
    except KeyError:
        # A rotation moved a code to a key this process has not loaded: read them again.
        return await reveal(db, keyring, [row["id"] for row in rows])


async def _open(db: Db, keyring: Keyring, row: asyncpg.Record) -> PlainCode:
    fingerprint: bytes = row["fingerprint"]
    key_id: int = row["key_id"]
    code = await keyring.decrypt(db, key_id, row["code_ciphertext"], code_aad(fingerprint))
    password = None
    if row["password_ciphertext"] is not None:
        password = await keyring.decrypt(
            db, key_id, row["password_ciphertext"], password_aad(fingerprint)
        )
    return PlainCode(row["id"], code, password, row["expires_at"])
