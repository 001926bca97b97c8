"""Settling a sale: its price chain, its split and its ledger transaction, in one go.

This is what ``placeOrder`` calls inside its database transaction, so the order, the
codes and the money commit or roll back together.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from domain import settlement
from domain.ledger import TransactionKind
from domain.pricing import PriceChain, resolve
from domain.settlement import Account
from persistence import ledger, pricing, split_rules
from persistence.ledger import Conn, PostedTransaction
from persistence.queries import queries

Q = queries("sales")


class UnknownProduct(Exception):
    pass


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
    """Post the sale of ``quantity`` of a product to the channel at ``buyer_path``.

    The buyer pays its own purchase price, from its wallet unless ``paid_from`` names
    another account (a payment received). Raises UnknownProduct,
    domain.pricing.PriceBelowCost when the chain became inverted since prices were set,
    persistence.ledger.InsufficientBalance when the wallet cannot pay, and
    persistence.ledger.IdempotencyConflict when ``reference`` settled another sale.
    """
    path = await pricing.price_path(conn, buyer_path, product_id)
    if path is None:
        raise UnknownProduct(product_id)
    chain = resolve(path.cost, path.base_price, path.levels)
    rule = await split_rules.rule_for_sale(conn, product_id, buyer_path)
    supplier_id = await conn.fetchval(Q["product_supplier"], product_id)
    postings = settlement.sale(
        chain,
        quantity,
        supplier_id,
        paid_from or settlement.wallet(buyer_id),
        rule.ratio if rule else None,
    )
    transaction = await ledger.post(
        conn,
        TransactionKind.SALE,
        postings,
        reference=reference,
        channel_id=buyer_id,
        product_id=product_id,
        quantity=quantity,
    )
    return SaleSettled(transaction, chain)


async def refund(conn: Conn, sale_id: int, reference: str) -> PostedTransaction:
    """Post the exact mirror of a sale's split (once, however often it is asked)."""
    return await ledger.reverse(conn, sale_id, TransactionKind.REFUND, reference)
