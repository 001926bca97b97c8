"""Webhook endpoints through real HTTP: registering, listing, disabling, and who may.

The server runs with its default guard: endpoints must be public addresses (written here
as IP literals, so no name is looked up).
"""

from __future__ import annotations

import base64
from typing import Any

import asyncpg

from tests.conftest import Api, Node
from tests.e2e.test_auth import issue_key
from tests.integration.test_outbox import CREATE_ENDPOINT, create_endpoint

PUBLIC = "https://1.1.1.1/hooks/quanyi"
ENDPOINTS = """
query($channelId: ID) {
  webhookEndpoints(channelId: $channelId) { id url kind events active disabledReason
    channel { id } }
}
"""
DISABLE = """
mutation($input: DisableWebhookEndpointInput!) {
  disableWebhookEndpoint(input: $input) {
    webhookEndpoint { id active disabledAt disabledReason }
    userErrors { field code message }
  }
}
"""


def invalid(field: str | None, message: str) -> list[dict[str, Any]]:
    return [{"field": [field] if field else None, "code": "INVALID_INPUT", "message": message}]


async def endpoint_rows(db: asyncpg.Connection[Any]) -> list[Any]:
    return [dict(r) for r in await db.fetch("SELECT * FROM webhook_endpoints ORDER BY id")]


async def test_an_owner_registers_an_endpoint_and_sees_its_secret_once(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given A's owner
    a = tree["A"]

    # When it registers a GENERIC endpoint with a key in its query, asking for no secret
    made = await create_endpoint(api, a.key, url=PUBLIC + "?token=query-key-1")

    # Then it gets the endpoint, its URL masked, and a fresh Standard Webhooks secret
    endpoint = made["webhookEndpoint"]
    assert endpoint == {
        "id": endpoint["id"],
        "url": PUBLIC + "?token=***",
        "kind": "GENERIC",
        "events": ["order.paid"],
        "active": True,
        "disabledAt": None,
        "disabledReason": None,
    }
    secret = made["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32

    # And the listing shows it without the secret, which has no field at all
    listed = (await api.data(ENDPOINTS, token=a.key))["webhookEndpoints"]
    assert listed == [
        {
            "id": endpoint["id"],
            "url": PUBLIC + "?token=***",
            "kind": "GENERIC",
            "events": ["order.paid"],
            "active": True,
            "disabledReason": None,
            "channel": {"id": a.id},
        }
    ]

    # And neither the secret nor the query's key is stored in the clear
    (row,) = await endpoint_rows(db)
    stored = repr(row).encode() + bytes(row["secret_ciphertext"])
    assert secret.encode() not in stored
    assert b"query-key-1" not in stored

    # And a secret of the caller's own is taken and not echoed; user info is masked too
    own = await create_endpoint(api, a.key, url="https://bot:pw@1.1.1.1/h?a&b=1", secret=secret)
    assert own["secret"] is None
    assert own["webhookEndpoint"]["url"] == "https://***@1.1.1.1/h?a=***&b=***"


async def test_refused_endpoints_are_told_why_and_change_nothing(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given A's owner, its finance key, and its sibling B
    a, b = tree["A"], tree["B"]
    finance = await issue_key(api, a.key, a.id, "FINANCE")
    cases: list[tuple[str, dict[str, Any], list[dict[str, Any]]]] = [
        (
            a.key,
            {"url": "ftp://1.1.1.1/hook"},
            invalid("url", "This URL may not be called: scheme 'ftp' is not http or https."),
        ),
        (
            a.key,
            {"url": "http://127.0.0.1:8080/hook"},
            invalid("url", "This URL may not be called: 127.0.0.1 is a loopback address."),
        ),
        (
            a.key,
            {"url": "http://10.0.0.7/hook"},
            invalid("url", "This URL may not be called: 10.0.0.7 is a private address."),
        ),
        (a.key, {"url": "  "}, invalid("url", "Give the endpoint's URL.")),
        (a.key, {"url": PUBLIC + "?a=b c"}, invalid("url", "A URL has no spaces or line breaks.")),
        (
            a.key,
            {"url": PUBLIC + "/" + "x" * 2048},
            invalid("url", "Give a URL of at most 2048 characters."),
        ),
        (
            a.key,
            {"url": PUBLIC, "events": ["order.paid", "order.shipped"]},
            invalid("events", "Unknown events: order.shipped. Known: code.frozen, order.paid."),
        ),
        (
            a.key,
            {"url": PUBLIC, "kind": "WECOM", "secret": "whatever"},
            invalid("secret", "A WeCom robot takes no secret: its key is in the URL."),
        ),
        (
            a.key,
            {"url": PUBLIC, "kind": "DINGTALK", "secret": "not-a-ding-secret"},
            invalid("secret", "A DingTalk robot's secret starts with SEC."),
        ),
        (
            a.key,
            {"url": PUBLIC, "secret": "plain words"},
            invalid("secret", "Give a secret of 1 to 200 characters without spaces, or none."),
        ),
        (
            a.key,
            {"url": PUBLIC, "secret": "my-secret"},
            invalid("secret", "Webhook secret must start with whsec_."),
        ),
        (
            a.key,
            {"url": PUBLIC, "secret": "whsec_!!!"},
            invalid("secret", "Webhook secret is not valid base64."),
        ),
        (
            a.key,
            {"url": "", "events": ["nope"]},
            [
                *invalid("url", "Give the endpoint's URL."),
                *invalid("events", "Unknown events: nope. Known: code.frozen, order.paid."),
            ],
        ),
        (
            a.key,
            {"url": PUBLIC, "channelId": b.id},
            [{"field": ["channelId"], "code": "NOT_FOUND", "message": "No such channel."}],
        ),
        (
            finance.key,
            {"url": PUBLIC},
            [
                {
                    "field": None,
                    "code": "FORBIDDEN",
                    "message": "Your role may not manage webhook endpoints.",
                }
            ],
        ),
    ]

    for token, fields, errors in cases:
        # When each is asked for
        answer = await api.data(CREATE_ENDPOINT, {"input": fields}, token=token)

        # Then it is refused with exactly its errors, and no endpoint or secret is made
        assert answer["createWebhookEndpoint"] == {
            "webhookEndpoint": None,
            "secret": None,
            "userErrors": errors,
        }, fields
    assert await endpoint_rows(db) == []


async def test_a_parent_manages_its_childs_endpoints_and_not_the_other_way_round(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given A registers an endpoint for its child A1
    a, a1, b = tree["A"], tree["A1"], tree["B"]
    made = await create_endpoint(api, a.key, url=PUBLIC, channelId=a1.id)
    endpoint_id = made["webhookEndpoint"]["id"]

    # Then A1 lists it as its own, A lists it under A1 and not under A
    mine = (await api.data(ENDPOINTS, token=a1.key))["webhookEndpoints"]
    assert [(e["id"], e["channel"]) for e in mine] == [(endpoint_id, {"id": a1.id})]
    assert [
        e["id"]
        for e in (await api.data(ENDPOINTS, {"channelId": a1.id}, token=a.key))["webhookEndpoints"]
    ] == [endpoint_id]
    assert (await api.data(ENDPOINTS, token=a.key))["webhookEndpoints"] == []

    # And A1 sees nothing of A's, and B cannot disable A1's endpoint
    assert (await api.data(ENDPOINTS, {"channelId": a.id}, token=a1.key))["webhookEndpoints"] == []
    before = await endpoint_rows(db)
    refused = await api.data(DISABLE, {"input": {"webhookEndpointId": endpoint_id}}, token=b.key)
    assert refused["disableWebhookEndpoint"] == {
        "webhookEndpoint": None,
        "userErrors": [
            {
                "field": ["webhookEndpointId"],
                "code": "NOT_FOUND",
                "message": "No such webhook endpoint.",
            }
        ],
    }
    assert await endpoint_rows(db) == before

    # And a finance key of A may neither list nor disable them
    finance = await issue_key(api, a.key, a.id, "FINANCE")
    listed = await api.raw(ENDPOINTS, {"channelId": a1.id}, token=finance.key)
    assert [(e["message"], e["extensions"]) for e in listed["errors"]] == [
        ("Your role may not manage webhook endpoints.", {"code": "FORBIDDEN"})
    ]
    refused = await api.data(
        DISABLE, {"input": {"webhookEndpointId": endpoint_id}}, token=finance.key
    )
    assert refused["disableWebhookEndpoint"]["userErrors"] == [
        {
            "field": None,
            "code": "FORBIDDEN",
            "message": "Your role may not manage webhook endpoints.",
        }
    ]
    assert await endpoint_rows(db) == before


async def test_disabling_keeps_the_first_reason(api: Api, tree: dict[str, Node]) -> None:
    # Given A's endpoint
    a = tree["A"]
    endpoint_id = (await create_endpoint(api, a.key, url=PUBLIC))["webhookEndpoint"]["id"]

    # When A disables it, then again with another reason
    first = await api.data(
        DISABLE, {"input": {"webhookEndpointId": endpoint_id, "reason": "moved"}}, token=a.key
    )
    again = await api.data(
        DISABLE, {"input": {"webhookEndpointId": endpoint_id, "reason": "other"}}, token=a.key
    )

    # Then it is inactive for the first reason, and the second call changed nothing
    payload = first["disableWebhookEndpoint"]
    assert payload["userErrors"] == []
    assert payload["webhookEndpoint"]["active"] is False
    assert payload["webhookEndpoint"]["disabledReason"] == "moved"
    assert again["disableWebhookEndpoint"] == payload


async def test_a_channel_has_at_most_twenty_active_endpoints(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given A with twenty active endpoints
    a = tree["A"]
    made = [await create_endpoint(api, a.key, url=f"{PUBLIC}/{i}") for i in range(20)]

    # When it asks for a twenty-first
    refused = await api.data(CREATE_ENDPOINT, {"input": {"url": PUBLIC}}, token=a.key)

    # Then it is refused, until it disables one
    assert refused["createWebhookEndpoint"]["userErrors"] == invalid(
        None, "A channel has at most 20 active webhook endpoints; disable one first."
    )
    assert len(await endpoint_rows(db)) == 20
    await api.data(
        DISABLE, {"input": {"webhookEndpointId": made[0]["webhookEndpoint"]["id"]}}, token=a.key
    )
    assert (await create_endpoint(api, a.key, url=PUBLIC))["webhookEndpoint"]["active"]
