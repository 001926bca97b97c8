"""Authentication and roles through real HTTP: credentials, login, stored secrets, roles."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from domain.credentials import sign_session
from settings import Settings
from tests.conftest import CREATE_CHANNEL, ISSUE_KEY, SESSION_SECRET, Api, Node, make_channel

AUTH_REQUIRED = "Authentication required: send `Authorization: Bearer <token>`."
VIEWER = "{ viewer { role channel { id } user { email } apiKey { id } } }"

CREATE_USER = """
mutation($input: CreateUserInput!) {
  createUser(input: $input) {
    user { id email role channel { id } }
    userErrors { field code message }
  }
}
"""

LOGIN = """
mutation($input: LoginInput!) {
  login(input: $input) {
    token expiresAt
    user { email }
    userErrors { field code message }
  }
}
"""

REVOKE_KEY = """
mutation($input: RevokeApiKeyInput!) {
  revokeApiKey(input: $input) {
    apiKey { id revokedAt }
    userErrors { field code message }
  }
}
"""

INVALID_CREDENTIALS = [
    {"field": None, "code": "INVALID_CREDENTIALS", "message": "Wrong e-mail address or password."}
]
RATE_LIMITED = [
    {"field": None, "code": "RATE_LIMITED", "message": "Too many failed logins; try again later."}
]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Fewer login attempts than the default, so the lock-out test hashes less."""
    return settings.model_copy(update={"login_attempts": 3})


def number_in(global_id: str) -> int:
    """The number inside a global id (tests only: clients treat ids as opaque)."""
    return int(base64.b64decode(global_id).decode().rpartition(":")[2])


def forbidden(message: str) -> list[dict[str, Any]]:
    return [{"field": None, "code": "FORBIDDEN", "message": message}]


async def post(api: Api, query: str, headers: dict[str, Any]) -> dict[str, Any]:
    response = await api.http.post(api.url, json={"query": query}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_unauthenticated(body: dict[str, Any], message: str) -> None:
    assert body["data"] is None, body
    assert [(e["message"], e["extensions"]) for e in body["errors"]] == [
        (message, {"code": "UNAUTHENTICATED"})
    ]


async def snapshot(db: asyncpg.Connection[Any]) -> dict[str, list[str]]:
    """Every row of every table, as text: what a refused call must leave as it was."""
    tables = await db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {
        t["tablename"]: sorted(
            r["row"] for r in await db.fetch(f'SELECT t::text AS row FROM "{t["tablename"]}" t')
        )
        for t in tables
    }


async def create_user(
    api: Api, token: str, email: str, password: str, role: str, channel_id: str | None = None
) -> dict[str, Any]:
    created = await api.data(
        CREATE_USER,
        {"input": {"email": email, "password": password, "role": role, "channelId": channel_id}},
        token=token,
    )
    payload = created["createUser"]
    assert payload["userErrors"] == []
    user: dict[str, Any] = payload["user"]
    return user


async def login(api: Api, email: str, password: str) -> dict[str, Any]:
    answer = await api.data(LOGIN, {"input": {"email": email, "password": password}})
    payload: dict[str, Any] = answer["login"]
    return payload


async def session_of(api: Api, email: str, password: str) -> str:
    payload = await login(api, email, password)
    assert payload["userErrors"] == []
    token: str = payload["token"]
    return token


async def issue_key(api: Api, token: str, channel_id: str, role: str) -> Node:
    issued = await api.data(
        ISSUE_KEY,
        {"input": {"channelId": channel_id, "name": f"{role} key", "role": role}},
        token=token,
    )
    key = issued["issueApiKey"]
    assert key["userErrors"] == []
    return Node(id=channel_id, key=key["secret"], key_id=key["apiKey"]["id"])


# --- refused credentials --------------------------------------------------------------


async def test_refused_credentials_get_unauthenticated_and_no_data(
    api: Api, platform_key: str
) -> None:
    # Given the platform key works
    ok = await post(api, VIEWER, {"Authorization": f"Bearer {platform_key}"})
    assert ok["data"]["viewer"]["role"] == "OWNER"
    key_id = platform_key.split("_")[1]

    # When the viewer is asked for with missing, malformed, garbage or unknown credentials
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, AUTH_REQUIRED),
        ({"Authorization": ""}, AUTH_REQUIRED),
        ({"Authorization": "Bearer"}, AUTH_REQUIRED),
        ({"Authorization": "Bearer qk_nonsense"}, "Malformed API key."),
        ({"Authorization": "Bearer qk_12_"}, "Malformed API key."),
        ({"Authorization": b"Bearer qk_\xb2_secret"}, "Malformed API key."),
        ({"Authorization": "Basic xyz"}, "Use `Authorization: Bearer <token>`."),
        ({"Authorization": f"Token {platform_key}"}, "Use `Authorization: Bearer <token>`."),
        (
            {"Authorization": "d8a7f6e5c4b3a2918f7e6d5c"},
            "Unrecognised token: expected an API key or a session token.",
        ),
        (
            {"Authorization": "Bearer random garbage here"},
            "Unrecognised token: expected an API key or a session token.",
        ),
        ({"Authorization": "Bearer qs_nonsense"}, "Malformed session token."),
        ({"Authorization": "Bearer qk_987654321_" + "x" * 43}, "Unknown API key."),
        # the platform key's id with somebody else's secret
        ({"Authorization": f"Bearer qk_{key_id}_" + "x" * 43}, "Unknown API key."),
    ]

    # Then each gets an UNAUTHENTICATED GraphQL error saying why, and no data
    for headers, message in cases:
        body = await post(api, VIEWER, headers)
        assert_unauthenticated(body, message)


async def test_revoked_key_is_refused_on_the_very_next_request(
    api: Api, platform_key: str, db: asyncpg.Connection[Any]
) -> None:
    # Given a working key of channel A
    a = await make_channel(api, platform_key, "A")
    seen = await api.data(VIEWER, token=a.key)
    assert seen["viewer"]["channel"] == {"id": a.id}

    # When the platform revokes it
    revoked = await api.data(REVOKE_KEY, {"input": {"apiKeyId": a.key_id}}, token=platform_key)
    assert revoked["revokeApiKey"]["userErrors"] == []
    assert revoked["revokeApiKey"]["apiKey"]["id"] == a.key_id
    assert revoked["revokeApiKey"]["apiKey"]["revokedAt"] is not None

    # Then the very next request with it is refused
    body = await api.raw(VIEWER, token=a.key)
    assert_unauthenticated(body, "This API key has been revoked.")
    # And mutations with it change nothing
    before = await snapshot(db)
    body = await api.raw(CREATE_CHANNEL, {"input": {"name": "late"}}, token=a.key)
    assert body["data"] is None
    assert body["errors"][0]["extensions"] == {"code": "UNAUTHENTICATED"}
    assert await snapshot(db) == before


async def test_expired_forged_and_orphaned_sessions_are_refused(
    api: Api, platform_key: str
) -> None:
    # Given a user with a working session
    user = await create_user(api, platform_key, "li@example.com", "long enough 1", "OPERATOR")
    user_id = number_in(user["id"])
    fresh = await session_of(api, "li@example.com", "long enough 1")
    assert (await api.data(VIEWER, token=fresh))["viewer"]["user"] == {"email": "li@example.com"}
    key = SESSION_SECRET.encode()
    now = datetime.now(UTC)

    # When sessions for that user are crafted: expired, signed with another key; or for nobody
    expired = sign_session(user_id, now - timedelta(seconds=5), key)
    foreign = sign_session(user_id, now + timedelta(hours=1), b"not our secret")
    orphan = sign_session(user_id + 1000, now + timedelta(hours=1), key)

    # Then each is refused with a message that says why, and no data
    assert_unauthenticated(await api.raw(VIEWER, token=expired), "Session expired; log in again.")
    assert_unauthenticated(await api.raw(VIEWER, token=foreign), "Malformed session token.")
    assert_unauthenticated(
        await api.raw(VIEWER, token=orphan),
        "This session's user no longer exists or is disabled.",
    )
    # And a token crafted the same way but still valid is accepted
    valid = sign_session(user_id, now + timedelta(minutes=5), key)
    assert (await api.data(VIEWER, token=valid))["viewer"]["user"] == {"email": "li@example.com"}


# --- login ----------------------------------------------------------------------------


async def test_login_returns_a_session_that_acts_as_the_user(api: Api, platform_key: str) -> None:
    # Given a FINANCE user of channel A, created by the platform's owner key
    a = await make_channel(api, platform_key, "A")
    user = await create_user(
        api, platform_key, "Zhang.San@Example.com", "s3cret-pass", "FINANCE", a.id
    )
    assert user["email"] == "zhang.san@example.com"
    assert user["role"] == "FINANCE"
    assert user["channel"] == {"id": a.id}

    # When the user logs in (e-mail in any case)
    payload = await login(api, "  ZHANG.SAN@example.COM ", "s3cret-pass")

    # Then a session token comes back that expires in the future
    assert payload["userErrors"] == []
    assert payload["user"] == {"email": "zhang.san@example.com"}
    assert payload["token"].startswith("qs_")
    assert datetime.fromisoformat(payload["expiresAt"]) > datetime.now(UTC)

    # And it acts as that user, in A, with the user's role
    seen = await api.data(VIEWER, token=payload["token"])
    assert seen["viewer"] == {
        "role": "FINANCE",
        "channel": {"id": a.id},
        "user": {"email": "zhang.san@example.com"},
        "apiKey": None,
    }


async def test_wrong_password_and_unknown_email_get_the_same_error(
    api: Api, platform_key: str
) -> None:
    # Given a user
    await create_user(api, platform_key, "wang@example.com", "right password", "OPERATOR")

    # When someone logs in with a wrong password, or an e-mail nobody has
    wrong = await login(api, "wang@example.com", "wrong password")
    unknown = await login(api, "nobody@example.com", "right password")

    # Then both get the same error and no token, so neither tells which e-mails exist
    assert wrong == {
        "token": None,
        "expiresAt": None,
        "user": None,
        "userErrors": INVALID_CREDENTIALS,
    }
    assert unknown == wrong


async def test_login_locks_out_after_too_many_failures(
    api: Api, platform_key: str, settings: Settings
) -> None:
    # Given two users
    await create_user(api, platform_key, "target@example.com", "right password", "OPERATOR")
    await create_user(api, platform_key, "bystander@example.com", "right password", "OPERATOR")

    # When one of them has one failed login fewer than allowed, the right password still works
    for _ in range(settings.login_attempts - 1):
        assert (await login(api, "target@example.com", "guess"))["userErrors"] == (
            INVALID_CREDENTIALS
        )
    assert (await login(api, "target@example.com", "right password"))["token"]

    # When the allowed number of failures is used up
    for _ in range(settings.login_attempts):
        assert (await login(api, "target@example.com", "guess"))["userErrors"] == (
            INVALID_CREDENTIALS
        )

    # Then even the right password is refused, with no token
    locked = await login(api, "TARGET@example.com", "right password")
    assert locked == {"token": None, "expiresAt": None, "user": None, "userErrors": RATE_LIMITED}

    # And another user is not locked out with it
    assert (await login(api, "bystander@example.com", "right password"))["token"]


async def test_secrets_are_not_stored_in_plaintext(
    api: Api, platform_key: str, db: asyncpg.Connection[Any]
) -> None:
    # Given a user with a password and a freshly issued API key
    password = "Plaintext-Canary-7431"
    await create_user(api, platform_key, "canary@example.com", password, "OPERATOR")
    root = (await api.data(VIEWER, token=platform_key))["viewer"]["channel"]["id"]
    key = await issue_key(api, platform_key, root, "OPERATOR")
    secret = key.key.split("_", 2)[2]
    assert len(secret) >= 32

    # When every row of every table is read raw
    text = "\n".join(row for rows in (await snapshot(db)).values() for row in rows)

    # Then neither the password nor the key's secret is there, in any spelling
    assert "canary@example.com" in text
    for plain in (password, secret):
        assert plain not in text
        assert plain.lower() not in text.lower()
        assert plain.encode().hex() not in text
        assert base64.b64encode(plain.encode()).decode().rstrip("=") not in text

    # And the password is kept as an argon2id hash
    stored = await db.fetchval(
        "SELECT password_hash FROM users WHERE email = $1", "canary@example.com"
    )
    assert stored.startswith("$argon2id$")

    # And the stored key still lets the key in (the hash is of this secret)
    assert (await api.data(VIEWER, token=key.key))["viewer"]["role"] == "OPERATOR"


# --- roles ----------------------------------------------------------------------------


async def test_verifier_and_finance_users_cannot_create_channels(
    api: Api, platform_key: str, db: asyncpg.Connection[Any]
) -> None:
    # Given channel A with a VERIFIER, a FINANCE and an OPERATOR user
    a = await make_channel(api, platform_key, "A")
    sessions = {}
    for role in ("VERIFIER", "FINANCE", "OPERATOR"):
        email = f"{role.lower()}@example.com"
        await create_user(api, platform_key, email, "password 123", role, a.id)
        sessions[role] = await session_of(api, email, "password 123")

    # When the VERIFIER and the FINANCE user try to create a channel below A
    for role in ("VERIFIER", "FINANCE"):
        before = await snapshot(db)
        refused = await api.data(
            CREATE_CHANNEL, {"input": {"name": "Shop", "parentId": a.id}}, token=sessions[role]
        )

        # Then they are refused for their role and nothing is created
        assert refused["createChannel"] == {
            "channel": None,
            "userErrors": forbidden("Your role may not create channels."),
        }
        assert await snapshot(db) == before

    # And the OPERATOR may
    made = await api.data(
        CREATE_CHANNEL, {"input": {"name": "Shop", "parentId": a.id}}, token=sessions["OPERATOR"]
    )
    assert made["createChannel"]["userErrors"] == []
    assert made["createChannel"]["channel"]["level"] == 2


async def test_operator_key_cannot_manage_keys_or_users(
    api: Api, platform_key: str, db: asyncpg.Connection[Any]
) -> None:
    # Given channel A with an OPERATOR key
    a = await make_channel(api, platform_key, "A")
    operator = await issue_key(api, platform_key, a.id, "OPERATOR")
    before = await snapshot(db)

    # When it tries to issue a key, create a user or revoke A's owner key
    issued = await api.data(
        ISSUE_KEY,
        {"input": {"channelId": a.id, "name": "k", "role": "OPERATOR"}},
        token=operator.key,
    )
    user = await api.data(
        CREATE_USER,
        {"input": {"email": "x@example.com", "password": "password 1", "role": "VERIFIER"}},
        token=operator.key,
    )
    revoked = await api.data(REVOKE_KEY, {"input": {"apiKeyId": a.key_id}}, token=operator.key)

    # Then each is refused for its role
    assert issued["issueApiKey"] == {
        "secret": None,
        "apiKey": None,
        "userErrors": forbidden("Your role may not issue API keys."),
    }
    assert user["createUser"] == {
        "user": None,
        "userErrors": forbidden("Your role may not create users."),
    }
    assert revoked["revokeApiKey"] == {
        "apiKey": None,
        "userErrors": forbidden("Your role may not revoke API keys."),
    }

    # And nothing changed: no key, no user, A's owner key still works
    assert await snapshot(db) == before
    assert (await api.data(VIEWER, token=a.key))["viewer"]["role"] == "OWNER"


async def test_only_an_owner_grants_owner(
    api: Api, platform_key: str, db: asyncpg.Connection[Any]
) -> None:
    # Given channel A with an OPERATOR, a FINANCE and a VERIFIER key
    a = await make_channel(api, platform_key, "A")
    keys = {
        role: await issue_key(api, platform_key, a.id, role)
        for role in ("OPERATOR", "FINANCE", "VERIFIER")
    }

    for role, key in keys.items():
        before = await snapshot(db)

        # When each tries to make an OWNER key or an OWNER user
        issued = await api.data(
            ISSUE_KEY,
            {"input": {"channelId": a.id, "name": "boss", "role": "OWNER"}},
            token=key.key,
        )
        user = await api.data(
            CREATE_USER,
            {"input": {"email": f"{role}@example.com", "password": "password 1", "role": "OWNER"}},
            token=key.key,
        )

        # Then both are refused and nothing is created
        assert issued["issueApiKey"]["userErrors"] == forbidden("Your role may not issue API keys.")
        assert issued["issueApiKey"]["secret"] is None
        assert user["createUser"] == {
            "user": None,
            "userErrors": forbidden("Your role may not create users."),
        }
        assert await snapshot(db) == before

    # And A's owner key may grant OWNER, to a key and to a user
    owner_key = await issue_key(api, a.key, a.id, "OWNER")
    assert (await api.data(VIEWER, token=owner_key.key))["viewer"]["role"] == "OWNER"
    owner = await create_user(api, a.key, "boss@example.com", "password 1", "OWNER", a.id)
    assert owner["role"] == "OWNER"


# --- every root field but login needs a caller ----------------------------------------

PUBLIC_FIELDS = {"login"}

# Stands for the id of the platform's own key (a real target, so a leak would show).
PLATFORM_KEY_ID = "<platform key id>"
PRODUCT_1 = base64.b64encode(b"Product:1").decode()
POOL_1 = base64.b64encode(b"Pool:1").decode()

# One sample operation per protected root field: (kind, document, variables).
# Adding a root field to the schema fails test_protected_table_covers_every_root_field
# until it has a row here, and then the next test checks it refuses anonymous callers.
PROTECTED: dict[str, tuple[str, str, dict[str, Any]]] = {
    # access
    "viewer": ("query", "{ viewer { role } }", {}),
    "channel": ("query", "query($id: ID) { channel(id: $id) { id name } }", {"id": None}),
    "createChannel": (
        "mutation",
        'mutation { createChannel(input: {name: "anon"}) { channel { id } } }',
        {},
    ),
    "createUser": (
        "mutation",
        """mutation { createUser(input: {email: "anon@example.com", password: "password 1",
             role: OWNER}) { user { id } } }""",
        {},
    ),
    "issueApiKey": (
        "mutation",
        'mutation { issueApiKey(input: {name: "anon", role: OWNER}) { secret } }',
        {},
    ),
    "revokeApiKey": (
        "mutation",
        "mutation($id: ID!) { revokeApiKey(input: {apiKeyId: $id}) { apiKey { id } } }",
        {"id": PLATFORM_KEY_ID},
    ),
    # catalog
    "products": ("query", "{ products(first: 5) { edges { node { id } } } }", {}),
    "product": ("query", "query($id: ID!) { product(id: $id) { id } }", {"id": PRODUCT_1}),
    "suppliers": ("query", "{ suppliers { id } }", {}),
    "createSupplier": (
        "mutation",
        """mutation { createSupplier(input: {name: "anon", baseUrl: "http://127.0.0.1:9",
             secret: "anon secret"}) { supplier { id } } }""",
        {},
    ),
    "syncSupplierCatalog": (
        "mutation",
        'mutation { syncSupplierCatalog(input: {supplierId: "U3VwcGxpZXI6MQ=="}) { created } }',
        {},
    ),
    "createProduct": (
        "mutation",
        """mutation { createProduct(input: {name: "anon", category: VIDEO, faceValue: "30",
             costPrice: "20", basePrice: "25", fulfilment: POOL}) { product { id } } }""",
        {},
    ),
    "updateProduct": (
        "mutation",
        """mutation($id: ID!) { updateProduct(input: {productId: $id, name: "anon"}) {
             product { id } } }""",
        {"id": PRODUCT_1},
    ),
    "setProductOnShelf": (
        "mutation",
        """mutation($id: ID!) { setProductOnShelf(input: {productId: $id, onShelf: false}) {
             product { id } } }""",
        {"id": PRODUCT_1},
    ),
    # pools
    "pools": ("query", "query($id: ID!) { pools(productId: $id) { id } }", {"id": PRODUCT_1}),
    "pool": ("query", "query($id: ID!) { pool(id: $id) { id } }", {"id": POOL_1}),
    "createPool": (
        "mutation",
        """mutation($id: ID!) { createPool(input: {productId: $id, name: "anon"}) {
             pool { id } } }""",
        {"id": PRODUCT_1},
    ),
    "importCodes": (
        "mutation",
        """mutation($id: ID!) { importCodes(input: {poolId: $id, codes: [{code: "ANON-1"}]}) {
             imported } }""",
        {"id": POOL_1},
    ),
    "importCodesCsv": (
        "upload",
        """mutation($id: ID!, $file: Upload!) { importCodesCsv(input: {poolId: $id,
             file: $file}) { imported } }""",
        {"id": POOL_1, "file": None},
    ),
    # settlement
    "splitRules": ("query", "{ splitRules { id } }", {}),
    "setSplitRule": (
        "mutation",
        """mutation($id: ID!) { setSplitRule(input: {productId: $id, kind: PRICE_CHAIN}) {
             splitRule { id } } }""",
        {"id": PRODUCT_1},
    ),
    # commerce
    "priceChain": (
        "query",
        "query($id: ID!) { priceChain(productId: $id) { price } }",
        {"id": PRODUCT_1},
    ),
    "setChannelPrice": (
        "mutation",
        """mutation($id: ID!) { setChannelPrice(input: {channelId: $id, productId: $id,
             price: "1.00"}) { price } }""",
        {"id": PRODUCT_1},
    ),
    "setChannelDefaultMarkup": (
        "mutation",
        'mutation { setChannelDefaultMarkup(input: {markupPercent: "5"}) { channel { id } } }',
        {},
    ),
    "setChannelProducts": (
        "mutation",
        """mutation($id: ID!) { setChannelProducts(input: {channelId: $id, productIds: [$id],
             visible: false}) { channel { id } } }""",
        {"id": PRODUCT_1},
    ),
    "setChannelRestrictions": (
        "mutation",
        """mutation($id: ID!) { setChannelRestrictions(input: {channelId: $id,
             regions: ["CN"]}) { channel { id } } }""",
        {"id": PRODUCT_1},
    ),
    # ledger
    "statement": (
        "query",
        """{ statement(from: "2000-01-01T00:00:00Z", to: "2100-01-01T00:00:00Z") {
             opening } }""",
        {},
    ),
    "trialBalance": ("query", "{ trialBalance { total } }", {}),
    "topUpBalance": (
        "mutation",
        """mutation($id: ID!) { topUpBalance(input: {channelId: $id, amount: "1.00",
             reference: "anon"}) { transaction { id } } }""",
        {"id": base64.b64encode(b"Channel:1").decode()},
    ),
    # orders
    "order": ("query", 'query { order(id: "T3JkZXI6MQ==") { id } }', {}),
    "orders": ("query", "{ orders(first: 5) { edges { node { id } } } }", {}),
    "placeOrder": (
        "mutation",
        """mutation($id: ID!) { placeOrder(input: {idempotencyKey: "anon", productId: $id,
             quantity: 1}) { order { id } } }""",
        {"id": PRODUCT_1},
    ),
    "revealCodes": (
        "mutation",
        'mutation { revealCodes(input: {orderId: "T3JkZXI6MQ=="}) { codes { code } } }',
        {},
    ),
    "confirmPayment": (
        "mutation",
        """mutation { confirmPayment(input: {orderId: "T3JkZXI6MQ==", reference: "anon"}) {
             order { id } } }""",
        {},
    ),
    "cancelOrder": (
        "mutation",
        'mutation { cancelOrder(input: {orderId: "T3JkZXI6MQ=="}) { order { id } } }',
        {},
    ),
    "refundOrder": (
        "mutation",
        'mutation { refundOrder(input: {orderId: "T3JkZXI6MQ=="}) { order { id } } }',
        {},
    ),
    "merchants": ("query", "{ merchants { edges { node { id } } } }", {}),
    "redemptions": ("query", "{ redemptions { edges { node { id } } } }", {}),
    "createMerchant": (
        "mutation",
        'mutation { createMerchant(input: {name: "m"}) { merchant { id } } }',
        {},
    ),
    "setMerchantChannels": (
        "mutation",
        'mutation { setMerchantChannels(input: {merchantId: "x", channelIds: []}) {'
        " merchant { id } } }",
        {},
    ),
    "redeemCode": (
        "mutation",
        'mutation { redeemCode(input: {code: "c", idempotencyKey: "k"}) { redemption { id } } }',
        {},
    ),
    "setProductRedeemable": (
        "mutation",
        'mutation { setProductRedeemable(input: {productId: "x", redeemable: true}) {'
        " product { id } } }",
        {},
    ),
    "retryFulfilment": (
        "mutation",
        'mutation { retryFulfilment(input: {orderId: "T3JkZXI6MQ=="}) { order { id } } }',
        {},
    ),
    # risk
    "riskRules": ("query", "{ riskRules { id } }", {}),
    "blockedSubjects": ("query", "{ blockedSubjects { edges { node { id } } } }", {}),
    "riskEvents": ("query", "{ riskEvents(first: 5) { edges { node { id } } } }", {}),
    "setRiskRule": (
        "mutation",
        """mutation { setRiskRule(input: {scope: IP, limit: 1, windowSeconds: 60,
             action: BLOCK}) { riskRule { id } } }""",
        {},
    ),
    "blockSubject": (
        "mutation",
        """mutation { blockSubject(input: {kind: IP, value: "10.0.0.1", reason: "anon"}) {
             blockedSubject { id } } }""",
        {},
    ),
    "unblockSubject": (
        "mutation",
        """mutation { unblockSubject(input: {kind: IP, value: "10.0.0.1"}) {
             blockedSubject { id } } }""",
        {},
    ),
    "approveOrder": (
        "mutation",
        'mutation { approveOrder(input: {orderId: "T3JkZXI6MQ=="}) { order { id } } }',
        {},
    ),
    "rejectOrder": (
        "mutation",
        """mutation { rejectOrder(input: {orderId: "T3JkZXI6MQ==", reason: "anon"}) {
             order { id } } }""",
        {},
    ),
    # deliveries
    "webhookEndpoints": ("query", "{ webhookEndpoints { id url } }", {}),
    "createWebhookEndpoint": (
        "mutation",
        """mutation { createWebhookEndpoint(input: {url: "http://127.0.0.1:9/hook"}) {
             webhookEndpoint { id } secret } }""",
        {},
    ),
    "disableWebhookEndpoint": (
        "mutation",
        """mutation { disableWebhookEndpoint(input: {
             webhookEndpointId: "V2ViaG9va0VuZHBvaW50OjE="}) { webhookEndpoint { id } } }""",
        {},
    ),
    # audit
    "auditVerify": ("query", "{ auditVerify { ok } }", {}),
    "codeTrace": ("query", 'query { codeTrace(codeId: "Q29kZTox") { events { kind } } }', {}),
    # code changes
    "freezeCodes": (
        "mutation",
        """mutation($id: ID!) { freezeCodes(input: {poolId: $id, reason: "anon"}) {
             changed } }""",
        {"id": POOL_1},
    ),
    "unfreezeCodes": (
        "mutation",
        """mutation($id: ID!) { unfreezeCodes(input: {poolId: $id, reason: "anon"}) {
             changed } }""",
        {"id": POOL_1},
    ),
    "voidCodes": (
        "mutation",
        """mutation($id: ID!) { voidCodes(input: {poolId: $id, reason: "anon"}) {
             changed } }""",
        {"id": POOL_1},
    ),
    # Subscriptions are tested over WebSocket elsewhere; listed so none goes unnoticed.
    "channelCreated": ("subscription", "subscription { channelCreated { id } }", {}),
    "stockChanged": ("subscription", "subscription { stockChanged { productId available } }", {}),
    "orderUpdated": ("subscription", "subscription { orderUpdated { id status } }", {}),
}

ROOT_FIELDS = """
{ __schema {
    queryType { fields { name } }
    mutationType { fields { name } }
    subscriptionType { fields { name } }
} }
"""


async def upload(api: Api, document: str, variables: dict[str, Any]) -> dict[str, Any]:
    """A GraphQL multipart request (the `file` variable carries a small CSV)."""
    response = await api.http.post(
        api.url,
        data={
            "operations": json.dumps({"query": document, "variables": variables}),
            "map": json.dumps({"0": ["variables.file"]}),
        },
        files={"0": ("codes.csv", b"code\nANON-1\n", "text/csv")},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_protected_table_covers_every_root_field(api: Api) -> None:
    # Given the schema as an anonymous caller sees it through introspection
    schema = (await api.data(ROOT_FIELDS))["__schema"]
    fields = {
        kind: {f["name"] for f in schema[f"{kind}Type"]["fields"]}
        for kind in ("query", "mutation", "subscription")
    }

    # Then every root field is either public or has a sample in the table, of the right kind
    table = {
        kind: {
            name
            for name, (k, _, _) in PROTECTED.items()
            if k == kind or (k == "upload" and kind == "mutation")
        }
        for kind in ("query", "mutation", "subscription")
    }
    for kind in fields:
        assert fields[kind] - PUBLIC_FIELDS == table[kind], kind
    assert fields["mutation"] >= PUBLIC_FIELDS


async def test_every_protected_field_refuses_anonymous_callers(
    api: Api, platform_key: str, db: asyncpg.Connection[Any]
) -> None:
    # Given a real target for the operations that name a key
    key_id = (await api.data(VIEWER, token=platform_key))["viewer"]["apiKey"]["id"]
    before = await snapshot(db)

    for name, (kind, document, variables) in PROTECTED.items():
        if kind == "subscription":
            continue
        # When it is called without credentials
        given = {k: key_id if v == PLATFORM_KEY_ID else v for k, v in variables.items()}
        body = await (
            upload(api, document, given) if kind == "upload" else api.raw(document, given)
        )

        # Then it is refused as unauthenticated, with nothing in data
        assert body["data"] in (None, {name: None}), name
        assert [(e["message"], e["extensions"], e["path"]) for e in body.get("errors", [])] == [
            (AUTH_REQUIRED, {"code": "UNAUTHENTICATED"}, [name])
        ], name

    # And nothing was written anywhere, and the platform's key still works
    assert await snapshot(db) == before
    assert (await api.data(VIEWER, token=platform_key))["viewer"]["role"] == "OWNER"
