"""Risk control through real HTTP: rate rules, blocks, held orders and their review."""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from domain.risk import NewRiskEvent, Outcome, Subject, SubjectKind
from schema import ids
from settings import Settings
from tests.conftest import Api, LiveServer, Node
from tests.e2e.test_auth import issue_key
from tests.e2e.test_catalog import create_product
from tests.e2e.test_ledger_api import funded
from tests.e2e.test_orders import PLACE, stocked_product, wallet

SET_RULE = """
mutation($input: SetRiskRuleInput!) {
  setRiskRule(input: $input) {
    riskRule { id scope limit windowSeconds action active createdBy }
    userErrors { field code message }
  }
}
"""

BLOCK = """
mutation($input: BlockSubjectInput!) {
  blockSubject(input: $input) {
    blockedSubject { id kind value reason active createdBy unblockedAt }
    userErrors { field code message }
  }
}
"""

UNBLOCK = """
mutation($input: UnblockSubjectInput!) {
  unblockSubject(input: $input) {
    blockedSubject { id kind value active unblockedBy }
    userErrors { field code message }
  }
}
"""

EVENTS = """
query($filter: RiskEventFilter) {
  riskEvents(first: 100, filter: $filter) {
    edges { node {
      decision subjectKind subjectValue reason context
      rule { id } order { id } channel { id } product { id }
    } }
  }
}
"""

APPROVE = """
mutation($id: ID!) {
  approveOrder(input: {orderId: $id}) {
    order { id status statusReason total codes { id status } }
    userErrors { field code message }
  }
}
"""

REJECT = """
mutation($id: ID!, $reason: String!) {
  rejectOrder(input: {orderId: $id, reason: $reason}) {
    order { id status statusReason codes { id } }
    userErrors { field code message }
  }
}
"""

ORDER = "query($id: ID!) { order(id: $id) { id status statusReason codes { id status } } }"
REVEAL = "mutation($id: ID!) { revealCodes(input: {orderId: $id}) { codes { code } } }"

TOO_MANY_FROM_DEVICE = [
    {
        "field": None,
        "code": "RISK_BLOCKED",
        "message": "Too many orders from this device; try again later.",
    }
]
HELD_FOR_DEVICE = "Held for review: many orders from this device."


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The expiry pass runs every 0.1 s, so a lapsed hold is seen at once."""
    return settings.model_copy(update={"reservation_sweep_seconds": 0.1})


async def set_rule(api: Api, token: str, **fields: Any) -> dict[str, Any]:
    answer = await api.data(SET_RULE, {"input": fields}, token=token)
    payload: dict[str, Any] = answer["setRiskRule"]
    return payload


async def add_rule(api: Api, token: str, scope: str, limit: int, action: str = "BLOCK") -> str:
    payload = await set_rule(api, token, scope=scope, limit=limit, windowSeconds=60, action=action)
    assert payload["userErrors"] == []
    rule_id: str = payload["riskRule"]["id"]
    return rule_id


def buying(
    product: str,
    key: str,
    quantity: int = 1,
    *,
    device: str | None = None,
    ip: str | None = None,
    **more: Any,
) -> dict[str, Any]:
    return {
        "input": {
            "idempotencyKey": key,
            "productId": product,
            "quantity": quantity,
            "buyer": {"deviceId": device, "ip": ip},
            **more,
        }
    }


async def place(api: Api, token: str, variables: dict[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = (await api.data(PLACE, variables, token=token))["placeOrder"]
    return payload


async def events(api: Api, token: str, **filter: Any) -> list[dict[str, Any]]:
    data = await api.data(EVENTS, {"filter": filter or None}, token=token)
    return [e["node"] for e in data["riskEvents"]["edges"]]


async def stock(db: asyncpg.Connection[Any]) -> tuple[int, int, int]:
    row = await db.fetchrow("SELECT sum(available), sum(reserved), sum(sold) FROM pools")
    assert row is not None
    return (row[0], row[1], row[2])


# What an order, a review or a risk setting may change. (Background work, such as the
# audit chain, changes other tables at any time.)
TABLES = (
    "orders",
    "order_codes",
    "codes",
    "code_events",
    "pools",
    "ledger_transactions",
    "ledger_entries",
    "ledger_accounts",
    "deliveries",
    "risk_rules",
    "blocked_subjects",
    "risk_events",
)


async def rows(db: asyncpg.Connection[Any], *, events: bool = True) -> dict[str, list[str]]:
    """Those tables' rows as text, with the risk events unless ``events`` is false (a
    refused order writes one)."""
    return {
        table: sorted(r["row"] for r in await db.fetch(f"SELECT t::text AS row FROM {table} t"))
        for table in TABLES
        if events or table != "risk_events"
    }


# --- rate rules -------------------------------------------------------------------------


async def test_twenty_concurrent_orders_from_one_device_let_exactly_five_through(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given 30 codes, money for all of them, and at most 5 orders per device a minute
    root, a = tree["root"], tree["A"]
    product = await stocked_product(api, root.key, 30)
    await funded(api, root.key, a.id, "750.00", "bank-1")
    rule_id = await add_rule(api, root.key, "DEVICE", 5)

    # When 20 orders from one device arrive at once
    payloads = await asyncio.gather(
        *(place(api, a.key, buying(product, f"k-{i}", device="dev-1")) for i in range(20))
    )

    # Then exactly 5 are paid and 15 refused, and only 5 codes and 5 x 25.00 moved
    paid = [p for p in payloads if p["order"] and p["order"]["status"] == "PAID"]
    refused = [p for p in payloads if p["userErrors"]]
    assert len(paid) == 5
    assert [p["userErrors"] for p in refused] == [TOO_MANY_FROM_DEVICE] * 15
    assert all(p["order"] is None and p["codes"] == [] for p in refused)
    assert await stock(db) == (25, 0, 5)
    assert await db.fetchval("SELECT count(*) FROM orders") == 5
    assert await wallet(db, a) == Decimal("750.00") - 5 * Decimal("25.00")

    # And each of the 20 decisions is a risk event about that device: 5 ALLOW, 15 BLOCK
    seen = await events(api, root.key)
    assert len(seen) == 20
    assert Counter(e["decision"] for e in seen) == {"ALLOW": 5, "BLOCK": 15}
    assert {(e["subjectKind"], e["subjectValue"]) for e in seen} == {("DEVICE", "dev-1")}
    assert {e["rule"]["id"] if e["rule"] else None for e in seen if e["decision"] == "BLOCK"} == {
        rule_id
    }
    assert all(e["channel"] == {"id": a.id} and e["product"] == {"id": product} for e in seen)
    refusal = next(e for e in seen if e["decision"] == "BLOCK")
    assert refusal["reason"].startswith("Over 5 orders per 60 s from this device")
    assert refusal["context"]["deviceId"] == "dev-1"

    # And A sees them as events of its own orders, B none, and A does not see the rule
    assert [e["rule"] for e in await events(api, a.key)] == [None] * 20
    assert await events(api, tree["B"].key) == []

    # And another device is not held back by the first one's window
    other = await place(api, a.key, buying(product, "other", device="dev-2"))
    assert other["order"]["status"] == "PAID"


async def test_hundred_concurrent_hits_allow_exactly_the_limit(server: LiveServer) -> None:
    # Given risk control as the server runs it
    risk = server.app.state.services.risk

    # When 100 guesses under one key hit a limit of 10 at once
    allowed = await asyncio.gather(*(risk.hit("guess:verifier:1", 10, 0.5) for _ in range(100)))

    # Then exactly 10 are allowed, and another key has its own budget
    assert allowed.count(True) == 10
    assert await risk.hit("guess:verifier:2", 10, 0.5)
    assert not await risk.hit("guess:verifier:1", 10, 0.5)

    # And once the window has slid past them, the key is allowed again
    await asyncio.sleep(0.6)
    assert await risk.hit("guess:verifier:1", 10, 0.5)


async def test_decisions_taken_elsewhere_are_recorded_for_the_channel_they_concern(
    api: Api, server: LiveServer, tree: dict[str, Node]
) -> None:
    # Given a refused redemption of a code A1 sold, recorded the way redemption does
    a1 = ids.decode("Channel", tree["A1"].id)
    assert a1 is not None
    await server.app.state.services.risk.record(
        NewRiskEvent(
            Subject(SubjectKind.CODE, "Q29kZTox"),
            Outcome.BLOCK,
            "Redeemed by a merchant not authorised for the channel.",
            a1,
            context={"merchant": "M1"},
        )
    )

    # Then A1, A above it and the platform see it; A11 below it and B do not
    expected = {
        "decision": "BLOCK",
        "subjectKind": "CODE",
        "subjectValue": "Q29kZTox",
        "reason": "Redeemed by a merchant not authorised for the channel.",
        "context": {"merchant": "M1"},
        "rule": None,
        "order": None,
        "channel": {"id": tree["A1"].id},
        "product": None,
    }
    for name in ("A1", "A", "root"):
        assert await events(api, tree[name].key) == [expected], name
    for name in ("A11", "B"):
        assert await events(api, tree[name].key) == [], name


async def test_a_refusal_by_one_rule_uses_no_other_rules_budget(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given 2 orders per device and 3 per IP address a minute
    root, a = tree["root"], tree["A"]
    product = await stocked_product(api, root.key, 10)
    await funded(api, root.key, a.id, "250.00", "bank-1")
    await add_rule(api, root.key, "DEVICE", 2)
    await add_rule(api, root.key, "IP", 3)
    ip = "198.51.100.4"

    # When device d1 orders three times from the IP address, then d2 once, then d3 once
    statuses = []
    for key, device in [("1", "d1"), ("2", "d1"), ("3", "d1"), ("4", "d2"), ("5", "d3")]:
        placed = await place(api, a.key, buying(product, key, device=device, ip=ip))
        statuses.append(placed["order"]["status"] if placed["order"] else placed["userErrors"])

    # Then d1's third order is refused by the device rule without counting for the IP,
    # so d2 still gets the IP's third place, and d3 finds the IP's window full
    assert statuses == [
        "PAID",
        "PAID",
        TOO_MANY_FROM_DEVICE,
        "PAID",
        [
            {
                "field": None,
                "code": "RISK_BLOCKED",
                "message": "Too many orders from this IP address; try again later.",
            }
        ],
    ]
    assert await stock(db) == (7, 0, 3)


async def test_orders_no_rule_applies_to_write_no_events(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given a device rule, and another one disabled
    root, a = tree["root"], tree["A"]
    product = await stocked_product(api, root.key, 5)
    await funded(api, root.key, a.id, "100.00", "bank-1")
    await add_rule(api, root.key, "DEVICE", 1)
    disabled = await add_rule(api, root.key, "IP", 1)
    turned_off = await set_rule(api, root.key, id=disabled, disabled=True)
    assert turned_off["riskRule"]["active"] is False

    # When orders come with no device id, twice from one IP address
    for key in ("1", "2"):
        placed = await place(api, a.key, buying(product, key, ip="192.0.2.1"))
        assert placed["order"]["status"] == "PAID"

    # Then no rule applied and nothing was recorded
    assert await db.fetchval("SELECT count(*) FROM risk_events") == 0

    # And once the IP rule is on again, it counts the next order
    turned_on = await set_rule(api, root.key, id=disabled, disabled=False)
    assert turned_on["riskRule"]["active"] is True
    placed = await place(api, a.key, buying(product, "3", ip="192.0.2.1"))
    assert placed["order"]["status"] == "PAID"
    assert await db.fetchval("SELECT decision FROM risk_events") == "ALLOW"


async def test_rules_are_checked_when_set(api: Api, platform_key: str) -> None:
    # Given the platform's owner key
    # When it sets incomplete, out-of-bounds and unknown rules
    incomplete = await set_rule(api, platform_key, scope="IP", limit=5, action="BLOCK")
    zero = await set_rule(api, platform_key, scope="IP", limit=0, windowSeconds=60, action="BLOCK")
    rule_id = await add_rule(api, platform_key, "IP", 5)
    too_long = await set_rule(api, platform_key, id=rule_id, windowSeconds=10**8)
    unknown = await set_rule(api, platform_key, id="Umlza1J1bGU6OTk5", limit=3)

    # Then each is refused with the field to fix
    assert incomplete == {
        "riskRule": None,
        "userErrors": [
            {
                "field": ["windowSeconds"],
                "code": "INVALID_INPUT",
                "message": "A new rule needs scope, limit, windowSeconds and action.",
            }
        ],
    }
    assert zero["userErrors"] == [
        {
            "field": ["limit"],
            "code": "INVALID_INPUT",
            "message": "Give a limit of 1 to 100000 orders.",
        }
    ]
    assert too_long["userErrors"] == [
        {
            "field": ["windowSeconds"],
            "code": "INVALID_INPUT",
            "message": "Give a window of 1 to 2678400 seconds (31 days).",
        }
    ]
    assert unknown["userErrors"] == [
        {"field": ["id"], "code": "NOT_FOUND", "message": "No such risk rule."}
    ]

    # And a change keeps what it does not name
    changed = await set_rule(api, platform_key, id=rule_id, limit=7, action="REVIEW")
    assert changed["riskRule"] | {"createdBy": None} == {
        "id": rule_id,
        "scope": "IP",
        "limit": 7,
        "windowSeconds": 60,
        "action": "REVIEW",
        "active": True,
        "createdBy": None,
    }
    listed = await api.data("{ riskRules { id limit } }", token=platform_key)
    assert listed["riskRules"] == [{"id": rule_id, "limit": 7}]


# --- blocks -----------------------------------------------------------------------------


async def test_a_blocked_ip_is_refused_and_nothing_else_changes(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given stock, money, and a blocked IP address
    root, a = tree["root"], tree["A"]
    product = await stocked_product(api, root.key, 3)
    await funded(api, root.key, a.id, "100.00", "bank-1")
    blocked = await api.data(
        BLOCK,
        {"input": {"kind": "IP", "value": "203.0.113.7", "reason": "card testing"}},
        token=root.key,
    )
    assert blocked["blockSubject"]["userErrors"] == []
    assert blocked["blockSubject"]["blockedSubject"]["active"] is True
    before = await rows(db, events=False)

    # When A orders for a buyer at that address (written as an IPv4-mapped IPv6 address)
    refused = await place(api, a.key, buying(product, "k", ip="::ffff:203.0.113.7"))

    # Then it is refused, and no order, code, stock or money changed
    assert refused == {
        "order": None,
        "codes": [],
        "userErrors": [
            {"field": None, "code": "RISK_BLOCKED", "message": "This IP address is blocked."}
        ],
    }
    assert await rows(db, events=False) == before
    assert await stock(db) == (3, 0, 0)
    assert await wallet(db, a) == Decimal("100.00")

    # And the refusal is a risk event that gives the block's reason
    [event] = await events(api, root.key)
    assert (event["decision"], event["subjectKind"], event["subjectValue"]) == (
        "BLOCK",
        "IP",
        "203.0.113.7",
    )
    assert event["reason"] == "Blocked: card testing"

    # And blocking again changes nothing; unblocking lets the next order through
    again = await api.data(
        BLOCK,
        {"input": {"kind": "IP", "value": "203.0.113.7", "reason": "again"}},
        token=root.key,
    )
    assert again["blockSubject"]["blockedSubject"] == blocked["blockSubject"]["blockedSubject"]
    ended = await api.data(
        UNBLOCK, {"input": {"kind": "IP", "value": "203.0.113.7"}}, token=root.key
    )
    assert ended["unblockSubject"]["blockedSubject"]["active"] is False
    placed = await place(api, a.key, buying(product, "k2", ip="203.0.113.7"))
    assert placed["order"]["status"] == "PAID"


async def test_blocks_are_checked(api: Api, platform_key: str, db: asyncpg.Connection[Any]) -> None:
    # Given nothing blocked
    before = await rows(db)

    # When the platform blocks a malformed address, an empty device, and unblocks a stranger
    bad_ip = await api.data(
        BLOCK, {"input": {"kind": "IP", "value": "10.0.0", "reason": "x"}}, token=platform_key
    )
    no_reason = await api.data(
        BLOCK, {"input": {"kind": "DEVICE", "value": "dev", "reason": " "}}, token=platform_key
    )
    stranger = await api.data(
        UNBLOCK, {"input": {"kind": "BUYER", "value": "nobody"}}, token=platform_key
    )

    # Then each is refused, and nothing was written
    assert bad_ip["blockSubject"]["userErrors"] == [
        {
            "field": ["value"],
            "code": "INVALID_INPUT",
            "message": "Give an IP address, such as 203.0.113.7.",
        }
    ]
    assert no_reason["blockSubject"]["userErrors"] == [
        {
            "field": ["reason"],
            "code": "INVALID_INPUT",
            "message": "Give a reason of 1 to 500 characters.",
        }
    ]
    assert stranger["unblockSubject"]["userErrors"] == [
        {"field": ["value"], "code": "NOT_FOUND", "message": "This subject has never been blocked."}
    ]
    assert await rows(db) == before


# --- review -----------------------------------------------------------------------------


async def held_order(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any], money: str = "100.00"
) -> tuple[str, dict[str, Any]]:
    """A product of 5 codes and an order of 2 of them held for review (A's first order
    from the device passes; its second is held)."""
    root, a = tree["root"], tree["A"]
    product = await stocked_product(api, root.key, 5)
    await funded(api, root.key, a.id, money, "bank-1")
    await add_rule(api, root.key, "DEVICE", 1, "REVIEW")
    first = await place(api, a.key, buying(product, "first", device="dev-1"))
    assert first["order"]["status"] == "PAID"
    held = await place(api, a.key, buying(product, "held", 2, device="dev-1"))
    assert held["userErrors"] == []
    return product, held


async def test_a_review_rule_holds_the_order_and_approval_pays_it(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given A's second order from one device held for review
    root, a = tree["root"], tree["A"]
    _, held = await held_order(api, tree, db)

    # Then it holds 2 codes reserved, shows none, and no money moved for it yet
    order = held["order"]
    assert (order["status"], order["total"], held["codes"]) == ("REVIEW", "50.00", [])
    assert [c["status"] for c in order["codes"]] == ["RESERVED", "RESERVED"]
    assert await stock(db) == (2, 2, 1)
    assert await wallet(db, a) == Decimal("75.00")
    seen = (await api.data(ORDER, {"id": order["id"]}, token=a.key))["order"]
    assert seen["statusReason"] == HELD_FOR_DEVICE

    # When the platform approves it, twice
    approvals = [(await api.data(APPROVE, {"id": order["id"]}, token=root.key)) for _ in "12"]

    # Then it is paid once, with its own 2 codes, from A's balance
    for approval in approvals:
        payload = approval["approveOrder"]
        assert payload["userErrors"] == []
        assert payload["order"]["status"] == "PAID"
        assert payload["order"]["codes"] == [
            {"id": c["id"], "status": "SOLD"} for c in order["codes"]
        ]
    assert await stock(db) == (2, 0, 3)
    assert await wallet(db, a) == Decimal("25.00")
    assert await db.fetchval("SELECT coalesce(sum(amount), 0) FROM ledger_entries") == 0
    revealed = await api.data(REVEAL, {"id": order["id"]}, token=a.key)
    assert len(revealed["revealCodes"]["codes"]) == 2

    # And the hold and the approval are risk events of the order
    decisions = await events(api, root.key, orderId=order["id"])
    assert [(e["decision"], e["subjectValue"]) for e in decisions] == [
        ("ALLOW", "dev-1"),
        ("REVIEW", "dev-1"),
    ]
    assert decisions[0]["reason"].startswith("Approved by api-key:")


async def test_rejecting_a_held_order_gives_its_codes_back(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given an order held for review
    root, a = tree["root"], tree["A"]
    _, held = await held_order(api, tree, db)
    order_id = held["order"]["id"]

    # When the platform rejects it, twice
    answers = [
        (await api.data(REJECT, {"id": order_id, "reason": "stolen card"}, token=root.key))
        for _ in "12"
    ]

    # Then it is CANCELLED with the reason, holds nothing, and its codes are back in stock
    for answer in answers:
        assert answer["rejectOrder"] == {
            "order": {
                "id": order_id,
                "status": "CANCELLED",
                "statusReason": "Rejected in review: stolen card",
                "codes": [],
            },
            "userErrors": [],
        }
    assert await stock(db) == (4, 0, 1)
    assert await db.fetchval("SELECT count(*) FROM codes WHERE status = 'available'") == 4
    assert await wallet(db, a) == Decimal("75.00")

    # And it can no longer be approved
    late = await api.data(APPROVE, {"id": order_id}, token=root.key)
    assert late["approveOrder"] == {
        "order": None,
        "userErrors": [
            {
                "field": None,
                "code": "ORDER_STATE",
                "message": "Only an order held for review can be approved or rejected.",
            }
        ],
    }
    rejection = (await events(api, root.key, decision="BLOCK"))[0]
    assert rejection["reason"].endswith(": stolen card")
    assert rejection["order"] == {"id": order_id}


async def test_concurrent_approvals_and_rejections_settle_the_order_once(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given an order of 2 codes held for review
    root, a = tree["root"], tree["A"]
    _, held = await held_order(api, tree, db)
    order_id = held["order"]["id"]

    # When 10 approvals and 10 rejections of it arrive at once
    answers = await asyncio.gather(
        *(
            api.data(APPROVE, {"id": order_id}, token=root.key)
            if i % 2
            else api.data(REJECT, {"id": order_id, "reason": "race"}, token=root.key)
            for i in range(20)
        )
    )

    # Then the order ends one way, every answer agrees with it, and money and codes match
    final = (await api.data(ORDER, {"id": order_id}, token=a.key))["order"]["status"]
    winners = [p for r in answers for p in r.values() if p["order"]]
    losers = [p["userErrors"] for r in answers for p in r.values() if not p["order"]]
    assert {w["order"]["status"] for w in winners} == {final}
    assert len(winners) == 10
    assert (
        losers
        == [
            [
                {
                    "field": None,
                    "code": "ORDER_STATE",
                    "message": "Only an order held for review can be approved or rejected.",
                }
            ]
        ]
        * 10
    )
    if final == "PAID":
        assert (await stock(db), await wallet(db, a)) == ((2, 0, 3), Decimal("25.00"))
    else:
        assert final == "CANCELLED"
        assert (await stock(db), await wallet(db, a)) == ((4, 0, 1), Decimal("75.00"))
    assert await db.fetchval("SELECT coalesce(sum(amount), 0) FROM ledger_entries") == 0
    held_codes = "SELECT count(*) FROM order_codes WHERE order_id = $1"
    assert await db.fetchval(held_codes, ids.decode("Order", order_id)) == (
        2 if final == "PAID" else 0
    )


async def test_approval_the_balance_cannot_pay_leaves_the_order_held(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given an order of 50.00 held for review, and A's balance spent down to 25.00
    root, a = tree["root"], tree["A"]
    product, held = await held_order(api, tree, db)
    spent = await place(api, a.key, buying(product, "spend", 2, device="dev-2"))
    assert spent["order"]["status"] == "PAID"
    before = await rows(db)

    # When the platform approves it
    refused = await api.data(APPROVE, {"id": held["order"]["id"]}, token=root.key)

    # Then it is refused, and the order still holds its codes: nothing changed
    assert refused["approveOrder"] == {
        "order": None,
        "userErrors": [
            {
                "field": None,
                "code": "INSUFFICIENT_BALANCE",
                "message": "The buyer's balance cannot pay for this order.",
            }
        ],
    }
    assert await rows(db) == before

    # And once A has the money, the approval goes through
    await funded(api, root.key, a.id, "25.00", "bank-2")
    approved = await api.data(APPROVE, {"id": held["order"]["id"]}, token=root.key)
    assert approved["approveOrder"]["order"]["status"] == "PAID"
    assert await wallet(db, a) == Decimal("0.00")


async def test_a_held_generated_order_gets_its_codes_when_approved(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given a GENERATED product and every order of channel A held for review
    root, a = tree["root"], tree["A"]
    product = (await create_product(api, root.key, fulfilment="GENERATED", validityDays=30))["id"]
    await funded(api, root.key, a.id, "100.00", "bank-1")
    await add_rule(api, root.key, "CHANNEL", 1, "REVIEW")
    assert (await place(api, a.key, buying(product, "first")))["order"]["status"] == "PAID"

    # When A orders 3 more, and A's parent (the platform) approves the held order
    held = await place(api, a.key, buying(product, "held", 3))
    assert (held["order"]["status"], held["order"]["codes"]) == ("REVIEW", [])
    approved = await api.data(APPROVE, {"id": held["order"]["id"]}, token=root.key)

    # Then 3 codes are issued for it, paid from A's balance
    order = approved["approveOrder"]["order"]
    assert order["status"] == "PAID"
    assert [c["status"] for c in order["codes"]] == ["SOLD"] * 3
    assert await wallet(db, a) == Decimal("100.00") - 4 * Decimal("25.00")


async def test_orders_that_cannot_be_held_are_refused(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given every order of A held for review after its first
    root, a = tree["root"], tree["A"]
    product = await stocked_product(api, root.key, 5)
    await funded(api, root.key, a.id, "100.00", "bank-1")
    await add_rule(api, root.key, "CHANNEL", 1, "REVIEW")
    assert (await place(api, a.key, buying(product, "first")))["order"]["status"] == "PAID"
    before = await rows(db, events=False)

    # When A orders for external payment
    refused = await place(api, a.key, buying(product, "ext", payment="EXTERNAL"))

    # Then it is refused as nothing can hold it, and nothing changed
    assert refused["userErrors"] == [
        {
            "field": None,
            "code": "RISK_BLOCKED",
            "message": "This order needs a review, and orders of products bought at order "
            "time or paid externally cannot be held for one.",
        }
    ]
    assert await rows(db, events=False) == before


async def test_an_unreviewed_order_expires_with_its_hold(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given an order held for review
    a = tree["A"]
    _, held = await held_order(api, tree, db)
    order_id = held["order"]["id"]

    # When its hold runs out (moved into the past here rather than waited for)
    await db.execute(
        "UPDATE codes SET reserved_until = now() - interval '1 second' WHERE status = 'reserved'"
    )
    await db.execute("UPDATE orders SET expires_at = now() - interval '1 second'")

    # Then it expires, and its codes are back in stock
    for _ in range(100):
        seen = (await api.data(ORDER, {"id": order_id}, token=a.key))["order"]
        if seen["status"] != "REVIEW":
            break
        await asyncio.sleep(0.05)
    assert seen == {
        "id": order_id,
        "status": "EXPIRED",
        "statusReason": "Not reviewed before its hold expired.",
        "codes": [],
    }
    assert await stock(db) == (4, 0, 1)


# --- who may ----------------------------------------------------------------------------


async def test_only_the_platforms_owners_and_operators_configure_risk_control(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given a platform FINANCE key, a platform OPERATOR key and agent A's owner key
    root = tree["root"]
    finance = await issue_key(api, root.key, root.id, "FINANCE")
    operator = await issue_key(api, root.key, root.id, "OPERATOR")
    forbidden = [
        {
            "field": None,
            "code": "FORBIDDEN",
            "message": "Only the platform's owners and operators change risk control.",
        }
    ]
    before = await rows(db)

    # When the finance key and A set a rule, block and unblock
    for token in (finance.key, tree["A"].key):
        rule = await set_rule(api, token, scope="IP", limit=1, windowSeconds=60, action="BLOCK")
        block = await api.data(
            BLOCK, {"input": {"kind": "DEVICE", "value": "d", "reason": "r"}}, token=token
        )
        unblock = await api.data(UNBLOCK, {"input": {"kind": "DEVICE", "value": "d"}}, token=token)

        # Then each is refused and nothing is written
        assert rule == {"riskRule": None, "userErrors": forbidden}
        assert block["blockSubject"] == {"blockedSubject": None, "userErrors": forbidden}
        assert unblock["unblockSubject"] == {"blockedSubject": None, "userErrors": forbidden}
    assert await rows(db) == before

    # And A may not read the rules, while the operator may set one
    body = await api.raw("{ riskRules { id } }", token=tree["A"].key)
    assert [e["extensions"] for e in body["errors"]] == [{"code": "FORBIDDEN"}]
    made = await set_rule(api, operator.key, scope="IP", limit=1, windowSeconds=60, action="BLOCK")
    assert made["riskRule"]["createdBy"] == f"api-key:{operator.key.split('_')[1]}"


async def test_held_orders_are_reviewed_from_above_by_owners_and_operators(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given an order of A held for review
    root, a = tree["root"], tree["A"]
    _, held = await held_order(api, tree, db)
    order_id = held["order"]["id"]
    root_finance = await issue_key(api, root.key, root.id, "FINANCE")
    before = await rows(db)

    # When the buyer itself, a sibling, and the platform's finance staff try to review it
    own = await api.data(APPROVE, {"id": order_id}, token=a.key)
    sibling = await api.data(REJECT, {"id": order_id, "reason": "x"}, token=tree["B"].key)
    finance = await api.data(APPROVE, {"id": order_id}, token=root_finance.key)

    # Then they are refused (the sibling does not learn the order exists); nothing changed
    not_reviewer = [
        {
            "field": ["orderId"],
            "code": "FORBIDDEN",
            "message": "Held orders are reviewed by the platform or a channel above the buyer, "
            "by an owner or operator.",
        }
    ]
    assert own["approveOrder"] == {"order": None, "userErrors": not_reviewer}
    assert finance["approveOrder"] == {"order": None, "userErrors": not_reviewer}
    assert sibling["rejectOrder"] == {
        "order": None,
        "userErrors": [{"field": ["orderId"], "code": "NOT_FOUND", "message": "No such order."}],
    }
    assert await rows(db) == before
