"""Storing the codes a supplier sold us for a REALTIME order.

They are sealed exactly as imported codes are (AES-GCM under the active data key, bound
to the code's HMAC fingerprint) and land already sold, under the purchase's ref, in the
product's pool named ``supplier``. Runs in the order's transaction.
"""

from __future__ import annotations

import json
from typing import Any

from domain import crypto
from domain.codes import code_aad, password_aad, tail
from integrations.suppliers import SuppliedCode
from persistence.generated import named_pool
from persistence.keyring import Keyring
from persistence.queries import queries

Q = queries("supplied")

POOL_NAME = "supplier"


class AlreadyStored(Exception):
    """This purchase's codes were stored before (by a concurrent or earlier try)."""


class KnownCode(Exception):
    """The supplier sent a code this platform already holds: it cannot be sold again."""


async def store(
    conn: Any,
    keyring: Keyring,
    product_id: int,
    ref: str,
    supplied: tuple[SuppliedCode, ...],
    actor: str,
) -> tuple[int, list[int]]:
    """Seal and store the purchase's codes as sold: (their pool, their ids in the
    supplier's order)."""
    pool_id = await named_pool(conn, product_id, POOL_NAME)
    key_id: int = await conn.fetchval(Q["lock_active_key"])
    if key_id not in keyring.keys:
        await keyring.reload(conn)
    data_key, fingerprint_key = keyring.keys[key_id], keyring.fingerprint_key
    batch_id = await conn.fetchval(
        Q["insert_batch"], pool_id, ref, json.dumps({"quantity": len(supplied)})
    )
    if batch_id is None:
        raise AlreadyStored(ref)
    fingerprints = [crypto.fingerprint(fingerprint_key, s.code) for s in supplied]
    if len(set(fingerprints)) != len(fingerprints):
        raise KnownCode(ref)
    rows = await conn.fetch(
        Q["insert_codes"],
        pool_id,
        batch_id,
        key_id,
        ref,
        fingerprints,
        [
            crypto.seal(data_key, s.code.encode(), code_aad(f))
            for s, f in zip(supplied, fingerprints, strict=True)
        ],
        [
            crypto.seal(data_key, s.password.encode(), password_aad(f))
            if s.password is not None
            else None
            for s, f in zip(supplied, fingerprints, strict=True)
        ],
        [tail(s.code) for s in supplied],
        [s.expires_at for s in supplied],
    )
    if len(rows) != len(supplied):
        raise KnownCode(ref)
    ids = {r["fingerprint"]: r["id"] for r in rows}
    code_ids = [ids[f] for f in fingerprints]
    await conn.execute(Q["record_supplied"], code_ids, actor)
    await conn.execute(Q["count_sold"], pool_id, len(code_ids))
    return pool_id, code_ids
