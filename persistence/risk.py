"""Risk rules, blocked subjects, risk events, and orders held for review."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from domain.orders import QueuedDelivery
from domain.risk import Action, BlockKind, NewRiskEvent, Outcome, Rule, Scope, Subject, SubjectKind
from persistence.orders import DuplicateOrder, OrderRecord
from persistence.queries import queries
from persistence.types import Db

Q = queries("risk")


@dataclass(frozen=True, slots=True)
class RiskRuleRecord:
    rule: Rule
    created_by: str
    created_at: datetime
    updated_at: datetime
    disabled_at: datetime | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> RiskRuleRecord:
        return cls(
            Rule(
                row["id"],
                Scope(row["scope"]),
                row["max_attempts"],
                row["window_seconds"],
                Action(row["action"]),
            ),
            row["created_by"],
            row["created_at"],
            row["updated_at"],
            row["disabled_at"],
        )


@dataclass(frozen=True, slots=True)
class BlockRecord:
    id: int
    kind: BlockKind
    value: str
    reason: str
    created_by: str
    created_at: datetime
    unblocked_by: str | None
    unblocked_at: datetime | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> BlockRecord:
        return cls(
            row["id"],
            BlockKind(row["kind"]),
            row["value"],
            row["reason"],
            row["created_by"],
            row["created_at"],
            row["unblocked_by"],
            row["unblocked_at"],
        )

    @property
    def subject(self) -> Subject:
        return Subject(SubjectKind(self.kind.value), self.value)


@dataclass(frozen=True, slots=True)
class RiskEventRecord:
    id: int
    at: datetime
    subject: Subject
    rule_id: int | None
    outcome: Outcome
    reason: str
    channel_id: int
    product_id: int | None
    order_id: int | None
    context: dict[str, Any]

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> RiskEventRecord:
        context = row["context"]
        return cls(
            row["id"],
            row["at"],
            Subject(SubjectKind(row["subject_kind"]), row["subject_value"]),
            row["rule_id"],
            Outcome(row["decision"]),
            row["reason"],
            row["channel_id"],
            row["product_id"],
            row["order_id"],
            json.loads(context) if isinstance(context, str) else dict(context),
        )


# --- rules ------------------------------------------------------------------------------


async def insert_rule(
    db: Db,
    *,
    scope: Scope,
    limit: int,
    window_seconds: int,
    action: Action,
    created_by: str,
    disabled: bool,
) -> RiskRuleRecord:
    row = await db.fetchrow(
        Q["insert_rule"], scope.value, limit, window_seconds, action.value, created_by, disabled
    )
    assert row is not None
    return RiskRuleRecord.from_row(row)


async def update_rule(
    db: Db,
    rule_id: int,
    *,
    scope: Scope | None,
    limit: int | None,
    window_seconds: int | None,
    action: Action | None,
    disabled: bool | None,
) -> RiskRuleRecord | None:
    row = await db.fetchrow(
        Q["update_rule"],
        rule_id,
        scope.value if scope else None,
        limit,
        window_seconds,
        action.value if action else None,
        disabled,
    )
    return RiskRuleRecord.from_row(row) if row else None


async def get_rule(db: Db, rule_id: int) -> RiskRuleRecord | None:
    row = await db.fetchrow(Q["get_rule"], rule_id)
    return RiskRuleRecord.from_row(row) if row else None


async def rules(db: Db) -> list[RiskRuleRecord]:
    return [RiskRuleRecord.from_row(r) for r in await db.fetch(Q["rules"])]


async def active_rules(db: Db) -> list[Rule]:
    return [RiskRuleRecord.from_row(r).rule for r in await db.fetch(Q["active_rules"])]


# --- blocks -----------------------------------------------------------------------------


async def block(db: Db, subject: Subject, reason: str, created_by: str) -> BlockRecord:
    """Block ``subject``; when it is blocked already, that block (unchanged)."""
    row = await db.fetchrow(Q["block"], subject.kind.value, subject.value, reason, created_by)
    if row is None:
        row = await db.fetchrow(Q["active_block"], subject.kind.value, subject.value)
        # Unblocked between the two statements: block it again.
        if row is None:
            return await block(db, subject, reason, created_by)
    return BlockRecord.from_row(row)


async def unblock(db: Db, subject: Subject, actor: str) -> BlockRecord | None:
    """End the subject's block; its latest block when none is in force, None when it was
    never blocked."""
    row = await db.fetchrow(Q["unblock"], subject.kind.value, subject.value, actor)
    if row is None:
        row = await db.fetchrow(Q["latest_block"], subject.kind.value, subject.value)
    return BlockRecord.from_row(row) if row else None


async def active_blocks(db: Db) -> list[BlockRecord]:
    return [BlockRecord.from_row(r) for r in await db.fetch(Q["active_blocks"])]


async def blocks_page(db: Db, before_id: int, limit: int, *, active: bool) -> list[BlockRecord]:
    rows = await db.fetch(Q["blocks_page"], before_id, limit, active)
    return [BlockRecord.from_row(r) for r in rows]


# --- events -----------------------------------------------------------------------------


async def insert_event(db: Db, event: NewRiskEvent) -> int:
    event_id: int = await db.fetchval(
        Q["insert_event"],
        event.subject.kind.value,
        event.subject.value,
        event.rule_id,
        event.outcome.value,
        event.reason,
        event.channel_id,
        event.product_id,
        event.order_id,
        json.dumps(dict(event.context), default=str),
    )
    return event_id


async def attach_order(db: Db, event_id: int, order_id: int) -> None:
    await db.execute(Q["attach_order"], event_id, order_id)


async def held_event(db: Db, order_id: int) -> RiskEventRecord | None:
    row = await db.fetchrow(Q["held_event"], order_id)
    return RiskEventRecord.from_row(row) if row else None


async def events_page(
    db: Db,
    ancestor_path: str,
    before_id: int,
    limit: int,
    *,
    outcome: Outcome | None = None,
    subject_kind: SubjectKind | None = None,
    subject_value: str | None = None,
    order_id: int | None = None,
) -> list[RiskEventRecord]:
    rows = await db.fetch(
        Q["events_page"],
        ancestor_path,
        before_id,
        outcome.value if outcome else None,
        subject_kind.value if subject_kind else None,
        subject_value,
        order_id,
        limit,
    )
    return [RiskEventRecord.from_row(r) for r in rows]


# --- orders held for review -------------------------------------------------------------


async def insert_review_order(
    db: Db,
    *,
    channel_id: int,
    product_id: int,
    idempotency_key: str,
    input_hash: str,
    quantity: int,
    unit_price: Decimal,
    total: Decimal,
    pool_id: int | None,
    buyer: dict[str, Any],
    reservation_ref: str | None,
    expires_at: datetime,
    reason: str,
    delivery: Sequence[QueuedDelivery],
) -> OrderRecord:
    """An order paid from the balance once approved; raises DuplicateOrder when the key
    is taken."""
    row = await db.fetchrow(
        Q["insert_review_order"],
        channel_id,
        product_id,
        idempotency_key,
        input_hash,
        quantity,
        unit_price,
        total,
        pool_id,
        json.dumps(buyer),
        reservation_ref,
        expires_at,
        reason,
        json.dumps([d.as_json() for d in delivery]),
    )
    if row is None:
        raise DuplicateOrder(idempotency_key)
    return OrderRecord.from_row(row)


async def sold_under(db: Db, pool_id: int, reservation_ref: str) -> list[int]:
    """The codes committed under a reservation."""
    return [r["id"] for r in await db.fetch(Q["sold_under"], pool_id, reservation_ref)]
