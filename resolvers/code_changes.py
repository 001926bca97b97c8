"""Freezing, unfreezing and voiding codes by ids, order, batch, pool or channel subtree.

Who may: owners and operators. The platform's may select any codes; a channel's only
codes sold to orders of its own subtree (by ``codeIds``, ``orderId`` or ``channelId``),
and codes it may not see are "not found", never "forbidden", so nothing tells of them.
A channel lifts only the freezes made by itself or its subtree: a freeze from above (the
platform, a parent channel, the risk rules) holds until someone there lifts it. Voiding
such a code is allowed: it takes the code further out of use, never back into it.

What each does:

- freeze: available and sold codes become frozen. Allocation skips them (the pool's actor
  drops them from its window) and redemption refuses them.
- unfreeze: frozen codes go back to where they were, available or sold.
- void: available, sold and frozen codes become voided, for good.

Codes reserved for an order awaiting payment are skipped and counted in ``skipped``: the
order owns them until it is paid (they become sold: call again) or expires (they return
to stock). Freezing them under the order would make its payment fail for a reason the
buyer cannot see.

``channelId`` selects the channel's unredeemed codes: those sold to orders of the channel
and its subtree with uses left. The pools' stock is the platform's, not the channel's,
and stays on sale. The selection is walked order by order while sales go on: a code sold
to the subtree after the walk passed is not taken; call again to take it.

How: the selection is read in keyset pages (``persistence.code_selection``); each page's
codes go to their pools' actors, the only writers of code states, in chunks of
``CHUNK``. The chunks of one pool go one after another, so the pool's orders wait behind
one chunk, never the whole selection; different pools work in parallel. Each chunk's
events (FROZEN, UNFROZEN, VOIDED, with the reason) are written in the statement that
moves it. Every step is idempotent: after a failure, the same call finishes the job.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import strawberry

from actors.messages import Changed
from actors.registry import PoolRegistry
from domain.access import Principal, Role
from persistence import channels, code_selection, orders, pools
from persistence.code_selection import (
    ByBatch,
    ByChannel,
    ByIds,
    ByOrder,
    ByPool,
    Rule,
    Selector,
)
from persistence.code_states import MoveEvent
from persistence.types import Db
from schema import ids
from schema.code_changes import (
    CodeSelectionInput,
    FreezeCodesInput,
    FreezeCodesPayload,
    UnfreezeCodesInput,
    UnfreezeCodesPayload,
    VoidCodesInput,
    VoidCodesPayload,
)
from schema.context import Info, require_viewer
from schema.errors import ErrorCode, UserError, user_error

CHANGE_ROLES = frozenset({Role.OWNER, Role.OPERATOR})
MAX_CODE_IDS = 10_000
MAX_REASON = 500
# Codes per message to a pool's actor. An order for the pool that arrives meanwhile waits
# for the chunk in hand: measured (bench/freeze.py, 100,000 codes), 2,000 froze about
# 30,000 codes/s with reservations beside it at p99 70-120 ms; 5,000 was no faster and
# doubled that p99.
CHUNK = 2_000

ONE_SELECTOR = "Give exactly one of codeIds, orderId, batchId, poolId and channelId."


class Change(enum.Enum):
    """A change and the event it records."""

    FREEZE = "FROZEN"
    UNFREEZE = "UNFROZEN"
    VOID = "VOIDED"


# The states each change moves codes from (as the pool actor does) and the states it
# selects but leaves: a reservation belongs to an order in flight.
_MOVES = {
    Change.FREEZE: ("available", "sold"),
    Change.UNFREEZE: ("frozen",),
    Change.VOID: ("available", "sold", "frozen"),
}
_KEEPS = {Change.FREEZE: ("reserved",), Change.UNFREEZE: (), Change.VOID: ("reserved",)}


def rule(change: Change, selector: Selector, frozen_from: str | None) -> Rule:
    """Which of the selected codes ``change`` moves: a channel's codes only with uses left;
    unfreezing, given ``frozen_from``, only those frozen from the subtree at that path."""
    return Rule(
        moves=_MOVES[change],
        keeps=_KEEPS[change],
        unredeemed=isinstance(selector, ByChannel),
        frozen_from=frozen_from if change is Change.UNFREEZE else None,
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    changed: int
    skipped: int


async def freeze_codes(info: Info, input: FreezeCodesInput) -> FreezeCodesPayload:
    outcome = await _change(info, input, Change.FREEZE)
    if isinstance(outcome, UserError):
        return FreezeCodesPayload(user_errors=[outcome])
    return FreezeCodesPayload(changed=outcome.changed, skipped=outcome.skipped)


async def unfreeze_codes(info: Info, input: UnfreezeCodesInput) -> UnfreezeCodesPayload:
    outcome = await _change(info, input, Change.UNFREEZE)
    if isinstance(outcome, UserError):
        return UnfreezeCodesPayload(user_errors=[outcome])
    return UnfreezeCodesPayload(changed=outcome.changed, skipped=outcome.skipped)


async def void_codes(info: Info, input: VoidCodesInput) -> VoidCodesPayload:
    outcome = await _change(info, input, Change.VOID)
    if isinstance(outcome, UserError):
        return VoidCodesPayload(user_errors=[outcome])
    return VoidCodesPayload(changed=outcome.changed, skipped=outcome.skipped)


async def _change(info: Info, input: CodeSelectionInput, change: Change) -> Outcome | UserError:
    viewer = require_viewer(info)
    services = info.context.services
    if viewer.role not in CHANGE_ROLES:
        return user_error(
            ErrorCode.FORBIDDEN, "Only owners and operators freeze, unfreeze or void codes."
        )
    selectors = (input.code_ids, input.order_id, input.batch_id, input.pool_id, input.channel_id)
    if sum(s is not None for s in selectors) != 1:
        return user_error(ErrorCode.INVALID_INPUT, ONE_SELECTOR)
    reason = input.reason.strip()
    if not 1 <= len(reason) <= MAX_REASON:
        return user_error(
            ErrorCode.INVALID_INPUT, f"Give a reason of 1 to {MAX_REASON} characters.", "reason"
        )
    selector = await _selector(services.db, viewer, input)
    if isinstance(selector, UserError):
        return selector
    # A channel lifts only the freezes made from its subtree: each event keeps the
    # channel that made it (see the module's doc).
    frozen_from = None if viewer.is_platform else viewer.channel_path
    event = MoveEvent(
        change.value, viewer.actor, {"reason": reason, "by_channel_id": viewer.channel_id}
    )
    return await apply(
        services.pools, services.db, selector, rule(change, selector, frozen_from), change, event
    )


async def _selector(db: Db, viewer: Principal, input: CodeSelectionInput) -> Selector | UserError:
    if input.code_ids is not None:
        return await _by_ids(db, viewer, input.code_ids)
    if input.order_id is not None:
        order_key = ids.decode("Order", input.order_id)
        order = (
            await orders.get_in_subtree(db, order_key, viewer.channel_path) if order_key else None
        )
        if order is None:
            return user_error(ErrorCode.NOT_FOUND, "No such order.", "orderId")
        return ByOrder(order.id)
    if input.channel_id is not None:
        channel_key = ids.decode("Channel", input.channel_id)
        channel = (
            await channels.get_in_subtree(db, channel_key, viewer.channel_path)
            if channel_key
            else None
        )
        if channel is None:
            return user_error(ErrorCode.NOT_FOUND, "No such channel.", "channelId")
        return ByChannel(channel.path)
    if input.pool_id is not None:
        if not viewer.is_platform:
            return _platform_only("pool", "poolId")
        pool_key = ids.decode("Pool", input.pool_id)
        pool = await pools.get(db, pool_key) if pool_key else None
        if pool is None:
            return user_error(ErrorCode.NOT_FOUND, "No such pool.", "poolId")
        return ByPool(pool.id)
    assert input.batch_id is not None, "exactly one selector was given"
    if not viewer.is_platform:
        return _platform_only("batch", "batchId")
    batch_key = ids.decode("CodeBatch", input.batch_id)
    pool_id = await code_selection.batch_pool(db, batch_key) if batch_key else None
    if batch_key is None or pool_id is None:
        return user_error(ErrorCode.NOT_FOUND, "No such code batch.", "batchId")
    return ByBatch(batch_key, pool_id)


async def _by_ids(db: Db, viewer: Principal, code_ids: list[strawberry.ID]) -> ByIds | UserError:
    if not code_ids:
        return user_error(ErrorCode.INVALID_INPUT, "Give at least one code id.", "codeIds")
    if len(code_ids) > MAX_CODE_IDS:
        return user_error(
            ErrorCode.INVALID_INPUT,
            f"Give at most {MAX_CODE_IDS:,} code ids; select more by order, batch, pool or "
            "channel.",
            "codeIds",
        )
    keys = [ids.decode("Code", c) for c in code_ids]
    known = await code_selection.in_scope(
        db,
        [k for k in keys if k is not None],
        None if viewer.is_platform else viewer.channel_path,
    )
    for index, key in enumerate(keys):
        if key not in known:
            # The same answer for a code that does not exist and one of another subtree.
            return UserError(
                field=["codeIds", str(index)], code=ErrorCode.NOT_FOUND, message="No such code."
            )
    return ByIds(tuple(dict.fromkeys(k for k in keys if k is not None)))


def _platform_only(what: str, field: str) -> UserError:
    return user_error(
        ErrorCode.FORBIDDEN,
        f"Only the platform's owners and operators select codes by {what}.",
        field,
    )


Send = Callable[[int, list[int], MoveEvent], Awaitable[Changed]]


async def apply(
    registry: PoolRegistry,
    db: Db,
    selector: Selector,
    rule: Rule,
    change: Change,
    event: MoveEvent,
    *,
    chunk: int = CHUNK,
) -> Outcome:
    """Carry out ``change`` on the selected codes through their pools' actors."""
    send: Send = {
        Change.FREEZE: registry.freeze,
        Change.UNFREEZE: registry.unfreeze,
        Change.VOID: registry.void,
    }[change]
    changed = skipped = 0
    async for page in code_selection.pages(db, selector, rule):
        sent = sum(len(code_ids) for code_ids in page.movable.values())
        moved = sum(
            await asyncio.gather(
                *(
                    _move(send, pool_id, code_ids, event, chunk)
                    for pool_id, code_ids in page.movable.items()
                )
            )
        )
        changed += moved
        # Sent but not moved: changed by someone else since the page was read.
        skipped += page.kept + sent - moved
    return Outcome(changed, skipped)


async def _move(send: Send, pool_id: int, code_ids: list[int], event: MoveEvent, chunk: int) -> int:
    moved = 0
    for start in range(0, len(code_ids), chunk):
        moved += (await send(pool_id, code_ids[start : start + chunk], event)).count
    return moved
