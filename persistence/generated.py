"""Issuing platform-generated codes for an order, stored like imported ones.

``issue`` runs on the order's connection, inside its transaction: the codes, their batch,
their GENERATED events and the pool's counter commit or roll back with the order. The
codes land in the product's pool named ``generated`` (made on first use), already sold.

Each code is sealed exactly as an import seals it: AES-GCM under the active data key,
with associated data bound to the code's HMAC fingerprint, and the visible tail kept
beside it. The fingerprint's unique index makes a code unique platform-wide; a collision
(astronomically rare with 95 random bits) is simply replaced by a fresh code.

The pool row's counter is raised last and holds the pool row's lock until the order
commits: call ``issue`` late in the order's transaction.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from domain import codegen, crypto
from domain.codes import code_aad, password_aad, tail
from persistence.keyring import Keyring
from persistence.queries import queries

Q = queries("generated")

POOL_NAME = "generated"
# pg_advisory_xact_lock(int, int) class key for "create the generated pool": "QYGP".
_POOL_LOCK = 0x5159_4750
_ATTEMPTS = 8
# Above this many codes the encryption leaves the event loop.
_INLINE = 64


class UnknownProduct(Exception):
    """The product does not exist."""


class CollisionsPersist(Exception):
    """Fresh random codes kept colliding: the random source or the key is broken."""


@dataclass(frozen=True, slots=True)
class _Sealed:
    fingerprint: bytes
    code: bytes
    password: bytes | None
    last4: str


def _seal(
    count: int, with_password: bool, fingerprint_key: bytes, data_key: bytes
) -> list[_Sealed]:
    sealed: list[_Sealed] = []
    seen: set[bytes] = set()
    while len(sealed) < count:
        made = codegen.generate(with_password)
        fingerprint = crypto.fingerprint(fingerprint_key, made.code)
        if fingerprint in seen:  # one INSERT must not carry a fingerprint twice
            continue
        seen.add(fingerprint)
        sealed.append(
            _Sealed(
                fingerprint,
                crypto.seal(data_key, made.code.encode(), code_aad(fingerprint)),
                crypto.seal(data_key, made.password.encode(), password_aad(fingerprint))
                if made.password is not None
                else None,
                tail(made.code),
            )
        )
    return sealed


async def generated_pool(conn: Any, product_id: int) -> int:
    """The id of the product's ``generated`` pool, created once however many ask at once."""
    return await named_pool(conn, product_id, POOL_NAME)


async def named_pool(conn: Any, product_id: int, name: str) -> int:
    """The id of the product's pool called ``name``, created once however many ask at once:
    the pools of codes made (or bought) for their orders, which nobody imports into."""
    pool_id: int | None = await conn.fetchval(Q["pool_of_product"], product_id, name)
    if pool_id is not None:
        return pool_id
    await conn.execute(Q["lock_pool_creation"], _POOL_LOCK, product_id % 2**31)
    # Read committed: this statement sees a pool committed while we waited for the lock.
    pool_id = await conn.fetchval(Q["pool_of_product"], product_id, name)
    if pool_id is not None:
        return pool_id
    pool_id = await conn.fetchval(Q["create_pool"], product_id, name)
    if pool_id is None:
        raise UnknownProduct(product_id)
    return pool_id


async def issue(
    conn: Any,
    keyring: Keyring,
    product_id: int,
    quantity: int,
    *,
    validity_days: int | None,
    max_uses: int,
    with_password: bool,
    actor: str = "platform:generated",
    now: datetime | None = None,
) -> list[int]:
    """Make ``quantity`` new sold codes for ``product_id``; their ids in issue order.

    ``conn`` must be in a transaction. ``max_uses`` and ``validity_days`` are recorded
    on the codes' batch (``code_batches.result``), the expiry on each code.
    """
    if quantity < 1:
        raise ValueError("issue at least one code")
    if max_uses < 1:
        raise ValueError("a code must allow at least one use")
    if validity_days is not None and validity_days < 1:
        raise ValueError("validity_days must be at least 1")
    now = now or datetime.now(UTC)
    expires_at = now + timedelta(days=validity_days) if validity_days is not None else None

    pool_id = await generated_pool(conn, product_id)
    key_id: int = await conn.fetchval(Q["lock_active_key"])
    if key_id not in keyring.keys:
        await keyring.reload(conn)
    data_key, fingerprint_key = keyring.keys[key_id], keyring.fingerprint_key
    terms = {
        "quantity": quantity,
        "validityDays": validity_days,
        "maxUses": max_uses,
        "withPassword": with_password,
    }
    batch_id: int = await conn.fetchval(Q["insert_batch"], pool_id, json.dumps(terms))

    ids: list[int] = []
    for _ in range(_ATTEMPTS):
        missing = quantity - len(ids)
        if missing == 0:
            break
        if missing <= _INLINE:
            sealed = _seal(missing, with_password, fingerprint_key, data_key)
        else:
            sealed = await asyncio.to_thread(
                _seal, missing, with_password, fingerprint_key, data_key
            )
        rows = await conn.fetch(
            Q["insert_codes"],
            pool_id,
            batch_id,
            key_id,
            [s.fingerprint for s in sealed],
            [s.code for s in sealed],
            [s.password for s in sealed],
            expires_at,
            [s.last4 for s in sealed],
        )
        by_fingerprint = {r["fingerprint"]: r["id"] for r in rows}
        ids += [by_fingerprint[s.fingerprint] for s in sealed if s.fingerprint in by_fingerprint]
    else:
        if len(ids) < quantity:
            raise CollisionsPersist(f"{quantity - len(ids)} codes collided {_ATTEMPTS} times")

    await conn.execute(Q["record_generated"], ids, actor)
    await conn.execute(Q["count_sold"], pool_id, len(ids))
    return ids
