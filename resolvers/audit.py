"""The audit trail: the background chainer, ``auditVerify`` and ``codeTrace``.

Orders and everything else write code events in their own transactions, with no lock in
common; the chainer follows them and appends the chain entries (``domain.audit``). Only
one chainer appends at a time across processes; the others skip their pass.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import asyncpg

from domain.audit import (
    GENESIS,
    Break,
    BreakReason,
    Verification,
    Walk,
    extend,
    may_trace,
    may_verify,
    read_detail,
)
from persistence import audit
from resolvers.periodic import Periodic
from schema import ids
from schema.audit import AuditVerification, CodeEvent, CodeTrace
from schema.context import Info, require_viewer
from schema.errors import forbidden_request

# Events chained per pass; a full pass is followed by the next at once.
BATCH = 2000
# Entries read per page of a verification walk: memory stays flat however long the chain.
PAGE = 5000


class AuditChainer(Periodic):
    name = "audit-chainer"
    batch = BATCH

    def __init__(self, db: asyncpg.Pool[Any], interval: float) -> None:
        super().__init__(interval)
        self.db = db

    async def run_once(self) -> int:
        """Chain up to BATCH unchained events; returns how many."""
        async with self.db.acquire() as conn, conn.transaction():
            if not await audit.try_lock(conn):
                return 0
            state = await audit.state(conn)
            found = await audit.unchained(conn, state.horizon, BATCH)
            if found.events:
                head = await audit.head(conn)
                seq, prev = head if head is not None else (0, GENESIS)
                # Hashing a batch takes milliseconds: off the event loop.
                links = await asyncio.to_thread(extend, seq, prev, found.events)
                await audit.append(conn, links)
            full = len(found.events) == BATCH
            # Every event the search could see up to here is chained now.
            reach = found.events[-1].id if full else found.seen_max
            if state.settled:
                await audit.promote(conn, reach if full else None)
            if reach is not None:
                await audit.propose(conn, reach, found.seen_at)
        return len(found.events)


async def verify_chain(db: asyncpg.Pool[Any], grace: timedelta) -> Verification:
    """Walks the chain as it stands now, page by page in seq order, recomputing each hash
    from the event's current row; then looks for events left out of it. An event older
    than ``grace`` with no entry fails verification: the chainer is a second behind at
    most while it runs, so it has stopped, or the event's entry was deleted."""
    async with db.acquire() as conn:
        walk = Walk()
        head = await audit.head(conn)
        through = head[0] if head is not None else 0
        while walk.broken is None and walk.seq < through:
            entries = await audit.entries(conn, walk.seq, through, PAGE)
            if not entries:
                break
            # Hashing a page takes tens of milliseconds: off the event loop.
            await asyncio.to_thread(walk.feed, entries)
        walk.finish(through)
        left_out = await audit.unchained_summary(conn, grace)
        broken = walk.broken
        if broken is None and left_out.first_stale is not None:
            code_id = await audit.event_code(conn, left_out.first_stale)
            broken = Break(BreakReason.UNCHAINED, None, left_out.first_stale, code_id)
    return Verification(checked=walk.checked, broken=broken, unchained=left_out.count)


async def audit_verify(info: Info) -> AuditVerification:
    """Platform owners, operators and finance staff; others get a FORBIDDEN error."""
    if not may_verify(require_viewer(info)):
        raise forbidden_request(
            "Only the platform's owners, operators and finance staff verify the audit trail."
        )
    services = info.context.services
    grace = timedelta(seconds=services.settings.audit_unchained_grace_seconds)
    return AuditVerification(record=await verify_chain(services.db, grace))


async def code_trace(info: Info, code_id: str) -> CodeTrace | None:
    """The platform traces any code; another channel the codes of orders of its subtree,
    and of those only the events of its subtree. Anything else is null, as for a code
    that does not exist."""
    viewer = require_viewer(info)
    if not may_trace(viewer):
        raise forbidden_request("Verifiers do not trace codes.")
    key = ids.decode("Code", code_id)
    if key is None:
        return None
    db = info.context.services.db
    subtree = None if viewer.is_platform else viewer.channel_path
    code = await audit.traced_code(db, key, subtree)
    if code is None:
        return None
    rows = await audit.trace(db, key, subtree)
    details = [read_detail(row.event) for row in rows]
    order_ids = {r.event.order_id for r in rows if r.event.order_id is not None}
    channel_ids = {r.event.channel_id for r in rows if r.event.channel_id is not None}
    merchant_ids = {d.merchant_id for d in details if d.merchant_id is not None}
    orders = await audit.orders_by_id(db, sorted(order_ids)) if order_ids else {}
    channels = await audit.channels_by_id(db, sorted(channel_ids)) if channel_ids else {}
    merchants = await audit.merchant_names(db, sorted(merchant_ids)) if merchant_ids else {}
    events = [
        CodeEvent(
            event=row.event,
            detail=detail,
            order_record=orders.get(row.event.order_id) if row.event.order_id else None,
            channel_record=channels.get(row.event.channel_id) if row.event.channel_id else None,
            merchant_name=merchants.get(detail.merchant_id) if detail.merchant_id else None,
            is_chained=row.chained,
        )
        for row, detail in zip(rows, details, strict=True)
    ]
    return CodeTrace(code_record=code, event_list=events)
