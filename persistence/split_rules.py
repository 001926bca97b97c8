"""Split rules: how a sale's money is divided, per product or per channel."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import asyncpg

from domain.settlement import RatioRule, SplitKind
from persistence.queries import queries
from persistence.types import Db

Q = queries("split_rules")


@dataclass(frozen=True, slots=True)
class SplitRuleRecord:
    id: int
    product_id: int | None
    channel_id: int | None
    kind: SplitKind
    supplier_percent: Decimal | None
    platform_percent: Decimal | None
    agent_percents: tuple[Decimal, ...]
    updated_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> SplitRuleRecord:
        return cls(
            row["id"],
            row["product_id"],
            row["channel_id"],
            SplitKind(row["kind"]),
            row["supplier_percent"],
            row["platform_percent"],
            tuple(row["agent_percents"]),
            row["updated_at"],
        )

    @property
    def ratio(self) -> RatioRule | None:
        """The ratio to split by; None means the price chain."""
        if self.kind is SplitKind.PRICE_CHAIN:
            return None
        assert self.supplier_percent is not None
        assert self.platform_percent is not None
        return RatioRule(self.supplier_percent, self.platform_percent, self.agent_percents)


async def set_rule(
    db: Db,
    *,
    product_id: int | None,
    channel_id: int | None,
    kind: SplitKind,
    ratio: RatioRule | None,
) -> SplitRuleRecord:
    args = (
        kind.value,
        ratio.supplier_percent if ratio else None,
        ratio.platform_percent if ratio else None,
        list(ratio.agent_percents) if ratio else [],
    )
    if product_id is not None:
        row = await db.fetchrow(Q["upsert_for_product"], product_id, *args)
    else:
        row = await db.fetchrow(Q["upsert_for_channel"], channel_id, *args)
    assert row is not None
    return SplitRuleRecord.from_row(row)


async def clear_rule(
    db: Db, *, product_id: int | None, channel_id: int | None
) -> SplitRuleRecord | None:
    if product_id is not None:
        row = await db.fetchrow(Q["delete_for_product"], product_id)
    else:
        row = await db.fetchrow(Q["delete_for_channel"], channel_id)
    return SplitRuleRecord.from_row(row) if row else None


async def all_rules(db: Db) -> list[SplitRuleRecord]:
    return [SplitRuleRecord.from_row(r) for r in await db.fetch(Q["all"])]


async def rule_for_sale(db: Db, product_id: int, buyer_path: str) -> SplitRuleRecord | None:
    """The rule that splits a sale of the product to the channel at ``buyer_path``."""
    row = await db.fetchrow(Q["for_sale"], product_id, buyer_path)
    return SplitRuleRecord.from_row(row) if row else None
