"""The double-entry ledger: accounts, balanced transactions of entries, statements.

This module is the ledger's Python API (orders and split settlement call it):

- ``post(conn, kind, postings, ...)`` writes one balanced transaction, idempotent on
  ``(kind, reference)``;
- ``reverse(conn, transaction_id, ...)`` posts the exact mirror of a transaction, once;
- ``account_id``, ``balance``, ``get_transaction``, ``transaction_by_reference``;
- statements (``statement_summary``, ``statement_page``, ``statement_rows``) and the
  ``trial_balance`` with ``replay_mismatches``.

Amounts are signed like ``domain.settlement.Posting``: a debit positive, a credit
negative. Balances here are raw; ``domain.ledger.as_seen`` turns them into what an
account's owner reads (a wallet holding 100 CNY has the raw balance -100.00).

The database holds the invariants whoever writes: every transaction balances (checked
at commit), entries and transactions are never changed or deleted, and a wallet never
goes below zero (a CHECK on the account row, which concurrent debits serialise on).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from domain import ledger as rules
from domain.ledger import TransactionKind
from domain.settlement import Account, AccountKind, Posting, mirror
from persistence.channels import ChannelRecord
from persistence.queries import queries
from persistence.types import Db

Q = queries("ledger")

Conn: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"

WALLET_NOT_OVERDRAWN = "wallet_not_overdrawn"
# Rows a statement export reads from the database at a time.
STATEMENT_PREFETCH = 500


# --- errors ------------------------------------------------------------------------------


class LedgerError(Exception):
    """A posting the ledger refuses."""


class UnbalancedPostings(LedgerError, ValueError):
    """Postings that cannot form a transaction: none, a zero or fractional-cent amount, or
    debits and credits that differ. A bug in the caller; nothing was written."""


class IdempotencyConflict(LedgerError):
    """The (kind, reference) is taken by a transaction made from other input.

    Raised before anything is written: the caller's transaction is still usable.
    """

    def __init__(self, first: PostedTransaction) -> None:
        super().__init__(f"reference {first.reference!r} was used for another {first.kind}")
        self.first = first


class AlreadyReversed(LedgerError):
    """The transaction named by ``reverses_id`` was reversed already (by ``first``).

    Raised before anything is written: the caller's transaction is still usable.
    """

    def __init__(self, first: PostedTransaction) -> None:
        super().__init__(f"transaction {first.reverses_id} is already reversed by {first.id}")
        self.first = first


class NotReversible(LedgerError):
    """No such transaction, or one that is itself a reversal."""


class InsufficientBalance(LedgerError):
    """A wallet would go below zero. The database refused the entries, so the caller's
    database transaction is aborted: let the error leave it (or post in a savepoint)."""

    def __init__(self, wallets: Sequence[Account]) -> None:
        names = ", ".join(f"channel {w.channel_id}" for w in wallets)
        super().__init__(f"insufficient balance in the wallet of {names}")
        self.wallets = tuple(wallets)


# --- records -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    account_id: int
    account: Account
    amount: Decimal  # signed: debit positive, credit negative
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PostedTransaction:
    id: int
    kind: TransactionKind
    reference: str | None
    input_hash: str | None
    reverses_id: int | None
    channel_id: int | None
    product_id: int | None
    quantity: int | None
    memo: str | None
    created_at: datetime
    entries: tuple[Entry, ...]
    # True when this is an earlier transaction returned for a retried or repeated call.
    replayed: bool = False

    @property
    def postings(self) -> list[Posting]:
        return [Posting(e.account, e.amount) for e in self.entries]

    @property
    def amount(self) -> Decimal:
        """The sum of the debits (equal to that of the credits)."""
        return rules.money(sum((e.amount for e in self.entries if e.amount > 0), Decimal(0)))


@dataclass(frozen=True, slots=True)
class KindTotal:
    """An account's entries of one transaction kind in a period; magnitudes, raw sides."""

    kind: TransactionKind
    debit: Decimal
    credit: Decimal
    count: int

    @property
    def net(self) -> Decimal:
        """The raw change: debit - credit."""
        return rules.money(self.debit - self.credit)


@dataclass(frozen=True, slots=True)
class StatementSummary:
    account_id: int | None  # None: the account has never been posted to
    opening: Decimal  # raw balance at the start of the period
    totals: tuple[KindTotal, ...]

    @property
    def closing(self) -> Decimal:
        """Raw balance at the end of the period: the opening plus the period's entries."""
        return rules.money(self.opening + sum((t.net for t in self.totals), Decimal(0)))


@dataclass(frozen=True, slots=True)
class StatementRow:
    entry_id: int
    transaction_id: int
    kind: TransactionKind
    amount: Decimal  # raw
    running: Decimal  # raw sum of the period's entries up to and including this one
    reference: str | None
    memo: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AccountBalance:
    account_id: int
    account: Account
    balance: Decimal  # raw
    channel: ChannelRecord | None


# --- accounts ----------------------------------------------------------------------------


def _owner_arrays(
    accounts: Sequence[Account],
) -> tuple[list[str], list[int | None], list[int | None]]:
    return (
        [a.kind.value for a in accounts],
        [a.channel_id for a in accounts],
        [a.supplier_id for a in accounts],
    )


def _account(row: asyncpg.Record) -> Account:
    return Account(AccountKind(row["kind"]), row["channel_id"], row["supplier_id"])


async def account_ids(conn: Conn, accounts: Sequence[Account], *, lock: bool) -> dict[Account, int]:
    """The ids of ``accounts``, opening those that do not exist; with ``lock`` the wallets
    among them are locked in id order."""
    wanted = sorted(set(accounts), key=lambda a: (a.kind, a.channel_id or 0, a.supplier_id or 0))
    arrays = _owner_arrays(wanted)
    found = {_account(r): r["id"] for r in await conn.fetch(Q["find_accounts"], *arrays)}
    if len(found) < len(wanted):
        await conn.execute(Q["insert_accounts"], *arrays)
        found = {_account(r): r["id"] for r in await conn.fetch(Q["find_accounts"], *arrays)}
    assert len(found) == len(wanted), "every account was opened"
    if lock:
        await conn.execute(Q["lock_wallets"], list(found.values()))
    return found


async def account_id(conn: Conn, account: Account) -> int:
    """The id of ``account``, opening it when it does not exist (safe against concurrent
    openers: the unique index decides and the loser reads the winner's row)."""
    ids = await account_ids(conn, [account], lock=False)
    return ids[account]


async def balance(db: Db, account: Account) -> Decimal:
    """The raw balance of ``account`` (0.00 when it was never posted to)."""
    value: Decimal | None = await db.fetchval(
        Q["balance"], account.kind.value, account.channel_id, account.supplier_id
    )
    return rules.money(value if value is not None else Decimal(0))


# --- transactions ------------------------------------------------------------------------


def _transaction(
    row: asyncpg.Record, entries: Sequence[Entry], *, replayed: bool
) -> PostedTransaction:
    return PostedTransaction(
        id=row["id"],
        kind=TransactionKind(row["kind"]),
        reference=row["reference"],
        input_hash=row["input_hash"],
        reverses_id=row["reverses_id"],
        channel_id=row["channel_id"],
        product_id=row["product_id"],
        quantity=row["quantity"],
        memo=row["memo"],
        created_at=row["created_at"],
        entries=tuple(sorted(entries, key=lambda e: e.id)),
        replayed=replayed,
    )


async def _load(conn: Db, row: asyncpg.Record, *, replayed: bool) -> PostedTransaction:
    rows = await conn.fetch(Q["entries_of"], row["id"])
    entries = [
        Entry(e["id"], e["account_id"], _account(e), e["amount"], e["created_at"]) for e in rows
    ]
    return _transaction(row, entries, replayed=replayed)


async def get_transaction(db: Db, transaction_id: int) -> PostedTransaction | None:
    row = await db.fetchrow(Q["transaction_by_id"], transaction_id)
    return await _load(db, row, replayed=False) if row else None


async def transaction_by_reference(
    db: Db, kind: TransactionKind, reference: str
) -> PostedTransaction | None:
    row = await db.fetchrow(Q["transaction_by_reference"], kind.value, reference)
    return await _load(db, row, replayed=False) if row else None


@contextlib.asynccontextmanager
async def _in_transaction(conn: Conn) -> AsyncIterator[None]:
    """The caller's transaction when there is one (no savepoint), else one of our own."""
    if conn.is_in_transaction():
        yield
    else:
        async with conn.transaction():
            yield


async def post(
    conn: Conn,
    kind: TransactionKind,
    postings: Sequence[Posting],
    *,
    reference: str | None = None,
    input_hash: str | None = None,
    reverses_id: int | None = None,
    channel_id: int | None = None,
    product_id: int | None = None,
    quantity: int | None = None,
    memo: str | None = None,
) -> PostedTransaction:
    """Write one transaction of ``postings`` (which must balance) and return it.

    Runs in the caller's database transaction when there is one (the entries then commit
    or roll back with the caller's other writes), else in a transaction of its own.

    Idempotent on ``(kind, reference)``: when a transaction with them exists (or is being
    written concurrently: this call waits for it), the same ``input_hash`` returns it with
    ``replayed=True`` and writes nothing, another raises IdempotencyConflict.
    ``input_hash`` defaults to a fingerprint of the postings and the other arguments.
    ``reverses_id`` names the transaction this one reverses (at most one reversal each;
    AlreadyReversed otherwise; ``reverse`` is the usual way to set it).

    Accounts are opened on first use and locked in id order, so concurrent postings
    cannot deadlock on each other (unless the caller already holds other locks).

    Raises UnbalancedPostings before writing anything; InsufficientBalance when a wallet
    would go below zero, after which the caller's transaction is aborted.
    """
    problem = rules.balance_problem(postings)
    if problem:
        raise UnbalancedPostings(problem)
    digest = input_hash or rules.input_hash(
        kind,
        postings,
        reverses_id=reverses_id,
        channel_id=channel_id,
        product_id=product_id,
        quantity=quantity,
        memo=memo,
    )
    async with _in_transaction(conn):
        row = await conn.fetchrow(
            Q["insert_transaction"],
            kind.value,
            reference,
            digest,
            reverses_id,
            channel_id,
            product_id,
            quantity,
            memo,
        )
        if row is None:
            return await _earlier(conn, kind, reference, reverses_id, digest)
        ids = await account_ids(conn, [p.account for p in postings], lock=True)
        try:
            entries = await conn.fetch(
                Q["insert_entries"],
                row["id"],
                [ids[p.account] for p in postings],
                [p.amount for p in postings],
            )
        except asyncpg.CheckViolationError as error:
            if error.constraint_name == WALLET_NOT_OVERDRAWN:
                debited = {p.account for p in postings if p.amount > 0}
                wallets = [a for a in debited if a.kind is AccountKind.CHANNEL_WALLET]
                raise InsufficientBalance(
                    sorted(wallets, key=lambda a: a.channel_id or 0)
                ) from error
            raise
        accounts = {v: k for k, v in ids.items()}
        written = [
            Entry(e["id"], e["account_id"], accounts[e["account_id"]], e["amount"], e["created_at"])
            for e in entries
        ]
        return _transaction(row, written, replayed=False)


async def _earlier(
    conn: Conn,
    kind: TransactionKind,
    reference: str | None,
    reverses_id: int | None,
    digest: str,
) -> PostedTransaction:
    """The transaction that took this posting's reference or reversal: returned when it
    was made from the same input, raised as a conflict otherwise."""
    row = await conn.fetchrow(Q["conflicting_transaction"], kind.value, reference, reverses_id)
    if row is None:
        raise RuntimeError("a unique conflict without a conflicting transaction")
    first = await _load(conn, row, replayed=True)
    if reference is not None and row["kind"] == kind.value and row["reference"] == reference:
        if row["input_hash"] != digest:
            raise IdempotencyConflict(first)
        return first
    raise AlreadyReversed(first)


async def reverse(
    conn: Conn,
    transaction_id: int,
    kind: TransactionKind = TransactionKind.REFUND,
    reference: str | None = None,
    *,
    memo: str | None = None,
) -> PostedTransaction:
    """Post the exact mirror of transaction ``transaction_id``: every account gets back
    what the original gave it. Once: a later call (also a concurrent one) returns the
    first reversal with ``replayed=True``.

    Raises NotReversible for an unknown transaction or one that is itself a reversal,
    IdempotencyConflict when ``reference`` is taken by another transaction of ``kind``,
    and InsufficientBalance when a wallet no longer holds what the original put in it.
    """
    original = await get_transaction(conn, transaction_id)
    if original is None:
        raise NotReversible(f"no ledger transaction {transaction_id}")
    if original.reverses_id is not None:
        raise NotReversible(f"transaction {transaction_id} is a reversal; post a new one")
    try:
        return await post(
            conn,
            kind,
            mirror(original.postings),
            reference=reference,
            reverses_id=original.id,
            channel_id=original.channel_id,
            product_id=original.product_id,
            quantity=original.quantity,
            memo=memo,
        )
    except AlreadyReversed as done:
        return done.first


# --- statements ----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _snapshot(conn: Conn) -> AsyncIterator[None]:
    """The caller's transaction when there is one, else a read-only repeatable-read one."""
    if conn.is_in_transaction():
        yield
    else:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            yield


async def statement_summary(
    conn: Conn, account: Account, start: datetime, end: datetime
) -> StatementSummary:
    """Opening balance and totals by kind of ``account`` over [start, end), raw, read
    from one snapshot (the caller's transaction when there is one)."""
    async with _snapshot(conn):
        found = await conn.fetch(Q["find_accounts"], *_owner_arrays([account]))
        if not found:
            return StatementSummary(account_id=None, opening=rules.money(Decimal(0)), totals=())
        key: int = found[0]["id"]
        opening: Decimal = await conn.fetchval(Q["statement_opening"], key, start)
        rows = await conn.fetch(Q["statement_totals"], key, start, end)
    totals = tuple(
        KindTotal(
            kind=TransactionKind(r["kind"]),
            debit=rules.money(r["debit"]),
            credit=rules.money(r["credit"]),
            count=r["count"],
        )
        for r in rows
    )
    return StatementSummary(account_id=key, opening=rules.money(opening), totals=totals)


def _statement_row(row: asyncpg.Record, running: Decimal) -> StatementRow:
    return StatementRow(
        entry_id=row["id"],
        transaction_id=row["transaction_id"],
        kind=TransactionKind(row["kind"]),
        amount=row["amount"],
        running=rules.money(running),
        reference=row["reference"],
        memo=row["memo"],
        created_at=row["created_at"],
    )


async def statement_page(
    db: Db, account_id: int, start: datetime, end: datetime, after_id: int, limit: int
) -> list[StatementRow]:
    """Up to ``limit`` entries of the account in [start, end) with id above ``after_id``,
    in id order; ``running`` is the sum of the period's entries up to each one."""
    rows = await db.fetch(Q["statement_page"], account_id, start, end, after_id, limit)
    return [_statement_row(r, r["running"]) for r in rows]


async def statement_rows(
    conn: Conn, account_id: int, start: datetime, end: datetime
) -> AsyncIterator[StatementRow]:
    """Every entry of the account in [start, end) in id order, read through a cursor.

    ``conn`` must be in a transaction (a cursor lives in one); read the summary in the
    same repeatable-read transaction for figures that agree.
    """
    running = Decimal(0)
    cursor = conn.cursor(Q["statement_rows"], account_id, start, end, prefetch=STATEMENT_PREFETCH)
    async for row in cursor:
        running += row["amount"]
        yield _statement_row(row, running)


# --- the whole ledger --------------------------------------------------------------------


async def trial_balance(db: Db) -> list[AccountBalance]:
    """Every account with its raw balance (and the channel of channel accounts); the
    balances sum to zero."""
    rows = await db.fetch(Q["trial_balance"])
    channel_ids = sorted({r["channel_id"] for r in rows if r["channel_id"] is not None})
    found = await db.fetch(Q["channels_by_ids"], channel_ids) if channel_ids else []
    records = {c["id"]: ChannelRecord.from_row(c) for c in found}
    return [
        AccountBalance(
            r["id"], _account(r), rules.money(r["balance"]), records.get(r["channel_id"])
        )
        for r in rows
    ]


async def replay_mismatches(db: Db) -> list[tuple[int, Decimal, Decimal]]:
    """Accounts whose kept balance differs from the sum of their entries, as (account id,
    kept, replayed): always empty unless the ledger was tampered with."""
    rows = await db.fetch(Q["replay_mismatches"])
    return [(r["id"], r["balance"], r["replayed"]) for r in rows]
