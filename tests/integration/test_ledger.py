"""The ledger against real PostgreSQL: what the database itself refuses, and postings
under concurrency (overdrafts, retries, reversals)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from domain.ledger import TransactionKind, as_seen
from domain.settlement import (
    PAYMENT_CLEARING,
    PLATFORM_REVENUE,
    AccountKind,
    Posting,
    top_up,
    wallet,
)
from persistence import channels, ledger
from persistence.database import create_pool
from persistence.ledger import (
    IdempotencyConflict,
    InsufficientBalance,
    NotReversible,
    UnbalancedPostings,
)

D = Decimal
FAR_PAST = datetime(2000, 1, 1, tzinfo=UTC)
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool[Any]]:
    pool = await create_pool(database_url, 40)
    yield pool
    await pool.close()


async def new_channel(db: asyncpg.Connection[Any], name: str) -> int:
    root = await channels.root(db)
    return (await channels.insert_child(db, root.id, name, [], [])).id


def sale_of(channel_id: int, amount: str) -> list[Posting]:
    """A sale-like debit: the channel's wallet pays the platform."""
    return [Posting(wallet(channel_id), D(amount)), Posting(PLATFORM_REVENUE, -D(amount))]


async def ledger_rows(db: asyncpg.Connection[Any]) -> list[Any]:
    """Everything the ledger holds: what a refused posting must leave as it was."""
    return [
        await db.fetch("SELECT * FROM ledger_transactions ORDER BY id"),
        await db.fetch("SELECT * FROM ledger_entries ORDER BY id"),
        await db.fetch("SELECT id, kind, channel_id, balance FROM ledger_accounts ORDER BY id"),
    ]


async def write_in_sql(
    db: asyncpg.Connection[Any],
    kind: str,
    entries: list[tuple[int, str]],
    *,
    per_entry: bool = False,
) -> None:
    """A transaction and its entries written with plain SQL, bypassing the Python API:
    the entries in one statement, or with ``per_entry`` one statement each."""
    async with db.transaction():
        tx = await db.fetchval(
            "INSERT INTO ledger_transactions (kind) VALUES ($1) RETURNING id", kind
        )
        if per_entry:
            for account, amount in entries:
                await db.execute(
                    "INSERT INTO ledger_entries (transaction_id, account_id, amount)"
                    " VALUES ($1, $2, $3::numeric)",
                    tx,
                    account,
                    amount,
                )
            return
        await db.execute(
            "INSERT INTO ledger_entries (transaction_id, account_id, amount)"
            " SELECT $1, a, m FROM unnest($2::bigint[], $3::numeric[]) AS u (a, m)",
            tx,
            [account for account, _ in entries],
            [Decimal(amount) for _, amount in entries],
        )


async def assert_books_balance(db: asyncpg.Connection[Any]) -> None:
    accounts = await ledger.trial_balance(db)
    assert sum((a.balance for a in accounts), D(0)) == 0
    assert await ledger.replay_mismatches(db) == []


# --- what the database refuses, whoever writes -------------------------------------------


@pytest.mark.parametrize(
    ("amounts", "per_entry"),
    [
        # entries that do not sum to zero, written together
        (("10.00", "-9.99"), False),
        # entries that would sum to zero, written one statement at a time, as if the books
        # could be out of balance until the commit: a transaction's entries come together
        (("10.00", "-10.00"), True),
    ],
    ids=["unbalanced", "one-entry-at-a-time"],
)
async def test_database_refuses_an_unbalanced_transaction_written_in_plain_sql(
    db: asyncpg.Connection[Any], amounts: tuple[str, str], per_entry: bool
) -> None:
    # Given a channel with a wallet account
    a = await new_channel(db, "A")
    account = await ledger.account_id(db, wallet(a))
    clearing = await ledger.account_id(db, PAYMENT_CLEARING)
    before = await ledger_rows(db)

    # When SQL writes a transaction that is out of balance after a statement
    # Then the database refuses it
    with pytest.raises(asyncpg.CheckViolationError, match="does not balance"):
        await write_in_sql(
            db,
            "ADJUSTMENT",
            [(clearing, amounts[0]), (account, amounts[1])],
            per_entry=per_entry,
        )

    # And nothing of it remains
    assert await ledger_rows(db) == before


async def test_concurrent_writers_in_plain_sql_cannot_unbalance_the_ledger(
    db: asyncpg.Connection[Any], pool: asyncpg.Pool[Any]
) -> None:
    # Given a channel's wallet and the clearing account
    a = await new_channel(db, "A")
    account = await ledger.account_id(db, wallet(a))
    clearing = await ledger.account_id(db, PAYMENT_CLEARING)
    before = await ledger_rows(db)

    # When 60 writers post at once: a third balanced, a third out of balance in one
    # statement, a third balanced only across two statements
    async def writer(n: int) -> str:
        amounts = [("10.00", "-10.00"), ("10.00", "-9.99"), ("10.00", "-10.00")][n % 3]
        async with pool.acquire() as conn:
            try:
                await write_in_sql(
                    conn,
                    "ADJUSTMENT",
                    [(clearing, amounts[0]), (account, amounts[1])],
                    per_entry=n % 3 == 2,
                )
            except asyncpg.CheckViolationError as refused:
                return "refused" if "does not balance" in str(refused) else str(refused)
        return "written"

    outcomes = await asyncio.gather(*(writer(n) for n in range(60)))

    # Then only the balanced statements stand, and every transaction and the books balance
    assert outcomes == ["written", "refused", "refused"] * 20
    transactions, entries, _ = await ledger_rows(db)
    assert len(transactions) == len(before[0]) + 20
    assert len(entries) == len(before[1]) + 40
    assert (
        await db.fetchval(
            "SELECT count(*) FROM (SELECT transaction_id FROM ledger_entries"
            " GROUP BY transaction_id HAVING sum(amount) <> 0) AS unbalanced"
        )
        == 0
    )
    await assert_books_balance(db)
    assert as_seen(AccountKind.CHANNEL_WALLET, await ledger.balance(db, wallet(a))) == D("200.00")


async def test_database_refuses_a_wallet_overdraft_written_in_plain_sql(
    db: asyncpg.Connection[Any],
) -> None:
    # Given a channel whose wallet holds 5.00
    a = await new_channel(db, "A")
    await ledger.post(db, TransactionKind.TOP_UP, top_up(a, D("5.00"), PAYMENT_CLEARING))
    revenue = await ledger.account_id(db, PLATFORM_REVENUE)
    account = await ledger.account_id(db, wallet(a))
    before = await ledger_rows(db)

    # When SQL debits it by 5.01, balanced
    # Then the wallet's check refuses it
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await write_in_sql(db, "SALE", [(account, "5.01"), (revenue, "-5.01")])
    assert refused.value.constraint_name == "wallet_not_overdrawn"
    assert await ledger_rows(db) == before
    assert as_seen(AccountKind.CHANNEL_WALLET, await ledger.balance(db, wallet(a))) == D("5.00")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_entries SET amount = amount * 2",
        "DELETE FROM ledger_entries",
        "TRUNCATE ledger_entries CASCADE",
        "UPDATE ledger_transactions SET memo = 'changed'",
        "DELETE FROM ledger_transactions",
        "TRUNCATE ledger_transactions CASCADE",
    ],
)
async def test_entries_and_transactions_are_append_only(
    db: asyncpg.Connection[Any], statement: str
) -> None:
    # Given a posted top-up
    a = await new_channel(db, "A")
    await ledger.post(db, TransactionKind.TOP_UP, top_up(a, D("20.00"), PAYMENT_CLEARING))
    before = await ledger_rows(db)

    # When plain SQL changes, deletes or truncates ledger rows
    # Then the database refuses
    with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
        await db.execute(statement)

    # And the ledger is as it was
    assert await ledger_rows(db) == before


async def test_a_wallet_balance_moves_only_through_entries(
    db: asyncpg.Connection[Any],
) -> None:
    # Given a wallet topped up with 20.00
    a = await new_channel(db, "A")
    await ledger.post(db, TransactionKind.TOP_UP, top_up(a, D("20.00"), PAYMENT_CLEARING))
    before = await ledger_rows(db)

    # When plain SQL rewrites its balance
    # Then the database refuses, and nothing changed
    with pytest.raises(asyncpg.RestrictViolationError, match="only through ledger entries"):
        await db.execute("UPDATE ledger_accounts SET balance = -1000000")
    assert await ledger_rows(db) == before


async def test_post_refuses_postings_that_do_not_balance(db: asyncpg.Connection[Any]) -> None:
    # Given a channel
    a = await new_channel(db, "A")
    before = await ledger_rows(db)

    # When postings that do not balance, or hold a zero or a fraction of a cent, are posted
    bad = [
        [Posting(PAYMENT_CLEARING, D("1.00")), Posting(wallet(a), D("-0.99"))],
        [Posting(PAYMENT_CLEARING, D("0")), Posting(wallet(a), D("0"))],
        [Posting(PAYMENT_CLEARING, D("0.005")), Posting(wallet(a), D("-0.005"))],
        [],
    ]
    for postings in bad:
        # Then each is refused before anything is written
        with pytest.raises(UnbalancedPostings):
            await ledger.post(db, TransactionKind.ADJUSTMENT, postings)
    assert await ledger_rows(db) == before


# --- postings ----------------------------------------------------------------------------


async def test_a_posting_commits_and_rolls_back_with_the_callers_transaction(
    db: asyncpg.Connection[Any],
) -> None:
    # Given a channel
    a = await new_channel(db, "A")
    before = await ledger_rows(db)

    # When a top-up is posted in a transaction that then fails
    async def post_then_fail() -> None:
        async with db.transaction():
            posted = await ledger.post(
                db, TransactionKind.TOP_UP, top_up(a, D("7.00"), PAYMENT_CLEARING)
            )
            assert posted.amount == D("7.00")
            raise RuntimeError("a later failure")

    with pytest.raises(RuntimeError, match="later failure"):
        await post_then_fail()

    # Then nothing of it remains
    assert await ledger_rows(db) == before

    # And posted in one that commits, it stays, with its entries as posted
    async with db.transaction():
        posted = await ledger.post(
            db,
            TransactionKind.TOP_UP,
            top_up(a, D("7.00"), PAYMENT_CLEARING),
            reference="r1",
            channel_id=a,
            memo="first",
        )
    stored = await ledger.get_transaction(db, posted.id)
    assert stored is not None
    assert stored.postings == posted.postings == top_up(a, D("7.00"), PAYMENT_CLEARING)
    assert (stored.reference, stored.channel_id, stored.memo) == ("r1", a, "first")
    assert await ledger.balance(db, wallet(a)) == D("-7.00")
    assert await ledger.balance(db, PAYMENT_CLEARING) == D("7.00")
    await assert_books_balance(db)


async def test_two_hundred_concurrent_debits_on_a_wallet_that_can_pay_for_150(
    db: asyncpg.Connection[Any], pool: asyncpg.Pool[Any]
) -> None:
    # Given a wallet holding exactly 150.00
    a = await new_channel(db, "A")
    await ledger.post(db, TransactionKind.TOP_UP, top_up(a, D("150.00"), PAYMENT_CLEARING))

    # When 200 debits of 1.00 run at once, each in its own database transaction
    async def debit(i: int) -> str:
        async with pool.acquire() as conn:
            try:
                async with conn.transaction():
                    await ledger.post(
                        conn, TransactionKind.SALE, sale_of(a, "1.00"), reference=f"sale-{i}"
                    )
            except InsufficientBalance as refused:
                return f"refused {refused.wallets == (wallet(a),)}"
        return "paid"

    outcomes = await asyncio.gather(*(debit(i) for i in range(200)))

    # Then exactly 150 succeed and 50 are refused
    assert outcomes.count("paid") == 150
    assert outcomes.count("refused True") == 50

    # And the wallet ends at zero, having never been below it
    assert await ledger.balance(db, wallet(a)) == D("0.00")
    assert await db.fetchval("SELECT count(*) FROM ledger_transactions WHERE kind = 'SALE'") == 150
    account = await ledger.account_id(db, wallet(a))
    async with db.transaction():
        seen = [
            as_seen(AccountKind.CHANNEL_WALLET, row.running)
            async for row in ledger.statement_rows(db, account, FAR_PAST, FAR_FUTURE)
        ]
    assert len(seen) == 151
    assert min(seen) == D("0.00")
    assert seen[-1] == D("0.00")
    await assert_books_balance(db)


async def test_twenty_concurrent_identical_posts_make_one_transaction(
    db: asyncpg.Connection[Any], pool: asyncpg.Pool[Any]
) -> None:
    # Given a channel
    a = await new_channel(db, "A")

    # When the same top-up with the same reference is posted 20 times at once
    async def attempt() -> ledger.PostedTransaction:
        async with pool.acquire() as conn:
            return await ledger.post(
                conn,
                TransactionKind.TOP_UP,
                top_up(a, D("12.34"), PAYMENT_CLEARING),
                reference="invoice-1",
            )

    results = await asyncio.gather(*(attempt() for _ in range(20)))

    # Then all get the one transaction, 19 of them as a replay
    assert len({r.id for r in results}) == 1
    assert sorted(r.replayed for r in results) == [False] + [True] * 19
    assert all(r.postings == results[0].postings for r in results)
    assert await db.fetchval("SELECT count(*) FROM ledger_transactions") == 1
    assert await ledger.balance(db, wallet(a)) == D("-12.34")

    # And the same postings in another order or spelling are the same input
    again = await ledger.post(
        db,
        TransactionKind.TOP_UP,
        list(reversed(top_up(a, D("12.340"), PAYMENT_CLEARING))),
        reference="invoice-1",
    )
    assert (again.id, again.replayed) == (results[0].id, True)
    await assert_books_balance(db)


async def test_a_reference_reused_for_other_input_is_a_conflict(
    db: asyncpg.Connection[Any],
) -> None:
    # Given a top-up with reference invoice-1
    a = await new_channel(db, "A")
    b = await new_channel(db, "B")
    first = await ledger.post(
        db, TransactionKind.TOP_UP, top_up(a, D("10.00"), PAYMENT_CLEARING), reference="invoice-1"
    )
    before = await ledger_rows(db)

    # When the reference comes again with another amount, or for another channel
    for postings in (
        top_up(a, D("10.01"), PAYMENT_CLEARING),
        top_up(b, D("10.00"), PAYMENT_CLEARING),
    ):
        async with db.transaction():
            with pytest.raises(IdempotencyConflict) as conflict:
                await ledger.post(db, TransactionKind.TOP_UP, postings, reference="invoice-1")
            # Then it is refused naming the first, and the transaction is still usable
            assert conflict.value.first.id == first.id
            assert await db.fetchval("SELECT 1") == 1

    # And nothing changed, while the same reference of another kind is independent
    assert await ledger_rows(db) == before
    other = await ledger.post(
        db,
        TransactionKind.ADJUSTMENT,
        top_up(a, D("1.00"), PAYMENT_CLEARING),
        reference="invoice-1",
    )
    assert not other.replayed


async def test_reverse_posts_the_mirror_once_under_concurrency(
    db: asyncpg.Connection[Any], pool: asyncpg.Pool[Any]
) -> None:
    # Given a wallet topped up with 50.00 that paid a sale of 20.00
    a = await new_channel(db, "A")
    await ledger.post(db, TransactionKind.TOP_UP, top_up(a, D("50.00"), PAYMENT_CLEARING))
    sale = await ledger.post(db, TransactionKind.SALE, sale_of(a, "20.00"), channel_id=a)

    # When 20 refunds of the sale run at once
    async def refund() -> ledger.PostedTransaction:
        async with pool.acquire() as conn:
            return await ledger.reverse(conn, sale.id)

    results = await asyncio.gather(*(refund() for _ in range(20)))

    # Then one reversal exists, posting the exact mirror, and every call returns it
    assert len({r.id for r in results}) == 1
    reversal = results[0]
    assert sum(not r.replayed for r in results) == 1
    assert reversal.kind is TransactionKind.REFUND
    assert reversal.reverses_id == sale.id
    assert reversal.channel_id == a
    assert sorted(reversal.postings, key=str) == sorted(
        [Posting(p.account, -p.amount) for p in sale.postings], key=str
    )
    assert await db.fetchval("SELECT count(*) FROM ledger_transactions WHERE kind = 'REFUND'") == 1
    assert await ledger.balance(db, wallet(a)) == D("-50.00")
    assert await ledger.balance(db, PLATFORM_REVENUE) == D("0.00")

    # And a reversal is not reversed again, nor is an unknown transaction
    with pytest.raises(NotReversible):
        await ledger.reverse(db, reversal.id)
    with pytest.raises(NotReversible):
        await ledger.reverse(db, 987654)
    await assert_books_balance(db)


async def test_reversing_a_top_up_already_spent_is_insufficient_balance(
    db: asyncpg.Connection[Any],
) -> None:
    # Given a top-up of 10.00 of which 6.00 were spent
    a = await new_channel(db, "A")
    topped = await ledger.post(db, TransactionKind.TOP_UP, top_up(a, D("10.00"), PAYMENT_CLEARING))
    await ledger.post(db, TransactionKind.SALE, sale_of(a, "6.00"))
    before = await ledger_rows(db)

    # When the top-up is reversed
    # Then the wallet cannot give it back, and nothing changes
    with pytest.raises(InsufficientBalance):
        await ledger.reverse(db, topped.id, TransactionKind.ADJUSTMENT)
    assert await ledger_rows(db) == before


async def test_statement_figures_add_up(db: asyncpg.Connection[Any]) -> None:
    # Given top-ups and sales before and inside a period
    a = await new_channel(db, "A")
    await ledger.post(db, TransactionKind.TOP_UP, top_up(a, D("100.00"), PAYMENT_CLEARING))
    await ledger.post(db, TransactionKind.SALE, sale_of(a, "30.00"))
    start = await db.fetchval("SELECT clock_timestamp()")
    await ledger.post(db, TransactionKind.TOP_UP, top_up(a, D("5.50"), PAYMENT_CLEARING))
    await ledger.post(db, TransactionKind.SALE, sale_of(a, "0.25"))
    await ledger.post(db, TransactionKind.SALE, sale_of(a, "1.25"))
    end = await db.fetchval("SELECT clock_timestamp()") + timedelta(seconds=1)

    # When the wallet's statement of the period is read
    account = await ledger.account_id(db, wallet(a))
    summary = await ledger.statement_summary(db, wallet(a), start, end)
    page1 = await ledger.statement_page(db, account, start, end, 0, 2)
    page2 = await ledger.statement_page(db, account, start, end, page1[-1].entry_id, 2)

    # Then the opening holds what came before, the totals what came within
    assert summary.opening == D("-70.00")
    assert [(t.kind, t.debit, t.credit, t.count) for t in summary.totals] == [
        (TransactionKind.SALE, D("1.50"), D("0.00"), 2),
        (TransactionKind.TOP_UP, D("0.00"), D("5.50"), 1),
    ]
    assert summary.closing == D("-74.00") == await ledger.balance(db, wallet(a))

    # And the pages run the balance on from the opening to the closing
    rows = page1 + page2
    assert [r.amount for r in rows] == [D("-5.50"), D("0.25"), D("1.25")]
    assert [summary.opening + r.running for r in rows] == [D("-75.50"), D("-75.25"), D("-74.00")]

    # And an account never posted to has an empty statement
    b = await new_channel(db, "B")
    empty = await ledger.statement_summary(db, wallet(b), start, end)
    assert (empty.account_id, empty.opening, empty.totals, empty.closing) == (
        None,
        D("0.00"),
        (),
        D("0.00"),
    )
