"""setSplitRule: preset ratios per product or channel, set by the platform's finance."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from persistence import channels, split_rules
from schema import ids
from tests.conftest import Api, Node
from tests.e2e.test_auth import issue_key
from tests.e2e.test_catalog import create_product

SET_RULE = """
mutation($input: SetSplitRuleInput!) {
  setSplitRule(input: $input) {
    splitRule { kind supplierPercent platformPercent agentPercents
                product { id } channel { id } }
    userErrors { field code message }
  }
}
"""


async def rules_in(db: asyncpg.Connection[Any]) -> list[dict[str, Any]]:
    return [dict(r) for r in await db.fetch("SELECT * FROM split_rules ORDER BY id")]


async def test_the_platform_sets_a_ratio_for_a_product(api: Api, tree: dict[str, Node]) -> None:
    # Given a product
    product = await create_product(api, tree["root"].key)

    # When the platform sets a 70/10 split with 15 and 5 for the first two agent levels
    set_rule = await api.data(
        SET_RULE,
        {
            "input": {
                "productId": product["id"],
                "kind": "RATIO",
                "supplierPercent": "70",
                "platformPercent": "10",
                "agentPercents": ["15", "5"],
            }
        },
        token=tree["root"].key,
    )

    # Then the rule is stored and listed
    assert set_rule["setSplitRule"] == {
        "splitRule": {
            "kind": "RATIO",
            "supplierPercent": "70.000",
            "platformPercent": "10.000",
            "agentPercents": ["15.000", "5.000"],
            "product": {"id": product["id"]},
            "channel": None,
        },
        "userErrors": [],
    }
    listed = await api.data("{ splitRules { kind product { id } } }", token=tree["root"].key)
    assert listed["splitRules"] == [{"kind": "RATIO", "product": {"id": product["id"]}}]


@pytest.mark.parametrize(
    ("given", "error"),
    [
        (
            {"kind": "RATIO", "supplierPercent": "70", "platformPercent": "20"},
            {
                "field": ["agentPercents"],
                "code": "INVALID_INPUT",
                "message": "Shares must add up to 100, not 90.",
            },
        ),
        (
            {"kind": "RATIO", "supplierPercent": "70"},
            {
                "field": ["supplierPercent"],
                "code": "INVALID_INPUT",
                "message": "A RATIO rule needs supplierPercent and platformPercent.",
            },
        ),
        (
            {"kind": "PRICE_CHAIN", "platformPercent": "10"},
            {
                "field": ["supplierPercent"],
                "code": "INVALID_INPUT",
                "message": "A PRICE_CHAIN rule takes no percentages.",
            },
        ),
        (
            {"kind": "RATIO", "supplierPercent": "-5", "platformPercent": "105"},
            {
                "field": ["agentPercents"],
                "code": "INVALID_INPUT",
                "message": "Shares are percentages of 0 or more, with at most 3 decimals.",
            },
        ),
    ],
)
async def test_bad_rules_are_refused_and_nothing_is_stored(
    api: Api,
    tree: dict[str, Node],
    db: asyncpg.Connection[Any],
    given: dict[str, Any],
    error: dict[str, Any],
) -> None:
    product = await create_product(api, tree["root"].key)

    refused = await api.data(
        SET_RULE, {"input": {"productId": product["id"], **given}}, token=tree["root"].key
    )

    assert refused["setSplitRule"] == {"splitRule": None, "userErrors": [error]}
    assert await rules_in(db) == []


async def test_only_platform_owners_and_finance_set_rules(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given a platform FINANCE user, a platform OPERATOR and agent A's owner
    finance = (await issue_key(api, tree["root"].key, tree["root"].id, "FINANCE")).key
    operator = (await issue_key(api, tree["root"].key, tree["root"].id, "OPERATOR")).key
    rule = {"channelId": tree["A1"].id, "kind": "PRICE_CHAIN"}

    # When each sets a rule on A1
    by_operator = await api.data(SET_RULE, {"input": rule}, token=operator)
    by_agent = await api.data(SET_RULE, {"input": rule}, token=tree["A"].key)
    by_b = await api.data(SET_RULE, {"input": rule}, token=tree["B"].key)

    # Then the operator and the agent are forbidden, B does not even find A1
    forbidden = {
        "field": None,
        "code": "FORBIDDEN",
        "message": "Only the platform's owners and finance set split rules.",
    }
    assert by_operator["setSplitRule"]["userErrors"] == [forbidden]
    assert by_agent["setSplitRule"]["userErrors"] == [forbidden]
    assert by_b["setSplitRule"]["userErrors"] == [
        {"field": ["channelId"], "code": "NOT_FOUND", "message": "No such channel."}
    ]
    assert await rules_in(db) == []

    # And finance may
    by_finance = await api.data(SET_RULE, {"input": rule}, token=finance)
    assert by_finance["setSplitRule"]["splitRule"]["channel"] == {"id": tree["A1"].id}


async def test_the_product_rule_wins_then_the_nearest_channel(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given a RATIO rule on A, a PRICE_CHAIN rule on A1, and a product
    product = await create_product(api, tree["root"].key)
    ratio = {"kind": "RATIO", "supplierPercent": "60", "platformPercent": "40"}
    for input in (
        {"channelId": tree["A"].id, **ratio},
        {"channelId": tree["A1"].id, "kind": "PRICE_CHAIN"},
    ):
        assert (await api.data(SET_RULE, {"input": input}, token=tree["root"].key))["setSplitRule"][
            "userErrors"
        ] == []
    product_id = ids.decode("Product", product["id"])
    assert product_id is not None

    async def rule_for(node: Node) -> str | None:
        key = ids.decode("Channel", node.id)
        assert key is not None
        channel = await channels.get_in_subtree(db, key, "1")
        assert channel is not None
        found = await split_rules.rule_for_sale(db, product_id, channel.path)
        return found.kind.value if found else None

    # Then A sells by ratio, A1 and A11 by the price chain (the nearest rule), B by default
    assert [await rule_for(tree[n]) for n in ("A", "A1", "A11", "B")] == [
        "RATIO",
        "PRICE_CHAIN",
        "PRICE_CHAIN",
        None,
    ]

    # And once the product has its own rule, it wins everywhere
    await api.data(
        SET_RULE, {"input": {"productId": product["id"], **ratio}}, token=tree["root"].key
    )
    assert [await rule_for(tree[n]) for n in ("A", "A1", "A11", "B")] == ["RATIO"] * 4

    # And clearing it restores the channels' rules
    cleared = await api.data(
        SET_RULE,
        {"input": {"productId": product["id"], "kind": "RATIO", "clear": True}},
        token=tree["root"].key,
    )
    assert cleared["setSplitRule"]["userErrors"] == []
    assert await rule_for(tree["B"]) is None
