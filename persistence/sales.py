"""Settling a sale: its price chain, its split and its ledger transaction, in one go.

This is what ``placeOrder`` calls inside its database transaction, so the order, the
codes and the money commit or roll back together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg

from domain import ledger as ledger_rules
from domain import settlement
from domain.ledger import TransactionKind
from domain.pricing import PriceChain, resolve
from domain.settlement import Account, Posting
from persistence import ledger, pricing, split_rules
from persistence.ledger import Conn, PostedTransaction
from persistence.pricing import PricePath
from persistence.queries import queries
from persistence.split_rules import SplitRuleRecord
from persistence.types import Db

Q = queries("sales")


class UnknownProduct(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Quote:
    """A sale worked out before it is written: its price chain and its split, and the
    fingerprint of its ledger transaction (the same for the same sale, see
    domain.ledger.input_hash)."""

    buyer_id: int
    product_id: int
    quantity: int
    chain: PriceChain
    postings: tuple[Posting, ...]
    digest: str

    @property
    def total(self) -> Decimal:
        return self.chain.price * self.quantity


@dataclass(frozen=True, slots=True)
class SaleSettled:
    transaction: PostedTransaction
    chain: PriceChain

    @property
    def unit_price(self) -> Decimal:
        return self.chain.price

    @property
    def total(self) -> Decimal:
        return self.transaction.amount


@dataclass(frozen=True, slots=True)
class SaleTerms:
    """What a sale of one product to one channel depends on besides the quantity: its
    price path, split rule and supplier. They change only through mutations, so callers
    may cache them (see persistence.read_cache)."""

    product_id: int
    path: PricePath
    rule: SplitRuleRecord | None
    supplier_id: int | None


async def terms(db: Db, buyer_path: str, product_id: int) -> SaleTerms:
    """Read the terms of a sale to the channel at ``buyer_path``. Raises UnknownProduct."""
    path, rule, supplier_id = await _sale_inputs(db, buyer_path, product_id)
    if path is None:
        raise UnknownProduct(product_id)
    return SaleTerms(product_id, path, rule, supplier_id)


def quote_from(
    sale_terms: SaleTerms, *, buyer_id: int, quantity: int, paid_from: Account | None = None
) -> Quote:
    """Work out a sale: the buyer pays its own purchase price, from its wallet unless
    ``paid_from`` names another account (a payment received). Raises
    domain.pricing.PriceBelowCost when the chain became inverted since prices were set."""
    path = sale_terms.path
    chain = resolve(path.cost, path.base_price, path.levels)
    postings = settlement.sale(
        chain,
        quantity,
        sale_terms.supplier_id,
        paid_from or settlement.wallet(buyer_id),
        sale_terms.rule.ratio if sale_terms.rule else None,
    )
    digest = ledger_rules.input_hash(
        TransactionKind.SALE,
        postings,
        channel_id=buyer_id,
        product_id=sale_terms.product_id,
        quantity=quantity,
    )
    return Quote(buyer_id, sale_terms.product_id, quantity, chain, tuple(postings), digest)


async def _sale_inputs(db: Db, buyer_path: str, product_id: int) -> tuple[Any, Any, Any]:
    """The price path, the split rule and the supplier: side by side from a pool, one
    after another on a connection (which runs one query at a time)."""
    reads: tuple[Callable[[], Awaitable[Any]], ...] = (
        lambda: pricing.price_path(db, buyer_path, product_id),
        lambda: split_rules.rule_for_sale(db, product_id, buyer_path),
        lambda: db.fetchval(Q["product_supplier"], product_id),
    )
    if isinstance(db, asyncpg.Pool):
        path, rule, supplier = await asyncio.gather(*(read() for read in reads))
        return path, rule, supplier
    return (await reads[0](), await reads[1](), await reads[2]())


async def post(conn: Conn, sale: Quote, reference: str) -> SaleSettled:
    """Write a quoted sale. Raises persistence.ledger.InsufficientBalance when the wallet
    cannot pay, and persistence.ledger.IdempotencyConflict when ``reference`` settled
    another sale."""
    transaction = await ledger.post(
        conn,
        TransactionKind.SALE,
        sale.postings,
        reference=reference,
        channel_id=sale.buyer_id,
        product_id=sale.product_id,
        quantity=sale.quantity,
    )
    return SaleSettled(transaction, sale.chain)


async def settle(
    conn: Conn,
    *,
    buyer_id: int,
    buyer_path: str,
    product_id: int,
    quantity: int,
    reference: str,
    paid_from: Account | None = None,
) -> SaleSettled:
    """Quote and post a sale in the caller's transaction (see ``quote_from`` and ``post``)."""
    sale_terms = await terms(conn, buyer_path, product_id)
    sale = quote_from(sale_terms, buyer_id=buyer_id, quantity=quantity, paid_from=paid_from)
    return await post(conn, sale, reference)


async def refund(conn: Conn, sale_id: int, reference: str) -> PostedTransaction:
    """Post the exact mirror of a sale's split (once, however often it is asked)."""
    return await ledger.reverse(conn, sale_id, TransactionKind.REFUND, reference)
