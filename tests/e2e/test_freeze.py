"""freezeCodes, unfreezeCodes and voidCodes through real HTTP, with the states, counters
and events they leave in the database."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import asyncpg
import pytest

from schema import ids
from tests.conftest import ISSUE_KEY, Api, Node
from tests.e2e.payment_helpers import place_external
from tests.e2e.test_ledger_api import funded
from tests.e2e.test_orders import PLACE, order_input, stocked_product
from tests.e2e.test_pools import IMPORT

RESULT = "{ changed skipped userErrors { field code message } }"
FREEZE = "mutation($input: FreezeCodesInput!) { freezeCodes(input: $input) " + RESULT + " }"
UNFREEZE = "mutation($input: UnfreezeCodesInput!) { unfreezeCodes(input: $input) " + RESULT + " }"
VOID = "mutation($input: VoidCodesInput!) { voidCodes(input: $input) " + RESULT + " }"
POOLS = "query($id: ID!) { pools(productId: $id) { id } }"


async def change(
    api: Api, document: str, token: str, reason: str = "Reported stolen", **selector: Any
) -> dict[str, Any]:
    """The payload of a freeze, unfreeze or void (whichever ``document`` is)."""
    data = await api.data(document, {"input": {**selector, "reason": reason}}, token=token)
    payload: dict[str, Any] = next(iter(data.values()))
    return payload


def done(changed: int, skipped: int = 0) -> dict[str, Any]:
    return {"changed": changed, "skipped": skipped, "userErrors": []}


def refused(code: str, message: str, field: list[str] | None = None) -> dict[str, Any]:
    return {
        "changed": 0,
        "skipped": 0,
        "userErrors": [{"field": field, "code": code, "message": message}],
    }


async def buy(api: Api, node: Node, product: str, key: str, quantity: int) -> dict[str, Any]:
    placed = await api.data(PLACE, order_input(product, key, quantity), token=node.key)
    payload = placed["placeOrder"]
    assert payload["userErrors"] == [], payload
    order: dict[str, Any] = payload["order"]
    return order


def code_keys(order: dict[str, Any]) -> list[int]:
    return sorted(k for c in order["codes"] if (k := ids.decode("Code", c["id"])) is not None)


async def pool_of(api: Api, token: str, product: str) -> str:
    pool_id: str = (await api.data(POOLS, {"id": product}, token=token))["pools"][0]["id"]
    return pool_id


async def statuses(db: asyncpg.Connection[Any]) -> dict[int, tuple[str, str | None]]:
    rows = await db.fetch("SELECT id, status, frozen_from FROM codes ORDER BY id")
    return {r["id"]: (r["status"], r["frozen_from"]) for r in rows}


async def consistent(db: asyncpg.Connection[Any]) -> bool:
    """Whether every pool's counters are what its codes' states add up to."""
    rows = await db.fetch(
        """SELECT p.id, p.available, p.reserved, p.sold, p.frozen, p.voided,
                  count(*) FILTER (WHERE c.status = 'available') AS c_available,
                  count(*) FILTER (WHERE c.status = 'reserved') AS c_reserved,
                  count(*) FILTER (WHERE c.status = 'sold') AS c_sold,
                  count(*) FILTER (WHERE c.status = 'frozen') AS c_frozen,
                  count(*) FILTER (WHERE c.status = 'voided') AS c_voided
           FROM pools p LEFT JOIN codes c ON c.pool_id = p.id
           GROUP BY p.id"""
    )
    states = ("available", "reserved", "sold", "frozen", "voided")
    return all(r[s] == r[f"c_{s}"] for r in rows for s in states)


async def events(db: asyncpg.Connection[Any], kind: str) -> list[dict[str, Any]]:
    rows = await db.fetch(
        """SELECT code_id, order_id, channel_id, actor, detail FROM code_events
           WHERE kind = $1 ORDER BY code_id""",
        kind,
    )
    return [{**dict(r), "detail": json.loads(r["detail"])} for r in rows]


async def everything(db: asyncpg.Connection[Any]) -> list[Any]:
    """What a refused call must not change."""
    return [
        await db.fetch("SELECT id, status, frozen_from FROM codes ORDER BY id"),
        await db.fetch("SELECT * FROM pools ORDER BY id"),
        await db.fetch("SELECT * FROM code_events ORDER BY id"),
    ]


def actor(node: Node) -> str:
    return f"api-key:{ids.decode('ApiKey', node.key_id)}"


# --- by each selector ----------------------------------------------------------------------


async def test_freezing_an_order_and_unfreezing_it_puts_back_exactly_what_was_there(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given A bought 3 of a pool's 10 codes
    root, a = tree["root"], tree["A"]
    product = await stocked_product(api, root.key, 10)
    await funded(api, root.key, a.id, "1000.00", "bank-1")
    order = await buy(api, a, product, "o-1", 3)
    sold = code_keys(order)
    before = await statuses(db)

    # When the platform freezes the order
    frozen = await change(api, FREEZE, root.key, orderId=order["id"])

    # Then its 3 codes are frozen, remembering they were sold; nothing else moved
    assert frozen == done(3)
    after = await statuses(db)
    assert {k: after[k] for k in sold} == {k: ("frozen", "sold") for k in sold}
    assert {k: v for k, v in after.items() if k not in sold} == {
        k: v for k, v in before.items() if k not in sold
    }
    assert await consistent(db)
    # And each has a FROZEN event naming the order, its channel, the caller and the reason
    order_key = ids.decode("Order", order["id"])
    a_key = ids.decode("Channel", a.id)
    root_key = ids.decode("Channel", root.id)
    assert await events(db, "FROZEN") == [
        {
            "code_id": k,
            "order_id": order_key,
            "channel_id": a_key,
            "actor": actor(root),
            "detail": {"reason": "Reported stolen", "by_channel_id": root_key},
        }
        for k in sold
    ]

    # When the same freeze is sent again
    # Then nothing changes and no event is added
    assert await change(api, FREEZE, root.key, orderId=order["id"]) == done(0)
    assert len(await events(db, "FROZEN")) == 3

    # When the platform unfreezes the order
    unfrozen = await change(api, UNFREEZE, root.key, reason="Found", orderId=order["id"])

    # Then the codes are sold again, exactly as before, each with an UNFROZEN event
    assert unfrozen == done(3)
    assert await statuses(db) == before
    assert await consistent(db)
    assert [(e["code_id"], e["detail"]["reason"]) for e in await events(db, "UNFROZEN")] == [
        (k, "Found") for k in sold
    ]


async def test_a_frozen_pool_sells_nothing_until_it_is_unfrozen(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given a pool of 5 codes of which A bought 2
    root, a = tree["root"], tree["A"]
    product = await stocked_product(api, root.key, 5)
    pool = await pool_of(api, root.key, product)
    await funded(api, root.key, a.id, "1000.00", "bank-1")
    await buy(api, a, product, "o-1", 2)
    before = await statuses(db)

    # When the platform freezes the pool
    frozen = await change(api, FREEZE, root.key, poolId=pool)

    # Then all 5 are frozen, each remembering where it was, and nothing can be bought
    assert frozen == done(5)
    assert await statuses(db) == {k: ("frozen", status) for k, (status, _) in before.items()}
    assert await consistent(db)
    placed = await api.data(PLACE, order_input(product, "o-2", 1), token=a.key)
    assert [e["code"] for e in placed["placeOrder"]["userErrors"]] == ["OUT_OF_STOCK"]

    # When the platform unfreezes the pool
    unfrozen = await change(api, UNFREEZE, root.key, poolId=pool)

    # Then the 3 in stock are on sale again and the 2 sold are sold, as before
    assert unfrozen == done(5)
    assert await statuses(db) == before
    assert await consistent(db)
    order = await buy(api, a, product, "o-3", 3)
    assert sorted(code_keys(order)) == sorted(k for k, (s, _) in before.items() if s == "available")


async def test_freezing_a_batch_takes_only_its_codes(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given a pool with a first import of 4 codes and a second of 3
    root = tree["root"]
    product = await stocked_product(api, root.key, 4)
    pool = await pool_of(api, root.key, product)
    imported = await api.data(
        IMPORT,
        {"input": {"poolId": pool, "codes": [{"code": f"LATER-{i}-ABCDEF"} for i in range(3)]}},
        token=root.key,
    )
    batch = imported["importCodes"]["batchId"]
    second = {r["id"] for r in await db.fetch("SELECT id FROM codes ORDER BY id DESC LIMIT 3")}

    # When the platform freezes the second batch
    frozen = await change(api, FREEZE, root.key, batchId=batch)

    # Then exactly its 3 codes are frozen
    assert frozen == done(3)
    after = await statuses(db)
    assert {k for k, (s, _) in after.items() if s == "frozen"} == second
    assert await consistent(db)


async def test_freezing_codes_by_id_counts_each_code_once(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given A bought 3 codes
    root, a = tree["root"], tree["A"]
    product = await stocked_product(api, root.key, 5)
    await funded(api, root.key, a.id, "1000.00", "bank-1")
    order = await buy(api, a, product, "o-1", 3)
    first, second, _ = order["codes"]

    # When A freezes two of them, one named twice
    frozen = await change(api, FREEZE, a.key, codeIds=[first["id"], second["id"], first["id"]])

    # Then those two are frozen, once each
    assert frozen == done(2)
    after = await statuses(db)
    assert [after[k] for k in code_keys(order)] == [
        ("frozen", "sold"),
        ("frozen", "sold"),
        ("sold", None),
    ]
    assert len(await events(db, "FROZEN")) == 2


async def test_a_void_is_final(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given A bought 3 codes, one of which is frozen, and 2 codes are in stock
    root, a = tree["root"], tree["A"]
    product = await stocked_product(api, root.key, 5)
    await funded(api, root.key, a.id, "1000.00", "bank-1")
    order = await buy(api, a, product, "o-1", 3)
    sold = code_keys(order)
    assert await change(api, FREEZE, root.key, codeIds=[order["codes"][0]["id"]]) == done(1)

    # When the platform voids the order
    voided = await change(api, VOID, root.key, reason="Chargeback", orderId=order["id"])

    # Then all 3 are voided, the frozen one too, each with a VOIDED event; stock is untouched
    assert voided == done(3)
    after = await statuses(db)
    assert [after[k] for k in sold] == [("voided", None)] * 3
    assert sorted(s for k, (s, _) in after.items() if k not in sold) == ["available"] * 2
    assert [(e["code_id"], e["detail"]["reason"]) for e in await events(db, "VOIDED")] == [
        (k, "Chargeback") for k in sold
    ]
    assert await consistent(db)

    # When they are unfrozen, frozen or voided again
    for document in (UNFREEZE, FREEZE, VOID):
        # Then nothing changes
        assert await change(api, document, root.key, orderId=order["id"]) == done(0)
    assert await statuses(db) == after
    assert len(await events(db, "VOIDED")) == 3


async def test_codes_reserved_for_an_unpaid_order_are_skipped(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given a pool of 5 codes, 2 of them reserved for A's order awaiting payment
    root, a = tree["root"], tree["A"]
    product = await stocked_product(api, root.key, 5)
    pool = await pool_of(api, root.key, product)
    placed = await place_external(api, a.key, product, "ext-1", 2)
    order = placed["order"]
    before = await statuses(db)

    # When the platform freezes or voids the order
    # Then its codes are skipped, left reserved
    assert await change(api, FREEZE, root.key, orderId=order["id"]) == done(0, 2)
    assert await change(api, VOID, root.key, orderId=order["id"]) == done(0, 2)
    assert await statuses(db) == before

    # When the platform freezes the whole pool
    # Then the 3 in stock are frozen and the 2 reserved are skipped
    assert await change(api, FREEZE, root.key, poolId=pool) == done(3, 2)
    after = await statuses(db)
    assert sorted(s for s, _ in after.values()) == ["frozen"] * 3 + ["reserved"] * 2
    assert await consistent(db)


async def test_a_channel_freezes_the_unredeemed_codes_of_its_subtree(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given A, A1, A11 and B bought 2 codes each, and one of A11's codes is used up
    root, a, a1, a11, b = (tree[n] for n in ("root", "A", "A1", "A11", "B"))
    product = await stocked_product(api, root.key, 20)
    bought = {}
    for name, node in (("A", a), ("A1", a1), ("A11", a11), ("B", b)):
        await funded(api, root.key, node.id, "1000.00", f"bank-{name}")
        bought[name] = code_keys(await buy(api, node, product, f"{name}-1", 2))
    used_up = bought["A11"][0]
    await db.execute("UPDATE codes SET uses = 1 WHERE id = $1", used_up)
    before = await statuses(db)

    # When A freezes channel A1's codes
    frozen_by_a = await change(api, FREEZE, a.key, channelId=a1.id)

    # Then A1's 2 and A11's unredeemed one are frozen, and nothing else
    assert frozen_by_a == done(3)
    taken_by_a = {*bought["A1"], bought["A11"][1]}
    after = await statuses(db)
    assert {k for k, (s, _) in after.items() if s == "frozen"} == taken_by_a

    # When the platform freezes channel A's codes
    # Then A's own 2 are frozen too; B's codes and the pool's stock stay as they were
    assert await change(api, FREEZE, root.key, channelId=a.id) == done(2)
    after = await statuses(db)
    frozen = {k for k, (s, _) in after.items() if s == "frozen"}
    assert frozen == taken_by_a | set(bought["A"])
    assert {k: v for k, v in after.items() if k not in frozen} == {
        k: v for k, v in before.items() if k not in frozen
    }
    assert await consistent(db)

    # When A11 and A1 try to lift the freezes A made
    # Then they cannot: those codes are skipped, left frozen
    assert await change(api, UNFREEZE, a11.key, channelId=a11.id) == done(0, 1)
    assert await change(api, UNFREEZE, a1.key, channelId=a1.id) == done(0, 3)
    assert await statuses(db) == after

    # When A unfreezes its whole subtree
    # Then what A froze is unfrozen, and what the platform froze holds
    assert await change(api, UNFREEZE, a.key, channelId=a.id) == done(3, 2)
    after = await statuses(db)
    assert {k for k, (s, _) in after.items() if s == "frozen"} == set(bought["A"])

    # When the platform unfreezes A's subtree
    # Then everything is as it was
    assert await change(api, UNFREEZE, root.key, channelId=a.id) == done(2)
    assert await statuses(db) == before
    assert await consistent(db)


async def test_refusals_change_nothing(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given A1 and B each bought 2 codes of a pool of 10, and the platform has a FINANCE key
    root, a, a1, b = (tree[n] for n in ("root", "A", "A1", "B"))
    product = await stocked_product(api, root.key, 10)
    pool = await pool_of(api, root.key, product)
    await funded(api, root.key, a1.id, "1000.00", "bank-1")
    await funded(api, root.key, b.id, "1000.00", "bank-2")
    mine = await buy(api, a1, product, "a1-1", 2)
    theirs = await buy(api, b, product, "b-1", 2)
    in_stock = ids.encode(
        "Code", await db.fetchval("SELECT min(id) FROM codes WHERE status = 'available'")
    )
    batch = ids.encode("CodeBatch", await db.fetchval("SELECT min(id) FROM code_batches"))
    issued = await api.data(
        ISSUE_KEY,
        {"input": {"channelId": root.id, "name": "books", "role": "FINANCE"}},
        token=root.key,
    )
    finance = issued["issueApiKey"]["secret"]
    nowhere = ids.encode("Order", 999_999)
    before = await everything(db)
    own, other = mine["codes"][0]["id"], theirs["codes"][0]["id"]

    one = "Give exactly one of codeIds, orderId, batchId, poolId and channelId."
    reason = "Give a reason of 1 to 500 characters."
    role = "Only owners and operators freeze, unfreeze or void codes."
    by_pool = "Only the platform's owners and operators select codes by pool."
    by_batch = "Only the platform's owners and operators select codes by batch."
    cases: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
        # two selectors, or none; no reason, or too long a one; an empty list
        (root.key, {"orderId": mine["id"], "poolId": pool}, refused("INVALID_INPUT", one)),
        (root.key, {}, refused("INVALID_INPUT", one)),
        (root.key, {"poolId": pool, "reason": "  "}, refused("INVALID_INPUT", reason, ["reason"])),
        (
            root.key,
            {"poolId": pool, "reason": "x" * 501},
            refused("INVALID_INPUT", reason, ["reason"]),
        ),
        (
            root.key,
            {"codeIds": []},
            refused("INVALID_INPUT", "Give at least one code id.", ["codeIds"]),
        ),
        # a role that does not manage codes
        (finance, {"poolId": pool}, refused("FORBIDDEN", role)),
        # pools and batches are the platform's
        (a.key, {"poolId": pool}, refused("FORBIDDEN", by_pool, ["poolId"])),
        (a.key, {"batchId": batch}, refused("FORBIDDEN", by_batch, ["batchId"])),
        # outside the caller's subtree is the same as nowhere
        (a1.key, {"orderId": theirs["id"]}, refused("NOT_FOUND", "No such order.", ["orderId"])),
        (a1.key, {"orderId": nowhere}, refused("NOT_FOUND", "No such order.", ["orderId"])),
        (a1.key, {"channelId": a.id}, refused("NOT_FOUND", "No such channel.", ["channelId"])),
        (a1.key, {"channelId": b.id}, refused("NOT_FOUND", "No such channel.", ["channelId"])),
        (
            a1.key,
            {"codeIds": [own, other]},
            refused("NOT_FOUND", "No such code.", ["codeIds", "1"]),
        ),
        (a1.key, {"codeIds": [in_stock]}, refused("NOT_FOUND", "No such code.", ["codeIds", "0"])),
        (
            root.key,
            {"codeIds": [own, "bm9wZQ=="]},
            refused("NOT_FOUND", "No such code.", ["codeIds", "1"]),
        ),
        (root.key, {"poolId": mine["id"]}, refused("NOT_FOUND", "No such pool.", ["poolId"])),
        (
            root.key,
            {"batchId": ids.encode("CodeBatch", 999_999)},
            refused("NOT_FOUND", "No such code batch.", ["batchId"]),
        ),
    ]
    for document in (FREEZE, UNFREEZE, VOID):
        for token, selector, expected in cases:
            # When the call is made
            payload = await change(api, document, token, **selector)

            # Then it is refused as expected
            assert payload == expected, (document, selector)

    # And nothing changed anywhere
    assert await everything(db) == before


SOLD_TO_A = 100_000
ON_SALE = 5_000


async def import_codes(api: Api, token: str, pool: str, count: int, prefix: str) -> None:
    for start in range(0, count, 50_000):
        rows = [{"code": f"{prefix}-{i:07d}-Q"} for i in range(start, min(count, start + 50_000))]
        imported = await api.data(IMPORT, {"input": {"poolId": pool, "codes": rows}}, token=token)
        assert imported["importCodes"]["imported"] == len(rows)


@pytest.mark.slow
async def test_freezing_a_channels_100000_codes_while_orders_run(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given A bought 100,000 codes in 1,000 orders of 100, and 5,000 more are on sale
    root, a, a1, b = (tree[n] for n in ("root", "A", "A1", "B"))
    setup = time.perf_counter()
    product = await stocked_product(api, root.key, 1)
    pool = await pool_of(api, root.key, product)
    await import_codes(api, root.key, pool, SOLD_TO_A + ON_SALE - 1, "BULK")
    await funded(api, root.key, a.id, "3000000.00", "bank-a")
    await funded(api, root.key, a1.id, "100000.00", "bank-a1")
    await funded(api, root.key, b.id, "100000.00", "bank-b")
    gate = asyncio.Semaphore(32)

    async def stock_up(n: int) -> None:
        async with gate:
            await buy(api, a, product, f"stock-{n}", 100)

    await asyncio.gather(*(stock_up(n) for n in range(SOLD_TO_A // 100)))
    held_by_a = {
        r["code_id"]
        for r in await db.fetch(
            """SELECT oc.code_id FROM order_codes oc JOIN orders o ON o.id = oc.order_id
               WHERE o.channel_id = $1""",
            ids.decode("Channel", a.id),
        )
    }
    assert len(held_by_a) == SOLD_TO_A
    print(f"\nsetup: {time.perf_counter() - setup:.1f} s")

    # When the platform freezes A's codes while A1 and B keep buying from the same pool
    stop = asyncio.Event()
    bought_during: dict[str, list[int]] = {"A1": [], "B": []}

    async def shop(name: str, node: Node, shopper: int) -> None:
        n = 0
        while not stop.is_set():
            placed = await api.data(
                PLACE, order_input(product, f"{name}-{shopper}-{n}", 2), token=node.key
            )
            payload = placed["placeOrder"]
            assert payload["userErrors"] == [], payload
            bought_during[name] += code_keys(payload["order"])
            n += 1

    shoppers = [
        asyncio.create_task(shop(name, node, i))
        for name, node in (("A1", a1), ("B", b))
        for i in range(4)
    ]
    await asyncio.sleep(0.2)
    started = time.perf_counter()
    frozen = await change(api, FREEZE, root.key, channelId=a.id)
    took = time.perf_counter() - started
    stop.set()
    await asyncio.gather(*shoppers)
    print(
        f"froze {frozen['changed']:,} codes in {took:.2f} s ({frozen['changed'] / took:,.0f}"
        f" codes/s) while {sum(map(len, bought_during.values())):,} codes were sold beside"
    )

    # Then every code A held is frozen, and so are those A1 bought before the walk passed
    assert frozen["userErrors"] == []
    assert frozen["skipped"] == 0
    after = await statuses(db)
    frozen_codes = {k for k, (s, _) in after.items() if s == "frozen"}
    assert held_by_a <= frozen_codes
    assert frozen_codes <= held_by_a | set(bought_during["A1"])
    assert frozen["changed"] == len(frozen_codes)
    assert all(after[k] == ("frozen", "sold") for k in frozen_codes)
    # And B's codes are sold, none frozen
    assert all(after[k] == ("sold", None) for k in bought_during["B"])
    # And no code was sold after its freeze
    assert not await db.fetchval(
        """SELECT count(*) FROM code_events f JOIN code_events s
             ON s.code_id = f.code_id AND s.kind IN ('RESERVED', 'SOLD') AND s.id > f.id
           WHERE f.kind = 'FROZEN'"""
    )
    # And every code is in one state, each sold code in one order, and the counters agree
    assert len(after) == SOLD_TO_A + ON_SALE
    in_orders = await db.fetchval("SELECT count(*) FROM order_codes")
    assert in_orders == sum(1 for s, _ in after.values() if s in ("sold", "frozen"))
    assert await consistent(db)

    # When B buys afterwards
    order = await buy(api, b, product, "after", 5)

    # Then it gets codes from stock, none of them frozen
    assert [after[k][0] for k in code_keys(order)] == ["available"] * 5
    assert [s for k, (s, _) in (await statuses(db)).items() if k in code_keys(order)] == [
        "sold"
    ] * 5
