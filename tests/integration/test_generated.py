"""Generated codes issued inside an order's transaction, stored like imported ones."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from domain import codegen, crypto
from domain.codes import code_aad
from persistence import codes, generated
from persistence.keyring import Keyring

MASTER = secrets.token_bytes(32)


async def _product(db: asyncpg.Connection[Any], name: str = "Generated VIP") -> int:
    product_id: int = await db.fetchval(
        "INSERT INTO products (name, category, face_value, cost_price, base_price, fulfilment,"
        " validity_days, max_uses) VALUES ($1, 'VIDEO', 30, 0, 25, 'GENERATED', 30, 3)"
        " RETURNING id",
        name,
    )
    return product_id


async def _issue(
    db: asyncpg.Connection[Any], keyring: Keyring, product_id: int, quantity: int, **terms: Any
) -> list[int]:
    terms = {"validity_days": 30, "max_uses": 3, "with_password": True} | terms
    async with db.transaction():
        return await generated.issue(db, keyring, product_id, quantity, **terms)


async def test_issued_codes_are_sold_sealed_valid_and_counted(
    db: asyncpg.Connection[Any],
) -> None:
    # Given a GENERATED product and the keyring
    keyring = await Keyring.load(db, MASTER)
    product_id = await _product(db)
    before = datetime.now(UTC)

    # When 5 codes with passwords and 3 more without are issued
    first = await _issue(db, keyring, product_id, 5)
    second = await _issue(db, keyring, product_id, 3, with_password=False, validity_days=None)

    # Then they are 8 distinct sold codes in one pool named "generated", counted as sold
    assert len(first) == 5
    assert len(second) == 3
    assert len(set(first + second)) == 8
    pools = await db.fetch("SELECT * FROM pools WHERE product_id = $1", product_id)
    assert [(p["name"], p["available"], p["sold"]) for p in pools] == [("generated", 0, 8)]
    rows = await db.fetch("SELECT * FROM codes WHERE id = ANY($1::bigint[])", first + second)
    assert {r["status"] for r in rows} == {"sold"}
    assert all(r["sold_at"] is not None and r["pool_id"] == pools[0]["id"] for r in rows)

    # And they decrypt to valid codes bound to their fingerprints, with the product's terms
    plain = await codes.reveal(db, keyring, first + second)
    assert [p.id for p in plain] == first + second
    for p in plain:
        assert codegen.valid(p.code)
        assert codegen.normalize(p.code) == p.code
    assert all(p.password for p in plain[:5])
    assert all(p.password is None for p in plain[5:])
    by_id = {r["id"]: r for r in rows}
    for p in plain:
        row = by_id[p.id]
        assert row["fingerprint"] == keyring.fingerprint(p.code)
        assert row["last4"] == p.code[-4:]
        blob = row["code_ciphertext"]
        assert p.code.encode() not in blob
        key = keyring.keys[row["key_id"]]
        assert crypto.open_sealed(key, blob, code_aad(row["fingerprint"])) == p.code.encode()
    expiries = [p.expires_at for p in plain[:5]]
    assert all(
        e is not None and before + timedelta(days=30) <= e <= datetime.now(UTC) + timedelta(days=30)
        for e in expiries
    )
    assert all(p.expires_at is None for p in plain[5:])
    batches = await db.fetch(
        "SELECT b.source, b.result::text AS result FROM code_batches b"
        " JOIN codes c ON c.batch_id = b.id WHERE c.id = $1",
        first[0],
    )
    assert batches[0]["source"] == "GENERATED"
    assert '"maxUses": 3' in batches[0]["result"]

    # And each has its GENERATED event
    events = await db.fetchval(
        "SELECT count(*) FROM code_events WHERE kind = 'GENERATED' AND code_id = ANY($1)",
        first + second,
    )
    assert events == 8


async def test_concurrent_first_orders_create_one_generated_pool(database_url: str) -> None:
    # Given a GENERATED product no code was issued for yet, and 8 connections
    conns = [await asyncpg.connect(database_url) for _ in range(8)]
    try:
        keyring = await Keyring.load(conns[0], MASTER)
        product_id = await _product(conns[0])

        # When all issue codes at once, each in its own transaction
        async def one(conn: asyncpg.Connection[Any]) -> list[int]:
            return await _issue(conn, keyring, product_id, 4)

        issued = await asyncio.gather(*(one(c) for c in conns))

        # Then there is one generated pool holding all 32 distinct codes
        pools = await conns[0].fetch("SELECT id, sold FROM pools WHERE product_id = $1", product_id)
        assert len(pools) == 1
        assert pools[0]["sold"] == 32
        ids = [i for batch in issued for i in batch]
        assert len(set(ids)) == 32
        assert (
            await conns[0].fetchval(
                "SELECT count(*) FROM codes WHERE pool_id = $1 AND status = 'sold'", pools[0]["id"]
            )
            == 32
        )
    finally:
        for conn in conns:
            await conn.close()


@pytest.fixture
def colliding(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """codegen.generate hands out a fixed code first, then random ones."""
    fixed = codegen.new_code()
    queue = [fixed, fixed, fixed]
    real = codegen.generate

    def fake(with_password: bool) -> codegen.GeneratedCode:
        if queue:
            return codegen.GeneratedCode(queue.pop(0), None)
        return real(with_password)

    monkeypatch.setattr(codegen, "generate", fake)
    return [fixed]


async def test_a_colliding_code_is_replaced_by_a_fresh_one(
    db: asyncpg.Connection[Any], colliding: list[str]
) -> None:
    # Given a code already issued
    keyring = await Keyring.load(db, MASTER)
    product_id = await _product(db)
    [taken] = await _issue(db, keyring, product_id, 1)

    # When the generator produces the same code again (and then within one batch twice)
    again = await _issue(db, keyring, product_id, 3, with_password=False)

    # Then the order still gets 3 new distinct codes, none of them the taken one
    assert len(again) == 3
    assert taken not in again
    plain = await codes.reveal(db, keyring, [taken, *again])
    assert len({p.code for p in plain}) == 4
    assert plain[0].code == colliding[0]


async def test_a_rolled_back_order_leaves_no_codes(db: asyncpg.Connection[Any]) -> None:
    keyring = await Keyring.load(db, MASTER)
    product_id = await _product(db)

    async def failing_order() -> None:
        async with db.transaction():
            await generated.issue(
                db, keyring, product_id, 2, validity_days=None, max_uses=1, with_password=False
            )
            raise RuntimeError("the order failed after issuing")

    with pytest.raises(RuntimeError):
        await failing_order()
    assert await db.fetchval("SELECT count(*) FROM codes") == 0
    assert await db.fetchval("SELECT count(*) FROM pools") == 0


async def test_unknown_product_and_bad_terms_are_refused(db: asyncpg.Connection[Any]) -> None:
    keyring = await Keyring.load(db, MASTER)
    with pytest.raises(generated.UnknownProduct):
        await _issue(db, keyring, 999_999, 1)
    product_id = await _product(db)
    with pytest.raises(ValueError, match="at least one"):
        await _issue(db, keyring, product_id, 0)
    with pytest.raises(ValueError, match="use"):
        await _issue(db, keyring, product_id, 1, max_uses=0)
