"""Redemptions (核销): looking a code up by its fingerprint and using it once.

A use is one conditional UPDATE of the code's row (sold, uses left), so concurrent
redemptions of one code serialise on that row and never exceed its uses. The use, the
redemption row (claiming the merchant's idempotency key) and the REDEEMED event commit
together.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from persistence.queries import queries
from persistence.types import Db

Q = queries("redemptions")


@dataclass(frozen=True, slots=True)
class CodeForRedemption:
    id: int
    pool_id: int
    status: str
    frozen_from: str | None
    uses: int
    max_uses: int
    valid_from: datetime | None
    expires_at: datetime | None
    fingerprint: bytes
    password_ciphertext: bytes | None
    key_id: int
    redeemable: bool
    order_id: int | None
    channel_id: int | None
    channel_path: str | None

    def __repr__(self) -> str:
        return f"CodeForRedemption(id={self.id}, status={self.status!r})"


@dataclass(frozen=True, slots=True)
class RedemptionRecord:
    id: int
    code_id: int
    merchant_id: int
    idempotency_key: str
    actor: str
    region: str | None
    uses_left: int
    redeemed_at: datetime
    last4: str

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> RedemptionRecord:
        return cls(
            id=row["id"],
            code_id=row["code_id"],
            merchant_id=row["merchant_id"],
            idempotency_key=row["idempotency_key"],
            actor=row["actor"],
            region=row["region"],
            uses_left=row["uses_left"],
            redeemed_at=row["redeemed_at"],
            last4=row["last4"],
        )


class KeyTaken(Exception):
    """The merchant used this idempotency key before; nothing of this try was written."""


async def find(db: Db, fingerprint: bytes) -> CodeForRedemption | None:
    row = await db.fetchrow(Q["find"], fingerprint)
    return CodeForRedemption(**dict(row)) if row else None


async def find_for_link(db: Db, delivery_id: int) -> CodeForRedemption | None:
    row = await db.fetchrow(Q["find_for_link"], delivery_id)
    return CodeForRedemption(**dict(row)) if row else None


async def state(db: Db, code_id: int) -> CodeForRedemption:
    row = await db.fetchrow(Q["state"], code_id)
    assert row is not None, "codes are never deleted"
    return CodeForRedemption(**dict(row))


async def by_key(db: Db, merchant_id: int, key: str) -> RedemptionRecord | None:
    row = await db.fetchrow(Q["by_key"], merchant_id, key)
    return RedemptionRecord.from_row(row) if row else None


async def use(
    conn: Any,
    code: CodeForRedemption,
    *,
    merchant_id: int,
    key: str,
    actor: str,
    region: str | None,
) -> RedemptionRecord | None:
    """Use the code once, in the caller's transaction; None when it cannot be used (no
    uses left, or not sold any more). Raises KeyTaken (roll back) when the key was used."""
    uses_left = await conn.fetchval(Q["use"], code.id)
    if uses_left is None:
        return None
    row = await conn.fetchrow(Q["insert"], code.id, merchant_id, key, actor, region, uses_left)
    if row is None:
        raise KeyTaken(key)
    await record_event(
        conn,
        code,
        "REDEEMED",
        actor,
        {"merchant_id": merchant_id, "region": region, "uses_left": uses_left},
    )
    return RedemptionRecord.from_row(row)


async def record_event(
    db: Db, code: CodeForRedemption, kind: str, actor: str, detail: dict[str, Any]
) -> None:
    await db.execute(
        Q["record_event"],
        code.id,
        kind,
        code.order_id,
        code.channel_id,
        actor,
        json.dumps(detail),
    )


async def page(
    db: Db,
    ancestor_path: str,
    before: int,
    limit: int,
    *,
    merchant_id: int | None,
    code_id: int | None,
) -> list[RedemptionRecord]:
    rows = await db.fetch(Q["page"], ancestor_path, before, limit, merchant_id, code_id)
    return [RedemptionRecord.from_row(r) for r in rows]
