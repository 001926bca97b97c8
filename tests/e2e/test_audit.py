"""The audit trail through real HTTP: the hash chain over code events, auditVerify, codeTrace."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from domain.access import Role
from domain.credentials import format_api_key, new_api_key_secret
from persistence import api_keys, channels
from persistence.audit import CHAINER_LOCK
from resolvers.audit import AuditChainer
from schema import ids
from tests.conftest import Api, LiveServer, Node, eventually
from tests.e2e.test_auth import issue_key, number_in
from tests.e2e.test_ledger_api import funded
from tests.e2e.test_orders import PLACE, order_input, stocked_product

VERIFY = (
    "{ auditVerify { ok checked unchained firstBrokenAt { reason seq eventId codeId message } } }"
)

TRACE = """
query($id: ID!) {
  codeTrace(codeId: $id) {
    code { id masked status }
    events {
      id kind at actor order { id } channel { id name } method reason region usesLeft
      merchant { id name } chained
    }
  }
}
"""

REVEAL = """
mutation($id: ID!) { revealCodes(input: {orderId: $id}) { codes { id } userErrors { code } } }
"""

FORBIDDEN_VERIFY = "Only the platform's owners, operators and finance staff verify the audit trail."


async def unchained(db: asyncpg.Connection[Any]) -> int:
    count: int = await db.fetchval(
        "SELECT count(*) FROM code_events e "
        "WHERE NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.event_id = e.id)"
    )
    return count


async def kinds(db: asyncpg.Connection[Any]) -> dict[str, int]:
    """How many events of each kind there are."""
    return dict(await db.fetch("SELECT kind, count(*) FROM code_events GROUP BY kind"))


async def events(db: asyncpg.Connection[Any]) -> int:
    count: int = await db.fetchval("SELECT count(*) FROM code_events")
    return count


async def chained_up(db: asyncpg.Connection[Any]) -> None:
    """Waits for the server's chainer to chain every committed event."""

    async def done() -> bool:
        return await unchained(db) == 0

    assert await eventually(done), "the chainer did not catch up"


async def verify(api: Api, token: str) -> dict[str, Any]:
    result: dict[str, Any] = (await api.data(VERIFY, token=token))["auditVerify"]
    return result


async def sell(api: Api, tree: dict[str, Node], orders: int, buyer: str = "A") -> list[Any]:
    """``orders`` paid orders of one code each by ``buyer``, from a fresh pool."""
    product = await stocked_product(api, tree["root"].key, orders)
    await funded(api, tree["root"].key, tree[buyer].id, "1000.00", f"bank-{buyer}")
    placed = []
    for i in range(orders):
        payload = (await api.data(PLACE, order_input(product, f"o-{i}"), token=tree[buyer].key))[
            "placeOrder"
        ]
        assert payload["userErrors"] == []
        placed.append(payload)
    return placed


@contextlib.asynccontextmanager
async def tampering(db: asyncpg.Connection[Any]) -> AsyncIterator[asyncpg.Connection[Any]]:
    """The database superuser with triggers and foreign keys off, as only it can."""
    await db.execute("SET session_replication_role = replica")
    try:
        yield db
    finally:
        await db.execute("SET session_replication_role = DEFAULT")


async def entry(db: asyncpg.Connection[Any], seq: int) -> Any:
    row = await db.fetchrow("SELECT * FROM audit_chain WHERE seq = $1", seq)
    assert row is not None
    return row


def broken(reason: str, seq: int | None, event_id: int | None, code_id: int | None) -> Any:
    messages = {
        "ENTRY_MISSING": f"Chain entry {seq} is missing.",
        "EVENT_MISSING": f"The event of chain entry {seq} is missing.",
        "EVENT_CHANGED": f"The event of chain entry {seq} was changed after it was chained.",
        "UNCHAINED": "An event has not been chained within a minute.",
    }
    return {
        "reason": reason,
        "seq": seq,
        "eventId": ids.encode("CodeEvent", event_id) if event_id is not None else None,
        "codeId": ids.encode("Code", code_id) if code_id is not None else None,
        "message": messages[reason],
    }


# --- auditVerify -------------------------------------------------------------------------


async def test_an_untouched_log_verifies(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given three imported codes (IMPORTED each), three orders of one code (SOLD and
    # DELIVERED each) and one reveal
    placed = await sell(api, tree, 3)
    revealed = await api.data(REVEAL, {"id": placed[0]["order"]["id"]}, token=tree["A"].key)
    assert revealed["revealCodes"]["userErrors"] == []

    # When the chainer has caught up and the platform verifies
    await chained_up(db)
    result = await verify(api, tree["root"].key)

    # Then all 10 events are chained once, in a gapless sequence, and the chain holds
    assert result == {"ok": True, "checked": 10, "unchained": 0, "firstBrokenAt": None}
    assert await kinds(db) == {"IMPORTED": 3, "SOLD": 3, "DELIVERED": 3, "REVEALED": 1}
    assert await db.fetchval("SELECT count(*) FROM code_events") == 10
    assert [tuple(r) for r in await db.fetch("SELECT seq, event_id FROM audit_chain")] == [
        tuple(r)
        for r in await db.fetch("SELECT row_number() OVER (ORDER BY id), id FROM code_events")
    ]

    # And the chain refuses changes like the events do
    for statement in ("UPDATE audit_chain SET hash = prev_hash", "DELETE FROM audit_chain"):
        with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
            await db.execute(statement)


async def test_an_empty_log_verifies(api: Api, tree: dict[str, Node]) -> None:
    assert await verify(api, tree["root"].key) == {
        "ok": True,
        "checked": 0,
        "unchained": 0,
        "firstBrokenAt": None,
    }


async def test_a_changed_event_is_reported_first(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given five chained sales (fifteen events: the five codes' IMPORTED, then SOLD and
    # DELIVERED each)
    await sell(api, tree, 5)
    await chained_up(db)
    assert await kinds(db) == {"IMPORTED": 5, "SOLD": 5, "DELIVERED": 5}
    third, seventh = await entry(db, 3), await entry(db, 7)
    original = await db.fetchrow(
        "SELECT code_id, actor FROM code_events WHERE id = $1", third["event_id"]
    )
    assert original is not None

    # When the superuser rewrites who did the 3rd and when the 7th happened
    async with tampering(db):
        await db.execute(
            "UPDATE code_events SET actor = 'user:999' WHERE id = $1", third["event_id"]
        )
        await db.execute(
            "UPDATE code_events SET created_at = created_at - interval '1 day' WHERE id = $1",
            seventh["event_id"],
        )

    # Then verification reports the 3rd, the first change along the chain
    assert await verify(api, tree["root"].key) == {
        "ok": False,
        "checked": 2,
        "unchained": 0,
        "firstBrokenAt": broken("EVENT_CHANGED", 3, third["event_id"], original["code_id"]),
    }

    # And once the 3rd is put back as it was, the 7th is reported
    async with tampering(db):
        await db.execute(
            "UPDATE code_events SET actor = $2 WHERE id = $1", third["event_id"], original["actor"]
        )
    result = await verify(api, tree["root"].key)
    assert (
        result["checked"],
        result["firstBrokenAt"]["reason"],
        result["firstBrokenAt"]["seq"],
    ) == (
        6,
        "EVENT_CHANGED",
        7,
    )


async def test_a_deleted_event_is_reported(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given five chained sales
    await sell(api, tree, 5)
    await chained_up(db)
    fourth = await entry(db, 4)

    # When the superuser deletes the 4th event (foreign keys off)
    async with tampering(db):
        await db.execute("DELETE FROM code_events WHERE id = $1", fourth["event_id"])

    # Then verification reports its entry as pointing at nothing
    assert await verify(api, tree["root"].key) == {
        "ok": False,
        "checked": 3,
        "unchained": 0,
        "firstBrokenAt": broken("EVENT_MISSING", 4, fourth["event_id"], None),
    }


async def test_a_deleted_chain_entry_is_reported(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given five chained sales
    await sell(api, tree, 5)
    await chained_up(db)

    # When the superuser deletes the 2nd chain entry
    async with tampering(db):
        await db.execute("DELETE FROM audit_chain WHERE seq = 2")

    # Then verification reports the gap where it is
    result = await verify(api, tree["root"].key)
    assert (result["ok"], result["checked"], result["firstBrokenAt"]) == (
        False,
        1,
        broken("ENTRY_MISSING", 2, None, None),
    )


async def test_an_event_left_unchained_is_reported(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any], database_url: str
) -> None:
    # Given two chained sales (the two codes' IMPORTED, then SOLD and DELIVERED each), and
    # the chainer held up (another session holds its lock)
    await sell(api, tree, 2)
    await chained_up(db)
    assert await kinds(db) == {"IMPORTED": 2, "SOLD": 2, "DELIVERED": 2}
    chained = await events(db)
    code_id = await db.fetchval("SELECT min(code_id) FROM code_events")
    holder = await asyncpg.connect(database_url)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", CHAINER_LOCK)

        # When an event two minutes old appears and no chainer takes it
        event_id = await db.fetchval(
            "INSERT INTO code_events (code_id, kind, actor, created_at) "
            "VALUES ($1, 'FROZEN', 'user:1', now() - interval '2 minutes') RETURNING id",
            code_id,
        )
        await asyncio.sleep(1.2)  # two of the server's chainer passes

        # Then verification says the chain holds but leaves that event out
        assert await verify(api, tree["root"].key) == {
            "ok": False,
            "checked": chained,
            "unchained": 1,
            "firstBrokenAt": broken("UNCHAINED", None, event_id, code_id),
        }
    finally:
        await holder.close()

    # And once the chainer runs again, it is chained and all verifies
    await chained_up(db)
    assert await verify(api, tree["root"].key) == {
        "ok": True,
        "checked": chained + 1,
        "unchained": 0,
        "firstBrokenAt": None,
    }


async def test_an_event_committed_late_under_a_lower_id_is_chained_later(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any], database_url: str
) -> None:
    # Given a chained sale (IMPORTED, SOLD, DELIVERED), and a transaction that takes an
    # event id and stays open
    await sell(api, tree, 1)
    await chained_up(db)
    assert await kinds(db) == {"IMPORTED": 1, "SOLD": 1, "DELIVERED": 1}
    chained = await events(db)
    code_id = await db.fetchval("SELECT min(code_id) FROM code_events")
    late = await asyncpg.connect(database_url)
    try:
        slow = late.transaction()
        await slow.start()
        low = await late.fetchval(
            "INSERT INTO code_events (code_id, kind, actor) VALUES ($1, 'FROZEN', 'slow') "
            "RETURNING id",
            code_id,
        )

        # When a higher id commits first and the chainer passes several times
        high = await db.fetchval(
            "INSERT INTO code_events (code_id, kind, actor) VALUES ($1, 'UNFROZEN', 'fast') "
            "RETURNING id",
            code_id,
        )
        await chained_up(db)
        await asyncio.sleep(1.5)
        await slow.commit()
    finally:
        await late.close()

    # Then the lower id is chained after the higher one, once, and the chain holds
    await chained_up(db)
    seqs = dict(
        await db.fetch(
            "SELECT event_id, seq FROM audit_chain WHERE event_id = ANY($1::bigint[])", [low, high]
        )
    )
    assert low < high
    assert seqs == {high: chained + 1, low: chained + 2}
    assert await verify(api, tree["root"].key) == {
        "ok": True,
        "checked": chained + 2,
        "unchained": 0,
        "firstBrokenAt": None,
    }


async def test_a_backlog_larger_than_a_pass_is_chained_in_order(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given a sale, and then 4,500 events of one statement (a bulk freeze, say): more than
    # two passes of the chainer
    await sell(api, tree, 1)
    assert await kinds(db) == {"IMPORTED": 1, "SOLD": 1, "DELIVERED": 1}
    sold = await events(db)
    code_id = await db.fetchval("SELECT min(code_id) FROM code_events")
    await db.execute(
        "INSERT INTO code_events (code_id, kind, actor, detail)"
        " SELECT $1, 'FROZEN', 'user:1', jsonb_build_object('reason', 'r' || g)"
        " FROM generate_series(1, 4500) g",
        code_id,
    )

    # When the chainer has caught up
    await chained_up(db)

    # Then every event holds one place, in id order, the chainer's search starts after
    # the last, and the chain verifies
    assert [tuple(r) for r in await db.fetch("SELECT seq, event_id FROM audit_chain")] == [
        tuple(r)
        for r in await db.fetch("SELECT row_number() OVER (ORDER BY id), id FROM code_events")
    ]

    async def horizon_followed() -> bool:
        return bool(
            await db.fetchval(
                "SELECT horizon = (SELECT max(id) FROM code_events) FROM audit_chainer"
            )
        )

    assert await eventually(horizon_followed), "the horizon did not follow"
    assert await verify(api, tree["root"].key) == {
        "ok": True,
        "checked": sold + 4500,
        "unchained": 0,
        "firstBrokenAt": None,
    }


async def test_only_the_platforms_staff_verify(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given the platform's OPERATOR and FINANCE keys, a platform VERIFIER key, and agents
    root = await channels.root(db)
    secret, secret_hash = new_api_key_secret()
    verifier = await api_keys.insert(db, root.id, "verifier", Role.VERIFIER, secret_hash)
    verifier_key = format_api_key(verifier.id, secret)
    allowed = [
        await issue_key(api, tree["root"].key, tree["root"].id, r) for r in ("OPERATOR", "FINANCE")
    ]

    # Then the platform's owner, operator and finance staff verify
    for token in [tree["root"].key] + [k.key for k in allowed]:
        assert (await verify(api, token))["ok"] is True

    # And the verifier and every agent's owner get a FORBIDDEN error
    for token in (verifier_key, tree["A"].key, tree["A11"].key):
        refused = await api.raw(VERIFY, token=token)
        assert refused["data"] is None
        assert [(e["message"], e["extensions"]["code"]) for e in refused["errors"]] == [
            (FORBIDDEN_VERIFY, "FORBIDDEN")
        ]


async def test_concurrent_orders_are_each_chained_once(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any], server: LiveServer
) -> None:
    # Given stock, money, and a second chainer beside the server's (as another process
    # would run one)
    product = await stocked_product(api, tree["root"].key, 50)
    await funded(api, tree["root"].key, tree["A"].id, "2000.00", "bank-1")
    other = AuditChainer(server.app.state.services.db, 0.05)
    await other.start()

    # When 50 orders arrive at once while both chain
    try:
        results = await asyncio.gather(
            *(
                api.data(PLACE, order_input(product, f"c-{i}"), token=tree["A"].key)
                for i in range(50)
            )
        )
        await chained_up(db)
    finally:
        await other.stop()

    # Then all are paid, and each of the 150 events (the 50 codes' IMPORTED, then SOLD and
    # DELIVERED each) holds exactly one place in a gapless chain that verifies
    assert all(r["placeOrder"]["order"]["status"] == "PAID" for r in results)
    assert await kinds(db) == {"IMPORTED": 50, "SOLD": 50, "DELIVERED": 50}
    total = await events(db)
    rows = await db.fetch("SELECT seq, event_id FROM audit_chain ORDER BY seq")
    assert [r["seq"] for r in rows] == list(range(1, total + 1))
    assert sorted(r["event_id"] for r in rows) == [
        r["id"] for r in await db.fetch("SELECT id FROM code_events ORDER BY id")
    ]
    assert await verify(api, tree["root"].key) == {
        "ok": True,
        "checked": total,
        "unchained": 0,
        "firstBrokenAt": None,
    }


# --- codeTrace ---------------------------------------------------------------------------


async def trace(api: Api, token: str, code_id: str) -> Any:
    return (await api.data(TRACE, {"id": code_id}, token=token))["codeTrace"]


async def test_a_sold_delivered_revealed_code_shows_its_life(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given a code imported, A1 bought (the codes in the answer: API delivery) and revealed
    # again
    placed = (await sell(api, tree, 1, buyer="A1"))[0]
    order = placed["order"]
    code_id = placed["codes"][0]["id"]
    revealed = await api.data(REVEAL, {"id": order["id"]}, token=tree["A1"].key)
    assert [c["id"] for c in revealed["revealCodes"]["codes"]] == [code_id]
    await chained_up(db)
    rows = await db.fetch("SELECT id, created_at FROM code_events ORDER BY id")
    order_at = await db.fetchval("SELECT created_at FROM orders")

    # When A1 traces it
    seen = await trace(api, tree["A1"].key, code_id)

    # Then it sees IMPORTED (by the import, of no order or channel), then SOLD, DELIVERED
    # (API) and REVEALED, in order, by A1's key, all chained
    def event(row: asyncpg.Record, kind: str, method: str | None) -> dict[str, Any]:
        return {
            "id": ids.encode("CodeEvent", row["id"]),
            "kind": kind,
            "at": row["created_at"].isoformat(),
            "actor": f"api-key:{number_in(tree['A1'].key_id)}",
            "order": {"id": order["id"]},
            "channel": {"id": tree["A1"].id, "name": "A1"},
            "method": method,
            "reason": None,
            "region": None,
            "usesLeft": None,
            "merchant": None,
            "chained": True,
        }

    imported = {
        **event(rows[0], "IMPORTED", None),
        "actor": "import",
        "order": None,
        "channel": None,
    }
    assert seen == {
        "code": {"id": code_id, "masked": order["codes"][0]["masked"], "status": "SOLD"},
        "events": [
            imported,
            event(rows[1], "SOLD", None),
            event(rows[2], "DELIVERED", "API"),
            event(rows[3], "REVEALED", None),
        ],
    }
    # And the import came before the order, the sale and delivery happened with the
    # order, the reveal after
    assert (
        rows[0]["created_at"]
        < rows[1]["created_at"]
        == rows[2]["created_at"]
        == order_at
        < rows[3]["created_at"]
    )
    # And the IMPORTED event names the code's batch
    assert await db.fetchval(
        "SELECT e.detail = jsonb_build_object('batch_id', c.batch_id)"
        " FROM code_events e JOIN codes c ON c.id = e.code_id WHERE e.id = $1",
        rows[0]["id"],
    )

    # And its ancestors A and the platform see the same
    assert await trace(api, tree["A"].key, code_id) == seen
    assert await trace(api, tree["root"].key, code_id) == seen


async def test_other_subtrees_get_null(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given a code A1 bought and a code still in stock
    product = await stocked_product(api, tree["root"].key, 2)
    await funded(api, tree["root"].key, tree["A1"].id, "100.00", "bank-1")
    placed = (await api.data(PLACE, order_input(product, "k"), token=tree["A1"].key))["placeOrder"]
    sold = placed["codes"][0]["id"]
    in_stock = await db.fetchval("SELECT id FROM codes WHERE id <> $1", ids.decode("Code", sold))
    unsold = ids.encode("Code", in_stock)

    # Then B, and A11 below A1, see nothing of the sold code, as of one that does not exist
    for name in ("B", "A11"):
        assert await trace(api, tree[name].key, sold) is None, name
        assert await trace(api, tree[name].key, ids.encode("Code", 999_999)) is None
    # And no agent sees a code in stock, which the platform traces (its IMPORTED event only)
    await chained_up(db)
    imported = await db.fetchrow(
        "SELECT id, created_at FROM code_events WHERE code_id = $1", in_stock
    )
    assert imported is not None
    assert await trace(api, tree["A"].key, unsold) is None
    assert (await trace(api, tree["root"].key, unsold))["events"] == [
        {
            "id": ids.encode("CodeEvent", imported["id"]),
            "kind": "IMPORTED",
            "at": imported["created_at"].isoformat(),
            "actor": "import",
            "order": None,
            "channel": None,
            "method": None,
            "reason": None,
            "region": None,
            "usesLeft": None,
            "merchant": None,
            "chained": True,
        }
    ]
    # And an id of another kind, or no id at all, is null too
    assert await trace(api, tree["root"].key, placed["order"]["id"]) is None
    assert await trace(api, tree["root"].key, "not-an-id") is None


async def test_an_agent_sees_only_its_own_part_of_a_codes_life(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given a code imported, that B reserved and released (an order it cancelled), then A bought,
    # frozen with a reason, delivered by webhook and redeemed at a merchant (the events
    # as the redemption and freeze work writes them)
    placed = (await sell(api, tree, 1))[0]
    code = ids.decode("Code", placed["codes"][0]["id"])
    order = ids.decode("Order", placed["order"]["id"])
    a, b = ids.decode("Channel", tree["A"].id), ids.decode("Channel", tree["B"].id)
    b_order = await db.fetchval(
        "INSERT INTO orders (channel_id, product_id, idempotency_key, input_hash, quantity,"
        " unit_price, total, payment, status) SELECT $1, product_id, 'b', 'x', 1, 25, 25,"
        " 'BALANCE', 'CANCELLED' FROM orders WHERE id = $2 RETURNING id",
        b,
        order,
    )
    merchant = await db.fetchval(
        "INSERT INTO merchants (channel_id, name) VALUES ($1, '上海一号店') RETURNING id",
        ids.decode("Channel", tree["root"].id),
    )
    await db.executemany(
        "INSERT INTO code_events (code_id, kind, order_id, channel_id, actor, detail)"
        " VALUES ($1, $2, $3, $4, $5, $6::jsonb)",
        [
            (code, "RESERVED", b_order, b, "api-key:9", None),
            (code, "RELEASED", b_order, b, "expiry", None),
            (code, "DELIVERED", order, a, "outbox:WEBHOOK", None),
            (code, "FROZEN", None, None, "user:1", '{"reason": "sold outside CN-GD"}'),
            (
                code,
                "REDEEMED",
                order,
                a,
                "api-key:7",
                f'{{"merchant_id": {merchant}, "region": "CN-SH", "uses_left": 0}}',
            ),
        ],
    )

    # When A and the platform trace it
    def summary(seen: Any) -> list[tuple[Any, ...]]:
        return [
            (
                e["kind"],
                e["actor"],
                e["channel"] and e["channel"]["name"],
                e["method"],
                e["reason"],
                e["region"],
                e["usesLeft"],
                e["merchant"],
            )
            for e in seen["events"]
        ]

    as_a = summary(await trace(api, tree["A"].key, placed["codes"][0]["id"]))
    as_platform = summary(await trace(api, tree["root"].key, placed["codes"][0]["id"]))

    # Then A sees the import, its own sale, the deliveries, the freeze and the redemption,
    # not B's part
    key = f"api-key:{number_in(tree['A'].key_id)}"
    where = {"id": ids.encode("Merchant", merchant), "name": "上海一号店"}
    imported = [("IMPORTED", "import", None, None, None, None, None, None)]
    ours = [
        ("SOLD", key, "A", None, None, None, None, None),
        ("DELIVERED", key, "A", "API", None, None, None, None),
    ]
    later = [
        ("DELIVERED", "outbox:WEBHOOK", "A", "WEBHOOK", None, None, None, None),
        ("FROZEN", "user:1", None, None, "sold outside CN-GD", None, None, None),
        ("REDEEMED", "api-key:7", "A", None, None, "CN-SH", 0, where),
    ]
    assert as_a == imported + ours + later
    # And the platform sees B's part too
    theirs = [
        ("RESERVED", "api-key:9", "B", None, None, None, None, None),
        ("RELEASED", "expiry", "B", None, None, None, None, None),
    ]
    assert as_platform == [*imported, *ours, *theirs, *later]


async def test_verifiers_do_not_trace_codes(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    root = await channels.root(db)
    secret, secret_hash = new_api_key_secret()
    verifier = await api_keys.insert(db, root.id, "verifier", Role.VERIFIER, secret_hash)

    refused = await api.raw(
        TRACE, {"id": ids.encode("Code", 1)}, token=format_api_key(verifier.id, secret)
    )

    assert refused["data"] == {"codeTrace": None}
    assert [(e["message"], e["extensions"]["code"]) for e in refused["errors"]] == [
        ("Verifiers do not trace codes.", "FORBIDDEN")
    ]
