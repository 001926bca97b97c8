"""Risk configuration and risk events through the API.

Rules and blocks are the platform's: its owners and operators set them, its staff read
them. Risk events are read by every channel for the orders of its own subtree. The
checks themselves run on the order path (``resolvers.risk_control``).
"""

from __future__ import annotations

from domain.access import Principal, Role
from domain.channels import Problem
from domain.risk import (
    Action,
    BlockKind,
    Outcome,
    Scope,
    SubjectKind,
    check_rule,
    clean_block,
    clean_reason,
)
from persistence import orders, risk
from persistence.risk import RiskEventRecord
from resolvers.catalog import find_product
from schema import ids
from schema.catalog import Product
from schema.context import Info, require_viewer
from schema.errors import ErrorCode, UserError, bad_request, forbidden_request, user_error
from schema.orders import Order
from schema.pagination import Connection, connection, window
from schema.risk import (
    BlockedSubject,
    BlockSubjectInput,
    BlockSubjectPayload,
    RiskEvent,
    RiskEventFilter,
    RiskRule,
    SetRiskRuleInput,
    SetRiskRulePayload,
    UnblockSubjectInput,
    UnblockSubjectPayload,
)

# Risk configuration is the platform's operations work, like the catalog.
_CONFIGURE = frozenset({Role.OWNER, Role.OPERATOR})
# The largest id cursor: pages run newest first.
_NEWEST = 2**62

FORBIDDEN_CONFIG = "Only the platform's owners and operators change risk control."
RULE_NOT_FOUND = "No such risk rule."
NEW_RULE = "A new rule needs scope, limit, windowSeconds and action."


def _may_configure(viewer: Principal) -> bool:
    return viewer.is_platform and viewer.role in _CONFIGURE


def _may_read_config(viewer: Principal) -> bool:
    return viewer.is_platform and viewer.role is not Role.VERIFIER


def _invalid(problem: Problem) -> UserError:
    return user_error(ErrorCode.INVALID_INPUT, problem.message, problem.field)


def _forbidden() -> UserError:
    return user_error(ErrorCode.FORBIDDEN, FORBIDDEN_CONFIG)


# --- rules ------------------------------------------------------------------------------


async def risk_rules(info: Info) -> list[RiskRule]:
    viewer = require_viewer(info)
    if not _may_read_config(viewer):
        raise forbidden_request("Only the platform's staff see risk rules.")
    return [RiskRule(record=r) for r in await risk.rules(info.context.services.db)]


async def set_risk_rule(info: Info, input: SetRiskRuleInput) -> SetRiskRulePayload:
    viewer = require_viewer(info)
    if not _may_configure(viewer):
        return SetRiskRulePayload(user_errors=[_forbidden()])
    db = info.context.services.db
    scope = Scope(input.scope) if input.scope is not None else None
    action = Action(input.action) if input.action is not None else None
    if input.id is None:
        limit, window_seconds = input.limit, input.window_seconds
        if scope is None or limit is None or window_seconds is None or action is None:
            given = {"scope": scope, "limit": limit, "windowSeconds": window_seconds}
            missing = next((name for name, value in given.items() if value is None), "action")
            return SetRiskRulePayload(
                user_errors=[user_error(ErrorCode.INVALID_INPUT, NEW_RULE, missing)]
            )
        problem = check_rule(limit, window_seconds)
        if problem:
            return SetRiskRulePayload(user_errors=[_invalid(problem)])
        created = await risk.insert_rule(
            db,
            scope=scope,
            limit=limit,
            window_seconds=window_seconds,
            action=action,
            created_by=viewer.actor,
            disabled=bool(input.disabled),
        )
        return SetRiskRulePayload(risk_rule=RiskRule(record=created))

    rule_id = ids.decode("RiskRule", input.id)
    existing = await risk.get_rule(db, rule_id) if rule_id is not None else None
    if existing is None:
        return SetRiskRulePayload(
            user_errors=[user_error(ErrorCode.NOT_FOUND, RULE_NOT_FOUND, "id")]
        )
    problem = check_rule(
        existing.rule.limit if input.limit is None else input.limit,
        existing.rule.window_seconds if input.window_seconds is None else input.window_seconds,
    )
    if problem:
        return SetRiskRulePayload(user_errors=[_invalid(problem)])
    updated = await risk.update_rule(
        db,
        existing.rule.id,
        scope=scope,
        limit=input.limit,
        window_seconds=input.window_seconds,
        action=action,
        disabled=input.disabled,
    )
    assert updated is not None, "rules are never deleted"
    return SetRiskRulePayload(risk_rule=RiskRule(record=updated))


# --- blocks -----------------------------------------------------------------------------


async def blocked_subjects(
    info: Info, first: int | None, after: str | None, active: bool
) -> Connection[BlockedSubject]:
    viewer = require_viewer(info)
    if not _may_read_config(viewer):
        raise forbidden_request("Only the platform's staff see blocked subjects.")
    services = info.context.services
    win = window(first, after, services.settings.max_page_size)
    rows = await risk.blocks_page(services.db, win.after_key or _NEWEST, win.limit, active=active)
    return connection(rows, win, key=lambda r: r.id, node=lambda r: BlockedSubject(record=r))


async def block_subject(info: Info, input: BlockSubjectInput) -> BlockSubjectPayload:
    viewer = require_viewer(info)
    if not _may_configure(viewer):
        return BlockSubjectPayload(user_errors=[_forbidden()])
    subject, problem = clean_block(BlockKind(input.kind), input.value)
    if problem:
        return BlockSubjectPayload(user_errors=[_invalid(problem)])
    reason, problem = clean_reason(input.reason)
    if problem:
        return BlockSubjectPayload(user_errors=[_invalid(problem)])
    assert subject is not None
    made = await risk.block(info.context.services.db, subject, reason, viewer.actor)
    return BlockSubjectPayload(blocked_subject=BlockedSubject(record=made))


async def unblock_subject(info: Info, input: UnblockSubjectInput) -> UnblockSubjectPayload:
    viewer = require_viewer(info)
    if not _may_configure(viewer):
        return UnblockSubjectPayload(user_errors=[_forbidden()])
    subject, problem = clean_block(BlockKind(input.kind), input.value)
    if problem:
        return UnblockSubjectPayload(user_errors=[_invalid(problem)])
    assert subject is not None
    ended = await risk.unblock(info.context.services.db, subject, viewer.actor)
    if ended is None:
        return UnblockSubjectPayload(
            user_errors=[
                user_error(ErrorCode.NOT_FOUND, "This subject has never been blocked.", "value")
            ]
        )
    return UnblockSubjectPayload(blocked_subject=BlockedSubject(record=ended))


# --- events -----------------------------------------------------------------------------


async def risk_events(
    info: Info, first: int | None, after: str | None, filter: RiskEventFilter | None
) -> Connection[RiskEvent]:
    viewer = require_viewer(info)
    if viewer.role is Role.VERIFIER:
        raise forbidden_request("Verifiers do not see risk events.")
    services = info.context.services
    win = window(first, after, services.settings.max_page_size)
    wanted = filter or RiskEventFilter()
    order_id = None
    if wanted.order_id is not None:
        order_id = ids.decode("Order", wanted.order_id)
        if order_id is None:
            raise bad_request("`filter.orderId` is not an order id.")
    rows = await risk.events_page(
        services.db,
        viewer.channel_path,
        win.after_key or _NEWEST,
        win.limit,
        outcome=Outcome(wanted.decision) if wanted.decision is not None else None,
        subject_kind=SubjectKind(wanted.subject_kind) if wanted.subject_kind else None,
        subject_value=wanted.subject_value,
        order_id=order_id,
    )
    return connection(rows, win, key=lambda r: r.id, node=lambda r: RiskEvent(record=r))


async def resolve_event_rule(info: Info, record: RiskEventRecord) -> RiskRule | None:
    viewer = require_viewer(info)
    if record.rule_id is None or not _may_read_config(viewer):
        return None
    found = await risk.get_rule(info.context.services.db, record.rule_id)
    return RiskRule(record=found) if found else None


async def resolve_event_product(info: Info, record: RiskEventRecord) -> Product | None:
    if record.product_id is None:
        return None
    viewer = require_viewer(info)
    found = await find_product(info, viewer, ids.encode("Product", record.product_id))
    return Product(record=found) if found else None


async def resolve_event_order(info: Info, record: RiskEventRecord) -> Order | None:
    if record.order_id is None:
        return None
    viewer = require_viewer(info)
    found = await orders.get_in_subtree(
        info.context.services.db, record.order_id, viewer.channel_path
    )
    return Order.of(found) if found else None
