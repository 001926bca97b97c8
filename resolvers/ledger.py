"""The ledger through GraphQL: top-ups, statements, balances and the trial balance.

Refusals of a top-up come in a fixed order: a channel outside the caller's subtree is
NOT_FOUND (whatever else is wrong), then a role that may not move money or a channel
topping up itself is FORBIDDEN, then input problems, then the money itself.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from domain import ledger as rules
from domain.ledger import TransactionKind, as_seen
from domain.moments import as_utc
from domain.settlement import PAYMENT_CLEARING, Account, AccountKind, earnings, top_up, wallet
from persistence import ledger
from persistence.channels import ChannelRecord
from persistence.ledger import IdempotencyConflict, InsufficientBalance
from resolvers.channels import channel_not_found, find_channel, forbidden, invalid
from schema.channels import Channel
from schema.context import Info, require_viewer
from schema.errors import ErrorCode, RequestError, bad_request, forbidden_request, user_error
from schema.ledger import (
    AccountBalance,
    LedgerTransaction,
    Statement,
    StatementAccount,
    StatementEntry,
    StatementRecord,
    TopUpBalanceInput,
    TopUpBalancePayload,
    TrialBalance,
)
from schema.pagination import Connection, connection, window

SELF_TOP_UP = "A channel cannot top up its own balance: its parent or the platform does."
CANNOT_PAY = "Your balance cannot pay this top-up."
REFERENCE_TAKEN = "This reference was used for another top-up."


# --- mutations ---------------------------------------------------------------------------


async def top_up_balance(info: Info, input: TopUpBalanceInput) -> TopUpBalancePayload:
    """The platform tops up from payments received (PAYMENT_CLEARING); any other ancestor
    of the target from its own wallet. Nobody tops up itself: the platform's wallet pays
    for nothing, and an agent's own wallet is filled from above."""
    viewer = require_viewer(info)
    target = await find_channel(info, viewer, input.channel_id)
    if target is None:
        return TopUpBalancePayload(user_errors=[channel_not_found("channelId")])
    if not rules.may_move_money(viewer):
        return TopUpBalancePayload(user_errors=[forbidden("top up balances")])
    if target.id == viewer.channel_id:
        return TopUpBalancePayload(
            user_errors=[user_error(ErrorCode.FORBIDDEN, SELF_TOP_UP, "channelId")]
        )
    amount, amount_problem = rules.clean_amount(input.amount)
    reference, reference_problem = rules.clean_reference(input.reference)
    memo, memo_problem = rules.clean_memo(input.memo)
    problems = [p for p in (amount_problem, reference_problem, memo_problem) if p]
    if problems:
        return TopUpBalancePayload(user_errors=[invalid(p) for p in problems])

    source = PAYMENT_CLEARING if viewer.is_platform else wallet(viewer.channel_id)
    async with info.context.services.db.acquire() as conn:
        try:
            posted = await ledger.post(
                conn,
                TransactionKind.TOP_UP,
                top_up(target.id, amount, source),
                reference=rules.top_up_reference(viewer.channel_id, reference),
                channel_id=target.id,
                memo=memo,
            )
        except InsufficientBalance:
            return TopUpBalancePayload(
                user_errors=[user_error(ErrorCode.INSUFFICIENT_BALANCE, CANNOT_PAY, "amount")]
            )
        except IdempotencyConflict:
            return TopUpBalancePayload(
                user_errors=[
                    user_error(ErrorCode.IDEMPOTENCY_CONFLICT, REFERENCE_TAKEN, "reference")
                ]
            )
    return TopUpBalancePayload(
        channel=Channel(record=target), transaction=LedgerTransaction(record=posted)
    )


# --- queries -----------------------------------------------------------------------------


async def statement(
    info: Info,
    channel_id: str | None,
    start: datetime,
    end: datetime,
    account: StatementAccount,
) -> Statement:
    """A channel outside the caller's subtree is a NOT_FOUND error, like one that does
    not exist."""
    viewer = require_viewer(info)
    record = await find_channel(info, viewer, channel_id)
    if record is None:
        raise RequestError("No such channel.", "NOT_FOUND")
    try:
        start, end = as_utc(start), as_utc(end)
    except ValueError:
        raise bad_request("`from` and `to` must be possible times.") from None
    problem = rules.period_problem(start, end)
    if problem:
        raise bad_request(problem)
    async with info.context.services.db.acquire() as conn:
        summary = await ledger.statement_summary(
            conn, _statement_account(record, account), start, end
        )
    return Statement(
        record=StatementRecord(
            channel=record, account=account, start=start, end=end, summary=summary
        )
    )


def _statement_account(record: ChannelRecord, account: StatementAccount) -> Account:
    if account is StatementAccount.CHANNEL_EARNINGS:
        return earnings(record.id)
    return wallet(record.id)


async def resolve_statement_entries(
    info: Info, record: StatementRecord, first: int | None, after: str | None
) -> Connection[StatementEntry]:
    win = window(first, after, info.context.services.settings.max_page_size)
    summary = record.summary
    rows: list[ledger.StatementRow] = []
    if summary.account_id is not None:
        rows = await ledger.statement_page(
            info.context.services.db,
            summary.account_id,
            record.start,
            record.end,
            win.after_key,
            win.limit,
        )
    kind = record.account.kind
    return connection(
        rows,
        win,
        key=lambda r: r.entry_id,
        node=lambda r: StatementEntry(row=r, account=kind, opening=summary.opening),
    )


async def trial_balance(info: Info) -> TrialBalance:
    """Platform only; other channels get a FORBIDDEN error."""
    if not require_viewer(info).is_platform:
        raise forbidden_request("Only the platform sees the trial balance.")
    accounts = await ledger.trial_balance(info.context.services.db)
    total = rules.money(sum((a.balance for a in accounts), Decimal(0)))
    return TrialBalance(total=total, accounts=[AccountBalance(record=a) for a in accounts])


async def resolve_channel_balance(info: Info, record: ChannelRecord) -> Decimal:
    """The channel's wallet as it sees it (0.00 before any top-up)."""
    raw = await ledger.balance(info.context.services.db, wallet(record.id))
    return as_seen(AccountKind.CHANNEL_WALLET, raw)


async def resolve_channel_earnings(info: Info, record: ChannelRecord) -> Decimal:
    """The channel's margins as it sees them (0.00 before any sale)."""
    raw = await ledger.balance(info.context.services.db, earnings(record.id))
    return as_seen(AccountKind.CHANNEL_EARNINGS, raw)
