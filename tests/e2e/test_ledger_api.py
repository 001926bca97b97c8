"""The ledger through real HTTP: top-ups, balances, statements (GraphQL and CSV), the
trial balance, and who may see and move whose money."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx

from tests.conftest import ISSUE_KEY, Api, LiveServer, Node

D = Decimal
SINCE = "2000-01-01T00:00:00+00:00"
UNTIL = "2100-01-01T00:00:00+00:00"

TOP_UP = """
mutation($input: TopUpBalanceInput!) {
  topUpBalance(input: $input) {
    channel { id balance }
    transaction { id kind reference amount memo }
    userErrors { field code message }
  }
}
"""

BALANCES = "query($id: ID) { channel(id: $id) { balance earnings } }"

STATEMENT = """
query($id: ID, $from: DateTime!, $to: DateTime!, $account: StatementAccount! = CHANNEL_WALLET,
      $first: Int = 100, $after: String) {
  statement(channelId: $id, from: $from, to: $to, account: $account) {
    channel { id }
    account from to opening closing
    totals { kind debit credit net count }
    entries(first: $first, after: $after) {
      edges { node { id transactionId kind amount balanceAfter reference memo createdAt } }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""

TRIAL_BALANCE = """
{ trialBalance { total accounts { kind channel { id } supplierId balance displayBalance } } }
"""

CSV_COLUMNS = [
    "entry_id",
    "transaction_id",
    "created_at",
    "kind",
    "reference",
    "memo",
    "amount",
    "balance_after",
]


async def top_up(
    api: Api,
    token: str,
    channel_id: str,
    amount: str,
    reference: str,
    memo: str | None = None,
) -> dict[str, Any]:
    data = await api.data(
        TOP_UP,
        {
            "input": {
                "channelId": channel_id,
                "amount": amount,
                "reference": reference,
                "memo": memo,
            }
        },
        token=token,
    )
    payload: dict[str, Any] = data["topUpBalance"]
    return payload


async def funded(api: Api, token: str, channel_id: str, amount: str, reference: str) -> None:
    payload = await top_up(api, token, channel_id, amount, reference)
    assert payload["userErrors"] == [], payload


async def balances(api: Api, tree: dict[str, Node]) -> dict[str, str]:
    """Every channel's wallet, as the platform reads it."""
    result = {}
    for name, node in tree.items():
        seen = await api.data(BALANCES, {"id": node.id}, token=tree["root"].key)
        result[name] = seen["channel"]["balance"]
    return result


async def ledger_rows(db: asyncpg.Connection[Any]) -> list[Any]:
    """What a refused call must not change."""
    return [
        await db.fetch("SELECT * FROM ledger_transactions ORDER BY id"),
        await db.fetch("SELECT * FROM ledger_entries ORDER BY id"),
        await db.fetch("SELECT id, kind, channel_id, balance FROM ledger_accounts ORDER BY id"),
    ]


async def now(db: asyncpg.Connection[Any]) -> str:
    moment: datetime = await db.fetchval("SELECT clock_timestamp()")
    return moment.isoformat()


async def statement(
    api: Api,
    token: str,
    channel_id: str | None,
    since: str = SINCE,
    until: str = UNTIL,
    **more: Any,
) -> dict[str, Any]:
    data = await api.data(
        STATEMENT, {"id": channel_id, "from": since, "to": until, **more}, token=token
    )
    result: dict[str, Any] = data["statement"]
    return result


async def issue_key(api: Api, owner: Node, role: str) -> str:
    issued = await api.data(
        ISSUE_KEY,
        {"input": {"channelId": owner.id, "name": f"{role} key", "role": role}},
        token=owner.key,
    )
    secret: str = issued["issueApiKey"]["secret"]
    return secret


async def get_csv(
    server: LiveServer,
    channel_id: str,
    token: str | None,
    params: dict[str, str] | None = None,
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.get(
            f"{server.url}/exports/statements/{channel_id}.csv",
            params={"from": SINCE, "to": UNTIL} if params is None else params,
            headers=headers,
        )


def uncell(value: str) -> str:
    """A CSV cell as it was before it was neutralised for spreadsheets."""
    return value[1:] if value.startswith("'") else value


# --- top-ups -----------------------------------------------------------------------------


async def test_the_platform_and_ancestors_top_up_down_the_tree(
    api: Api, tree: dict[str, Node]
) -> None:
    # Given the tree with empty wallets
    assert await balances(api, tree) == dict.fromkeys(tree, "0.00")

    # When the platform tops up A from payments received
    first = await top_up(api, tree["root"].key, tree["A"].id, "100", "inv-1", "wire 0001")

    # Then A holds it
    assert first["userErrors"] == []
    assert first["channel"] == {"id": tree["A"].id, "balance": "100.00"}
    assert first["transaction"]["kind"] == "TOP_UP"
    assert first["transaction"]["amount"] == "100.00"
    assert first["transaction"]["reference"] == "inv-1"
    assert first["transaction"]["memo"] == "wire 0001"

    # When A tops up its child A1 and its grandchild A11 from its own wallet
    await funded(api, tree["A"].key, tree["A1"].id, "30.00", "a-1")
    await funded(api, tree["A"].key, tree["A11"].id, "5.5", "a-2")
    # And the platform tops up A11 directly
    await funded(api, tree["root"].key, tree["A11"].id, "1.00", "inv-2")

    # Then the money moved between wallets, and none came from nowhere
    assert await balances(api, tree) == {
        "root": "0.00",
        "A": "64.50",
        "A1": "30.00",
        "A11": "6.50",
        "B": "0.00",
    }

    # And each channel reads its own wallet, and its earnings are empty
    for name, expected in (("A", "64.50"), ("A1", "30.00"), ("A11", "6.50")):
        own = await api.data(BALANCES, {"id": None}, token=tree[name].key)
        assert own["channel"] == {"balance": expected, "earnings": "0.00"}


async def test_top_up_refusals_are_typed_and_change_nothing(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given A holding 10.00, and an operator and a finance key of A
    await funded(api, tree["root"].key, tree["A"].id, "10.00", "seed")
    operator = await issue_key(api, tree["A"], "OPERATOR")
    finance = await issue_key(api, tree["A"], "FINANCE")
    before = await ledger_rows(db)
    before_balances = await balances(api, tree)

    def err(code: str, field: str | None, message: str) -> dict[str, Any]:
        return {"field": [field] if field else None, "code": code, "message": message}

    no_such = err("NOT_FOUND", "channelId", "No such channel.")
    cases: list[tuple[str, str, str, str, list[dict[str, Any]]]] = [
        # Outside the subtree, whatever else is wrong: NOT_FOUND
        (tree["A1"].key, tree["A"].id, "1.00", "r", [no_such]),
        (tree["A1"].key, tree["B"].id, "1.00", "r", [no_such]),
        (tree["A"].key, tree["root"].id, "0", "", [no_such]),
        (tree["A"].key, "Q2hhbm5lbDo5ODc2NTQzMjE=", "1.00", "r", [no_such]),
        (tree["A"].key, "not an id", "1.00", "r", [no_such]),
        # Roles that may not move money
        (
            operator,
            tree["A1"].id,
            "1.00",
            "r",
            [err("FORBIDDEN", None, "Your role may not top up balances.")],
        ),
        # Nobody tops up itself, not even the platform
        *[
            (
                tree[name].key,
                tree[name].id,
                "1.00",
                "r",
                [
                    err(
                        "FORBIDDEN",
                        "channelId",
                        "A channel cannot top up its own balance: its parent or the platform does.",
                    )
                ],
            )
            for name in ("A", "root")
        ],
        # Amounts above zero in whole cents, a reference, all problems at once
        *[
            (
                tree["A"].key,
                tree["A1"].id,
                amount,
                "r",
                [
                    err(
                        "INVALID_INPUT",
                        "amount",
                        "Give an amount above 0 with at most 2 decimal places.",
                    )
                ],
            )
            for amount in ("0", "-1.00", "1.001", "0.00")
        ],
        (
            tree["A"].key,
            tree["A1"].id,
            "1e12",
            "r",
            [err("INVALID_INPUT", "amount", "Give an amount below 1000000000000.")],
        ),
        (
            tree["A"].key,
            tree["A1"].id,
            "-5",
            "   ",
            [
                err(
                    "INVALID_INPUT",
                    "amount",
                    "Give an amount above 0 with at most 2 decimal places.",
                ),
                err("INVALID_INPUT", "reference", "Give a reference of 1 to 100 characters."),
            ],
        ),
        # More than A's wallet holds
        (
            tree["A"].key,
            tree["A1"].id,
            "10.01",
            "too much",
            [err("INSUFFICIENT_BALANCE", "amount", "Your balance cannot pay this top-up.")],
        ),
    ]
    for token, target, amount, reference, expected in cases:
        # When each is tried
        refused = await top_up(api, token, target, amount, reference)

        # Then it is refused with exactly these errors
        assert refused == {"channel": None, "transaction": None, "userErrors": expected}, (
            target,
            amount,
            reference,
        )

    # And nothing changed in the ledger
    assert await ledger_rows(db) == before
    assert await balances(api, tree) == before_balances

    # While A's finance staff may top up A1
    paid = await top_up(api, finance, tree["A1"].id, "10.00", "all of it")
    assert paid["userErrors"] == []
    assert (await balances(api, tree))["A"] == "0.00"


async def test_top_up_is_idempotent_on_its_reference(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given the platform topped up A with reference pay-7
    first = await top_up(api, tree["root"].key, tree["A"].id, "25.00", "pay-7")

    # When it retries the same top-up, written differently
    again = await top_up(api, tree["root"].key, tree["A"].id, "25", " pay-7 ")

    # Then it gets the same result and A was topped up once
    assert again == first
    assert (await balances(api, tree))["A"] == "25.00"
    before = await ledger_rows(db)

    # When the reference comes with another amount, or for another channel
    for target, amount in ((tree["A"].id, "26.00"), (tree["B"].id, "25.00")):
        conflict = await top_up(api, tree["root"].key, target, amount, "pay-7")

        # Then it is a conflict, and nothing changed
        assert conflict == {
            "channel": None,
            "transaction": None,
            "userErrors": [
                {
                    "field": ["reference"],
                    "code": "IDEMPOTENCY_CONFLICT",
                    "message": "This reference was used for another top-up.",
                }
            ],
        }
    assert await ledger_rows(db) == before

    # And another payer's references are its own
    mine = await top_up(api, tree["A"].key, tree["A1"].id, "5.00", "pay-7")
    assert mine["userErrors"] == []
    assert mine["transaction"]["reference"] == "pay-7"

    # And ten identical retries at once top up B once
    results = await asyncio.gather(
        *(top_up(api, tree["root"].key, tree["B"].id, "3.00", "pay-8") for _ in range(10))
    )
    assert all(r == results[0] for r in results)
    assert results[0]["userErrors"] == []
    assert (await balances(api, tree))["B"] == "3.00"


# --- statements --------------------------------------------------------------------------


async def test_a_statement_shows_opening_totals_entries_and_closing(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given A topped up with 100.00 before a moment, and then money moving both ways
    await funded(api, tree["root"].key, tree["A"].id, "100.00", "inv-1")
    moment = await now(db)
    await funded(api, tree["A"].key, tree["A1"].id, "30.00", "a-1")
    await funded(api, tree["A"].key, tree["A11"].id, "5.50", "a-2")
    await funded(api, tree["root"].key, tree["A"].id, "20.00", "inv-2")

    # When A reads its wallet's statement of all time
    full = await statement(api, tree["A"].key, None)

    # Then it runs from 0.00 to what A holds, with every entry as A sees it
    assert full["channel"] == {"id": tree["A"].id}
    assert full["account"] == "CHANNEL_WALLET"
    assert (full["opening"], full["closing"]) == ("0.00", "84.50")
    assert full["totals"] == [
        {"kind": "TOP_UP", "debit": "35.50", "credit": "120.00", "net": "84.50", "count": 4}
    ]
    nodes = [e["node"] for e in full["entries"]["edges"]]
    assert [(n["amount"], n["balanceAfter"], n["reference"]) for n in nodes] == [
        ("100.00", "100.00", "inv-1"),
        ("-30.00", "70.00", "a-1"),
        ("-5.50", "64.50", "a-2"),
        ("20.00", "84.50", "inv-2"),
    ]

    # And from the moment on, the opening holds what came before
    later = await statement(api, tree["A"].key, tree["A"].id, moment)
    assert datetime.fromisoformat(later["from"]) == datetime.fromisoformat(moment)
    assert (later["opening"], later["closing"]) == ("100.00", "84.50")
    assert [e["node"]["amount"] for e in later["entries"]["edges"]] == ["-30.00", "-5.50", "20.00"]

    # And the entries page with cursors, the balance running on across pages
    page1 = await statement(api, tree["A"].key, None, first=3)
    page2 = await statement(
        api, tree["A"].key, None, first=3, after=page1["entries"]["pageInfo"]["endCursor"]
    )
    assert page1["entries"]["pageInfo"]["hasNextPage"] is True
    assert page2["entries"]["pageInfo"]["hasNextPage"] is False
    paged = [e["node"] for e in page1["entries"]["edges"] + page2["entries"]["edges"]]
    assert paged == nodes

    # And A1 sees its top-up as money in, and an empty earnings statement
    a1 = await statement(api, tree["A1"].key, None)
    assert [(e["node"]["kind"], e["node"]["amount"]) for e in a1["entries"]["edges"]] == [
        ("TOP_UP", "30.00")
    ]
    earned = await statement(api, tree["A1"].key, None, account="CHANNEL_EARNINGS")
    assert (earned["opening"], earned["closing"], earned["totals"]) == ("0.00", "0.00", [])
    assert earned["entries"]["edges"] == []

    # And a period that ends before it starts is a bad request
    backwards = await api.raw(
        STATEMENT, {"id": None, "from": UNTIL, "to": SINCE}, token=tree["A"].key
    )
    assert backwards["data"] == {"statement": None}
    assert [(e["message"], e["extensions"]["code"]) for e in backwards["errors"]] == [
        ("`from` must not be after `to`.", "BAD_REQUEST")
    ]


async def test_statements_and_balances_are_read_within_the_subtree_only(
    api: Api, tree: dict[str, Node], server: LiveServer
) -> None:
    # Given money in A, A1, A11 and B
    await funded(api, tree["root"].key, tree["A"].id, "50.00", "a")
    await funded(api, tree["root"].key, tree["B"].id, "50.00", "b")
    await funded(api, tree["A"].key, tree["A1"].id, "20.00", "a1")
    await funded(api, tree["A1"].key, tree["A11"].id, "5.00", "a11")

    for target in ("A", "B", "root"):
        # When A1 asks for the statement, balance or CSV of a channel outside its subtree
        refused = await api.raw(
            STATEMENT, {"id": tree[target].id, "from": SINCE, "to": UNTIL}, token=tree["A1"].key
        )
        seen = await api.data(BALANCES, {"id": tree[target].id}, token=tree["A1"].key)
        exported = await get_csv(server, tree[target].id, tree["A1"].key)

        # Then there is no such channel: not forbidden, not found
        assert refused["data"] == {"statement": None}
        assert [(e["message"], e["extensions"]["code"]) for e in refused["errors"]] == [
            ("No such channel.", "NOT_FOUND")
        ]
        assert seen == {"channel": None}
        assert (exported.status_code, exported.text) == (404, "No such channel.\n")

    # And a channel that does not exist looks the same
    missing = await get_csv(server, "Q2hhbm5lbDo5ODc2NTQzMjE=", tree["A1"].key)
    assert missing.status_code == 404

    # While within its subtree it reads them
    a11 = await statement(api, tree["A1"].key, tree["A11"].id)
    assert a11["closing"] == "5.00"
    own = await get_csv(server, tree["A11"].id, tree["A1"].key)
    assert own.status_code == 200

    # And the CSV route wants valid credentials, then good dates and account
    assert (await get_csv(server, tree["A1"].id, None)).status_code == 401
    assert (await get_csv(server, tree["A1"].id, "qk_bogus")).status_code == 401
    for params in (
        {"from": "yesterday", "to": UNTIL},
        {"to": UNTIL},
        {"from": UNTIL, "to": SINCE},
        {"from": SINCE, "to": UNTIL, "account": "PLATFORM_REVENUE"},
    ):
        bad = await get_csv(server, tree["A1"].id, tree["A1"].key, params)
        assert bad.status_code == 400, params


async def test_the_csv_statement_re_adds_to_the_graphql_totals(
    api: Api, tree: dict[str, Node], server: LiveServer, db: asyncpg.Connection[Any]
) -> None:
    # Given money moving through A, with memos and references a spreadsheet would run
    await funded(api, tree["root"].key, tree["A"].id, "0.50", "early")
    moment = await now(db)
    payments = [
        (tree["root"], "A", "100.00", "=1+1", '=HYPERLINK("http://evil","x")'),
        (tree["A"], "A1", "12.34", "@SUM(A1)", "+1"),
        (tree["A"], "A11", "0.01", "-neg", "-5 discount"),
        (tree["root"], "A", "7.77", "plain", None),
        (tree["A"], "A1", "33.33", "again", "@me"),
    ]
    for payer, target, amount, reference, memo in payments:
        paid = await top_up(api, payer.key, tree[target].id, amount, reference, memo)
        assert paid["userErrors"] == []
    until = (datetime.fromisoformat(await now(db)) + timedelta(seconds=1)).isoformat()

    # When A reads the period's statement through GraphQL and as CSV
    graphql = await statement(api, tree["A"].key, None, moment, until)
    exported = await get_csv(server, tree["A"].id, tree["A"].key, {"from": moment, "to": until})

    # Then the CSV has a header and one row per entry, the same entries
    assert exported.status_code == 200
    assert exported.headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0] == CSV_COLUMNS
    records = [dict(zip(CSV_COLUMNS, row, strict=True)) for row in rows[1:]]
    nodes = [e["node"] for e in graphql["entries"]["edges"]]
    assert len(records) == len(nodes) == 5
    assert [r["entry_id"] for r in records] == [n["id"] for n in nodes]

    # And no cell would run as a formula: those that could start with a quote
    for record in records:
        for cell in record.values():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    assert [r["memo"] for r in records] == [
        '\'=HYPERLINK("http://evil","x")',
        "'+1",
        "'-5 discount",
        "",
        "'@me",
    ]
    assert [r["reference"] for r in records] == ["'=1+1", "'@SUM(A1)", "'-neg", "plain", "again"]

    # And the amounts, quotes stripped, re-add to the GraphQL figures
    amounts = [D(uncell(r["amount"])) for r in records]
    assert [str(a) for a in amounts] == [n["amount"] for n in nodes]
    assert sum(amounts) == D(graphql["closing"]) - D(graphql["opening"]) == D("62.09")
    for total in graphql["totals"]:
        of_kind = [a for a, r in zip(amounts, records, strict=True) if r["kind"] == total["kind"]]
        assert sum(of_kind) == D(total["net"])
        assert len(of_kind) == total["count"]
        assert -sum(a for a in of_kind if a < 0) == D(total["debit"])
        assert sum(a for a in of_kind if a > 0) == D(total["credit"])
    assert D(graphql["opening"]) == D("0.50")
    assert [uncell(r["balance_after"]) for r in records] == [n["balanceAfter"] for n in nodes]
    assert uncell(records[-1]["balance_after"]) == graphql["closing"]

    # And an account never posted to exports its header only
    empty = await get_csv(
        server,
        tree["A"].id,
        tree["A"].key,
        {"from": SINCE, "to": UNTIL, "account": "CHANNEL_EARNINGS"},
    )
    assert list(csv.reader(io.StringIO(empty.text))) == [CSV_COLUMNS]


# --- the trial balance -------------------------------------------------------------------


async def test_the_trial_balance_sums_to_zero_and_is_the_platforms_only(
    api: Api, tree: dict[str, Node]
) -> None:
    # Given a series of top-ups down the tree
    await funded(api, tree["root"].key, tree["A"].id, "1000.00", "t1")
    await funded(api, tree["root"].key, tree["B"].id, "0.01", "t2")
    await funded(api, tree["A"].key, tree["A1"].id, "333.33", "t3")
    await funded(api, tree["A1"].key, tree["A11"].id, "111.11", "t4")
    await funded(api, tree["A"].key, tree["A11"].id, "0.99", "t5")

    # When the platform reads the trial balance
    trial = (await api.data(TRIAL_BALANCE, token=tree["root"].key))["trialBalance"]

    # Then every account is there and the balances sum to zero
    assert trial["total"] == "0.00"
    assert sum(D(a["balance"]) for a in trial["accounts"]) == 0
    by_owner = {
        (a["kind"], a["channel"]["id"] if a["channel"] else None): a for a in trial["accounts"]
    }
    clearing = by_owner[("PAYMENT_CLEARING", None)]
    assert (clearing["balance"], clearing["displayBalance"]) == ("1000.01", "1000.01")
    wallets = {
        name: by_owner[("CHANNEL_WALLET", tree[name].id)] for name in ("A", "A1", "A11", "B")
    }
    assert {n: (w["balance"], w["displayBalance"]) for n, w in wallets.items()} == {
        "A": ("-665.68", "665.68"),
        "A1": ("-222.22", "222.22"),
        "A11": ("-112.10", "112.10"),
        "B": ("-0.01", "0.01"),
    }
    assert len(trial["accounts"]) == 5
    assert all(a["supplierId"] is None for a in trial["accounts"])

    # And the display balances are what the channels see
    assert {n: w["displayBalance"] for n, w in wallets.items()} == {
        n: b for n, b in (await balances(api, tree)).items() if n in wallets
    }

    # And nobody but the platform reads it
    for name in ("A", "A1", "B"):
        refused = await api.raw(TRIAL_BALANCE, token=tree[name].key)
        assert refused["data"] is None
        assert [(e["message"], e["extensions"]["code"]) for e in refused["errors"]] == [
            ("Only the platform sees the trial balance.", "FORBIDDEN")
        ]
