"""The ledger: balances, top-ups, statements and the trial balance."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated

import strawberry

from domain.ledger import TransactionKind, as_seen, money, shown_reference
from domain.settlement import AccountKind
from persistence.channels import ChannelRecord
from persistence.ledger import AccountBalance as AccountBalanceRecord
from persistence.ledger import KindTotal, PostedTransaction, StatementRow, StatementSummary
from schema import ids
from schema.channels import Channel
from schema.context import Info
from schema.errors import UserError
from schema.pagination import Connection

LedgerTransactionKind = strawberry.enum(
    TransactionKind,
    name="LedgerTransactionKind",
    description=(
        "What a ledger transaction is: TOP_UP, money into a wallet; SALE, a sale and its"
        " split; REFUND, the mirror of an earlier transaction; ADJUSTMENT, a correction."
    ),
)
LedgerAccountKind = strawberry.enum(
    AccountKind,
    name="LedgerAccountKind",
    description=(
        "CHANNEL_WALLET, a channel's prepaid balance; CHANNEL_EARNINGS, an agent's margins;"
        " SUPPLIER_PAYABLE, owed to a supplier; PLATFORM_REVENUE, the platform's margin;"
        " PAYMENT_CLEARING, money received and not yet settled out."
    ),
)


@strawberry.enum(description="The account of a channel a statement is about.")
class StatementAccount(enum.Enum):
    CHANNEL_WALLET = "CHANNEL_WALLET"
    CHANNEL_EARNINGS = "CHANNEL_EARNINGS"

    @property
    def kind(self) -> AccountKind:
        return AccountKind(self.value)


@strawberry.type(description="A balanced set of ledger entries, written once, never changed.")
class LedgerTransaction:
    record: strawberry.Private[PostedTransaction]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return ids.encode("LedgerTransaction", self.record.id)

    @strawberry.field
    def kind(self) -> LedgerTransactionKind:  # type: ignore[valid-type]
        return self.record.kind

    @strawberry.field(description="The reference the transaction was made with.")
    def reference(self) -> str | None:
        return shown_reference(self.record.kind, self.record.reference)

    @strawberry.field(description="The sum of its debits, which equals that of its credits.")
    def amount(self) -> Decimal:
        return self.record.amount

    @strawberry.field
    def memo(self) -> str | None:
        return self.record.memo

    @strawberry.field
    def created_at(self) -> datetime:
        return self.record.created_at


@strawberry.type(description="One entry of a statement, as the channel sees it.")
class StatementEntry:
    row: strawberry.Private[StatementRow]
    account: strawberry.Private[AccountKind]
    opening: strawberry.Private[Decimal]  # raw

    @strawberry.field
    def id(self) -> strawberry.ID:
        return ids.encode("LedgerEntry", self.row.entry_id)

    @strawberry.field
    def transaction_id(self) -> strawberry.ID:
        return ids.encode("LedgerTransaction", self.row.transaction_id)

    @strawberry.field
    def kind(self) -> LedgerTransactionKind:  # type: ignore[valid-type]
        return self.row.kind

    @strawberry.field(description="Money in positive, money out negative.")
    def amount(self) -> Decimal:
        return as_seen(self.account, self.row.amount)

    @strawberry.field(description="The balance after this entry: the opening plus the entries.")
    def balance_after(self) -> Decimal:
        return as_seen(self.account, self.opening + self.row.running)

    @strawberry.field
    def reference(self) -> str | None:
        return shown_reference(self.row.kind, self.row.reference)

    @strawberry.field
    def memo(self) -> str | None:
        return self.row.memo

    @strawberry.field
    def created_at(self) -> datetime:
        return self.row.created_at


@strawberry.type(description="A statement's entries of one transaction kind.")
class StatementTotal:
    total: strawberry.Private[KindTotal]

    @strawberry.field
    def kind(self) -> LedgerTransactionKind:  # type: ignore[valid-type]
        return self.total.kind

    @strawberry.field(description="Money out of the account (0 or more).")
    def debit(self) -> Decimal:
        return self.total.debit

    @strawberry.field(description="Money into the account (0 or more).")
    def credit(self) -> Decimal:
        return self.total.credit

    @strawberry.field(description="credit - debit: what the kind added to the balance.")
    def net(self) -> Decimal:
        return money(self.total.credit - self.total.debit)

    @strawberry.field(description="How many entries.")
    def count(self) -> int:
        return self.total.count


@dataclass(frozen=True, slots=True)
class StatementRecord:
    channel: ChannelRecord
    account: StatementAccount
    start: datetime
    end: datetime
    summary: StatementSummary


@strawberry.type(
    description=(
        "An account's movements over [from, to), as its channel sees them: money it holds"
        " is positive. closing = opening + the sum of the entries' amounts."
    )
)
class Statement:
    record: strawberry.Private[StatementRecord]

    @strawberry.field
    def channel(self) -> Channel:
        return Channel(record=self.record.channel)

    @strawberry.field
    def account(self) -> StatementAccount:
        return self.record.account

    @strawberry.field(name="from", description="The start of the period (included).")
    def start(self) -> datetime:
        return self.record.start

    @strawberry.field(name="to", description="The end of the period (excluded).")
    def end(self) -> datetime:
        return self.record.end

    @strawberry.field(description="The balance at `from`.")
    def opening(self) -> Decimal:
        return as_seen(self.record.account.kind, self.record.summary.opening)

    @strawberry.field(description="The balance at `to`.")
    def closing(self) -> Decimal:
        return as_seen(self.record.account.kind, self.record.summary.closing)

    @strawberry.field(description="The period's entries by transaction kind.")
    def totals(self) -> list[StatementTotal]:
        return [StatementTotal(total=t) for t in self.record.summary.totals]

    @strawberry.field(description="The period's entries, oldest first.")
    async def entries(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[StatementEntry]:
        from resolvers.ledger import resolve_statement_entries

        return await resolve_statement_entries(info, self.record, first, after)


@strawberry.type(description="One ledger account and its balance.")
class AccountBalance:
    record: strawberry.Private[AccountBalanceRecord]

    @strawberry.field
    def kind(self) -> LedgerAccountKind:  # type: ignore[valid-type]
        return self.record.account.kind

    @strawberry.field(description="The channel of a wallet or earnings account.")
    def channel(self) -> Channel | None:
        return Channel(record=self.record.channel) if self.record.channel else None

    @strawberry.field(description="The supplier of a supplier payable, when it names one.")
    def supplier_id(self) -> strawberry.ID | None:
        supplier = self.record.account.supplier_id
        return ids.encode("Supplier", supplier) if supplier is not None else None

    @strawberry.field(
        description=(
            "The raw balance: debits - credits. Wallets, earnings, payables and revenue are"
            " credit accounts, so theirs is negative; all balances sum to zero."
        )
    )
    def balance(self) -> Decimal:
        return self.record.balance

    @strawberry.field(description="The balance as the account's owner reads it.")
    def display_balance(self) -> Decimal:
        return as_seen(self.record.account.kind, self.record.balance)


@strawberry.type(description="Every ledger account's balance; they sum to zero.")
class TrialBalance:
    total: Decimal = strawberry.field(description="The sum of the raw balances: zero.")
    accounts: list[AccountBalance]


@strawberry.input
class TopUpBalanceInput:
    channel_id: strawberry.ID = strawberry.field(
        description="A channel below the caller's own (not the caller's own)."
    )
    amount: Decimal = strawberry.field(description="Above 0, whole cents.")
    reference: str = strawberry.field(
        description=(
            "The caller's reference for this top-up (1 to 100 characters): retrying with"
            " the same reference and input returns the first result."
        )
    )
    memo: str | None = strawberry.field(default=None, description="Up to 500 characters.")


@strawberry.type
class TopUpBalancePayload:
    channel: Channel | None = None
    transaction: LedgerTransaction | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class LedgerQuery:
    @strawberry.field(
        description=(
            "The statement of a channel of the caller's subtree (own when `channelId` is"
            " omitted) over [from, to); also as CSV at"
            " GET /exports/statements/{channelId}.csv?from=&to=&account=."
        )
    )
    async def statement(
        self,
        info: Info,
        channel_id: strawberry.ID | None = None,
        *,
        start: Annotated[datetime, strawberry.argument(name="from")],
        end: Annotated[datetime, strawberry.argument(name="to")],
        account: StatementAccount = StatementAccount.CHANNEL_WALLET,
    ) -> Statement | None:
        from resolvers import ledger

        return await ledger.statement(info, channel_id, start, end, account)

    @strawberry.field(description="Every ledger account's balance and their sum (platform only).")
    async def trial_balance(self, info: Info) -> TrialBalance:
        from resolvers import ledger

        return await ledger.trial_balance(info)


@strawberry.type
class LedgerMutation:
    @strawberry.mutation(
        description=(
            "Move money into the wallet of a channel below the caller's: from the caller's"
            " own wallet, or for the platform from payments received. Owners and finance."
        )
    )
    async def top_up_balance(self, info: Info, input: TopUpBalanceInput) -> TopUpBalancePayload:
        from resolvers import ledger

        return await ledger.top_up_balance(info, input)
