"""Split settlement: who gets what of a sale, as balanced ledger postings.

Amounts are signed like the ledger's entries: a debit is positive, a credit negative, so
the postings of any sale, top-up or refund sum to exactly zero.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from domain.money import CENT, HUNDRED
from domain.pricing import PriceChain


class AccountKind(enum.StrEnum):
    CHANNEL_WALLET = "CHANNEL_WALLET"  # a channel's prepaid balance (owed to it)
    CHANNEL_EARNINGS = "CHANNEL_EARNINGS"  # an agent's margins (owed to it)
    SUPPLIER_PAYABLE = "SUPPLIER_PAYABLE"  # owed to a supplier for goods sold
    PLATFORM_REVENUE = "PLATFORM_REVENUE"  # the platform's own margin
    PAYMENT_CLEARING = "PAYMENT_CLEARING"  # money received, not yet settled out


@dataclass(frozen=True, slots=True)
class Account:
    kind: AccountKind
    channel_id: int | None = None
    supplier_id: int | None = None


@dataclass(frozen=True, slots=True)
class Posting:
    account: Account
    amount: Decimal


class SplitKind(enum.StrEnum):
    PRICE_CHAIN = "PRICE_CHAIN"
    RATIO = "RATIO"


@dataclass(frozen=True, slots=True)
class RatioRule:
    """Preset shares of the sale (预设比例), in percent: supplier, platform, and the agents
    by level from level 1 down. Shares of levels the buyer's path does not have go to the
    platform."""

    supplier_percent: Decimal
    platform_percent: Decimal
    agent_percents: tuple[Decimal, ...] = ()

    def problem(self) -> str | None:
        shares = [self.supplier_percent, self.platform_percent, *self.agent_percents]
        if not all(s.is_finite() and 0 <= s <= HUNDRED for s in shares) or any(
            s != s.quantize(Decimal("0.001")) for s in shares
        ):
            return "Shares are percentages of 0 or more, with at most 3 decimals."
        if sum(shares) != HUNDRED:
            return f"Shares must add up to 100, not {sum(shares)}."
        return None


def wallet(channel_id: int) -> Account:
    return Account(AccountKind.CHANNEL_WALLET, channel_id=channel_id)


def earnings(channel_id: int) -> Account:
    return Account(AccountKind.CHANNEL_EARNINGS, channel_id=channel_id)


def supplier_payable(supplier_id: int | None) -> Account:
    return Account(AccountKind.SUPPLIER_PAYABLE, supplier_id=supplier_id)


PLATFORM_REVENUE = Account(AccountKind.PLATFORM_REVENUE)
PAYMENT_CLEARING = Account(AccountKind.PAYMENT_CLEARING)


def sale(
    chain: PriceChain,
    quantity: int,
    supplier_id: int | None,
    paid_from: Account,
    rule: RatioRule | None = None,
) -> list[Posting]:
    """The postings of a sale to the last channel of ``chain``, paid from ``paid_from``.

    Without a rule, PRICE_CHAIN: the supplier gets the cost, the platform its margin over
    the cost, each agent the margin between its price and its child's on the path.
    """
    if len(chain.prices) < 2:
        raise ValueError("the buyer must be a channel below the platform")
    if quantity < 1:
        raise ValueError("a sale has a quantity of at least 1")
    total = chain.price * quantity
    agents = [earnings(c) for c in chain.channel_ids[1:-1]]
    if rule is None:
        prices = chain.prices
        shares = [prices[0] * quantity, (prices[1] - prices[0]) * quantity] + [
            (prices[k + 1] - prices[k]) * quantity for k in range(1, len(prices) - 1)
        ]
    else:
        percents = list(rule.agent_percents[: len(agents)])
        percents += [Decimal(0)] * (len(agents) - len(percents))
        unused = sum(rule.agent_percents[len(agents) :], Decimal(0))
        shares = allocate(total, [rule.supplier_percent, rule.platform_percent + unused, *percents])
    receivers = [supplier_payable(supplier_id), PLATFORM_REVENUE, *agents]
    postings = [Posting(paid_from, total)]
    postings += [Posting(a, -s) for a, s in zip(receivers, shares, strict=True) if s]
    return postings


def top_up(channel_id: int, amount: Decimal, source: Account) -> list[Posting]:
    """Money into a channel's wallet: from the platform's clearing or a parent's wallet."""
    return [Posting(source, amount), Posting(wallet(channel_id), -amount)]


def mirror(postings: Sequence[Posting]) -> list[Posting]:
    """The exact reversal: every account gets back what the original gave it."""
    return [Posting(p.account, -p.amount) for p in postings]


def allocate(total: Decimal, percents: Sequence[Decimal]) -> list[Decimal]:
    """Split ``total`` by ``percents`` (summing to 100) into cents that sum to ``total``.

    Each part is rounded down to the cent, and the cents left over go one each to the
    parts with the largest remainders, earlier parts first on ties: deterministic, and
    no part is ever more than a cent from its exact share.
    """
    exact = [total * p / HUNDRED for p in percents]
    parts = [e.quantize(CENT, rounding=ROUND_DOWN) for e in exact]
    left = int((total - sum(parts, Decimal(0))) / CENT)
    order = sorted(range(len(parts)), key=lambda i: (-(exact[i] - parts[i]), i))
    for i in order[:left]:
        parts[i] += CENT
    return parts
