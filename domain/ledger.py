"""Rules of the ledger that need no database: kinds, signs, inputs, references and CSV cells.

The ledger stores signed amounts (a debit positive, a credit negative). Wallets, earnings,
supplier payables and revenue are credit accounts, so their raw balances are negative; a
channel sees its money as a positive number: the raw value negated.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from domain.access import Principal, Role
from domain.channels import Problem
from domain.moments import as_utc
from domain.money import CENT
from domain.settlement import AccountKind, Posting

# numeric(16, 2) holds 14 digits before the point; a single amount stays far below that
# so that sums of many of them still fit.
AMOUNT_LIMIT = Decimal("1000000000000")
MAX_REFERENCE = 100
MAX_MEMO = 500

AMOUNT_MESSAGE = "Give an amount above 0 with at most 2 decimal places."
AMOUNT_TOO_LARGE = "Give an amount below 1000000000000."
REFERENCE_MESSAGE = f"Give a reference of 1 to {MAX_REFERENCE} characters."
MEMO_MESSAGE = f"A memo has at most {MAX_MEMO} characters."


class TransactionKind(enum.StrEnum):
    TOP_UP = "TOP_UP"  # money into a channel's wallet
    SALE = "SALE"  # a sale and its split
    REFUND = "REFUND"  # the mirror of an earlier transaction
    ADJUSTMENT = "ADJUSTMENT"  # an operator's correction


# Accounts whose natural balance is a credit: what their owners see is the raw value negated.
CREDIT_NORMAL = frozenset(
    {
        AccountKind.CHANNEL_WALLET,
        AccountKind.CHANNEL_EARNINGS,
        AccountKind.SUPPLIER_PAYABLE,
        AccountKind.PLATFORM_REVENUE,
    }
)

# Who may move money: a channel's owners and its finance staff.
MONEY_ROLES = frozenset({Role.OWNER, Role.FINANCE})


def money(amount: Decimal) -> Decimal:
    """An amount with exactly two decimals and no negative zero (for display and sums)."""
    return amount.quantize(CENT) + 0


def as_seen(kind: AccountKind, raw: Decimal) -> Decimal:
    """A raw (signed) amount or balance as the account's owner reads it: money held positive."""
    return money(-raw if kind in CREDIT_NORMAL else raw)


def may_move_money(viewer: Principal) -> bool:
    return viewer.role in MONEY_ROLES


def clean_amount(value: Decimal, field: str = "amount") -> tuple[Decimal, Problem | None]:
    """An amount to move: finite, above zero, whole cents, below AMOUNT_LIMIT."""
    # In this order, so that NaN and huge exponents never reach quantize.
    if not value.is_finite() or value <= 0:
        return value, Problem(field, AMOUNT_MESSAGE)
    if value >= AMOUNT_LIMIT:
        return value, Problem(field, AMOUNT_TOO_LARGE)
    if value.quantize(CENT) != value:
        return value, Problem(field, AMOUNT_MESSAGE)
    return money(value), None


def clean_reference(reference: str, field: str = "reference") -> tuple[str, Problem | None]:
    cleaned = reference.strip()
    if not 1 <= len(cleaned) <= MAX_REFERENCE or not cleaned.isprintable():
        return cleaned, Problem(field, REFERENCE_MESSAGE)
    return cleaned, None


def clean_memo(memo: str | None, field: str = "memo") -> tuple[str | None, Problem | None]:
    if memo is None:
        return None, None
    cleaned = memo.strip()
    if len(cleaned) > MAX_MEMO:
        return cleaned, Problem(field, MEMO_MESSAGE)
    return cleaned or None, None


def top_up_reference(payer_channel_id: int, reference: str) -> str:
    """The ledger reference of a top-up: the client's reference, scoped to the paying
    channel, so that two payers' references never collide nor tell of each other."""
    return f"{payer_channel_id}:{reference}"


def shown_reference(kind: str, stored: str | None) -> str | None:
    """The reference as the client gave it (the payer's scope of a top-up removed)."""
    if stored is not None and kind == TransactionKind.TOP_UP and ":" in stored:
        return stored.partition(":")[2]
    return stored


def input_hash(
    kind: str,
    postings: Sequence[Posting],
    *,
    reverses_id: int | None = None,
    channel_id: int | None = None,
    product_id: int | None = None,
    quantity: int | None = None,
    memo: str | None = None,
) -> str:
    """A fingerprint of what a posting does, the same for the same input however it is
    spelled (order of postings, 100 or 100.00), to tell a retry from a different request."""
    lines = sorted(
        f"{p.account.kind}|{p.account.channel_id}|{p.account.supplier_id}|{money(p.amount)}"
        for p in postings
    )
    head = f"{kind}|{reverses_id}|{channel_id}|{product_id}|{quantity}|{memo or ''}"
    return hashlib.sha256("\n".join([head, *lines]).encode()).hexdigest()


def balance_problem(postings: Sequence[Posting]) -> str | None:
    """Why postings cannot be one ledger transaction, or None."""
    if not postings:
        return "a transaction has at least one posting"
    for p in postings:
        if not p.amount.is_finite() or p.amount == 0 or p.amount.quantize(CENT) != p.amount:
            return f"posting amounts are non-zero whole cents, not {p.amount}"
    total = sum((p.amount for p in postings), Decimal(0))
    if total != 0:
        return f"postings do not balance: debits - credits = {total}"
    return None


# --- statements ----------------------------------------------------------------------------

PERIOD_MESSAGE = "`from` must not be after `to`."


def period_problem(start: datetime, end: datetime) -> str | None:
    """Why [start, end) is not a statement period, or None (an empty period is one)."""
    return PERIOD_MESSAGE if start > end else None


def parse_moment(value: str) -> datetime | None:
    """An ISO-8601 date or date-time (UTC when it names no zone), or None."""
    try:
        return as_utc(datetime.fromisoformat(value.strip()))
    except ValueError:
        return None


# --- CSV ---------------------------------------------------------------------------------

# A spreadsheet reads a cell starting with one of these as a formula (or, for tab and
# carriage return, may shift it into one).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: str) -> str:
    """A CSV cell a spreadsheet shows as text: formula-like values get a leading quote.

    Negative amounts start with "-" and are quoted too: strip the quote to compute.
    """
    if value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value
