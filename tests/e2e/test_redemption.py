"""redeemCode through real HTTP: uses never exceeded, every refusal by its code, retries
counted once, the guessing defence, and codes of another territory (窜货) frozen and told."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from standardwebhooks.webhooks import Webhook

from settings import Settings
from tests.conftest import Api, Node, eventually
from tests.e2e.test_audit import TRACE
from tests.e2e.test_catalog import create_product
from tests.e2e.test_ledger_api import funded
from tests.e2e.test_orders import PLACE, order_input
from tests.e2e.test_pools import CREATE_POOL, IMPORT
from tests.integration.test_outbox import OK, Receiver, create_endpoint, outbox_settings, receiver

__all__ = ["receiver"]  # a fixture, imported for this module's tests

REDEEM = """
mutation($input: RedeemCodeInput!) {
  redeemCode(input: $input) {
    redemption { id usesLeft redeemedAt code { id masked } }
    userErrors { field code message }
  }
}
"""
CREATE_MERCHANT = """
mutation($input: CreateMerchantInput!) {
  createMerchant(input: $input) {
    merchant { id name authorizedChannels { id } }
    userErrors { field code message }
  }
}
"""
ISSUE_KEY = """
mutation($input: IssueApiKeyInput!) {
  issueApiKey(input: $input) { secret userErrors { field code message } }
}
"""
SET_REDEEMABLE = """
mutation($input: SetProductRedeemableInput!) {
  setProductRedeemable(input: $input) { product { id redeemable } userErrors { code } }
}
"""
LINKED_ORDER = """
mutation($input: PlaceOrderInput!) {
  placeOrder(input: $input) { order { deliveries { method url } } userErrors { code } }
}
"""
REDEMPTIONS = """
query($filter: RedemptionFilter) {
  redemptions(filter: $filter) {
    edges { node { id usesLeft region redeemedAt code { id masked } merchantId } }
  }
}
"""
GUESS_LIMIT = 5


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return outbox_settings(settings, redemption_guess_limit=GUESS_LIMIT)


async def sold_code(
    api: Api, tree: dict[str, Node], *, max_uses: int = 1, password: bool = True
) -> dict[str, Any]:
    """A code of a redeemable product, bought by agent A: its id, code and password."""
    root = tree["root"].key
    product = await create_product(api, root, maxUses=max_uses)
    marked = await api.data(
        SET_REDEEMABLE, {"input": {"productId": product["id"], "redeemable": True}}, token=root
    )
    assert marked["setProductRedeemable"]["product"]["redeemable"] is True
    pool = (
        await api.data(
            CREATE_POOL, {"input": {"productId": product["id"], "name": "main"}}, token=root
        )
    )["createPool"]["pool"]["id"]
    row = {"code": f"REDEEM-{product['id']}", "password": "pw-4711" if password else None}
    await api.data(IMPORT, {"input": {"poolId": pool, "codes": [row]}}, token=root)
    await funded(api, root, tree["A"].id, "100.00", f"bank-{product['id']}")
    placed = await api.data(
        PLACE, order_input(product["id"], f"buy-{product['id']}"), token=tree["A"].key
    )
    (code,) = placed["placeOrder"]["codes"]
    return dict(code)


async def verifier(api: Api, tree: dict[str, Node], *authorised: str) -> tuple[str, str]:
    """A merchant of the platform authorised for the given channels, and its verifier key."""
    root = tree["root"].key
    made = await api.data(
        CREATE_MERCHANT,
        {"input": {"name": "Cinema", "authorizedChannelIds": list(authorised)}},
        token=root,
    )
    merchant = made["createMerchant"]["merchant"]["id"]
    issued = await api.data(
        ISSUE_KEY,
        {"input": {"name": "till 1", "role": "VERIFIER", "merchantId": merchant}},
        token=root,
    )
    assert issued["issueApiKey"]["userErrors"] == []
    return merchant, issued["issueApiKey"]["secret"]


def redeem(sold: dict[str, Any], key: str, **more: Any) -> dict[str, Any]:
    return {
        "input": {"code": sold["code"], "password": sold["password"], "idempotencyKey": key} | more
    }


def codes_of(answers: list[dict[str, Any]]) -> list[str]:
    return [e["code"] for a in answers for e in a["redeemCode"]["userErrors"]]


async def test_a_hundred_redemptions_of_a_code_of_three_uses(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given a code with 3 uses sold to A, and a merchant authorised for A
    code = await sold_code(api, tree, max_uses=3)
    _, key = await verifier(api, tree, tree["A"].id)

    # When its verifier redeems it 100 times at once
    answers = await asyncio.gather(
        *(api.data(REDEEM, redeem(code, f"scan-{i}"), token=key) for i in range(100))
    )

    # Then exactly 3 succeed, leaving 2, 1 and 0 uses, and 97 find it used up
    done = [a["redeemCode"]["redemption"] for a in answers if a["redeemCode"]["redemption"]]
    assert sorted(d["usesLeft"] for d in done) == [0, 1, 2]
    assert codes_of(answers) == ["CODE_USED_UP"] * 97
    assert await db.fetchval("SELECT uses FROM codes") == 3
    assert await db.fetchval("SELECT count(*) FROM redemptions") == 3
    assert await db.fetchval("SELECT count(*) FROM code_events WHERE kind = 'REDEEMED'") == 3


async def test_a_retried_redemption_counts_once(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    code = await sold_code(api, tree, max_uses=5)
    _, key = await verifier(api, tree, tree["A"].id)

    # When the same redemption is sent 20 times at once, and once more later
    answers = await asyncio.gather(
        *(api.data(REDEEM, redeem(code, "scan-1"), token=key) for _ in range(20))
    )
    again = await api.data(REDEEM, redeem(code, "scan-1"), token=key)

    # Then it is one redemption, the same answer to all
    ids = {a["redeemCode"]["redemption"]["id"] for a in [*answers, again]}
    assert len(ids) == 1
    assert await db.fetchval("SELECT uses FROM codes") == 1


async def test_each_refusal_has_its_own_code(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    code = await sold_code(api, tree)
    _, key = await verifier(api, tree, tree["A"].id)

    tries = iter(range(100))

    async def refusal(**given: Any) -> list[str]:
        body = await api.data(REDEEM, redeem(code, f"try-{next(tries)}", **given), token=key)
        return codes_of([body])

    assert await refusal(code="NO-SUCH-CODE") == ["CODE_NOT_FOUND"]
    assert await refusal(password="wrong") == ["WRONG_PASSWORD"]
    await db.execute("UPDATE codes SET valid_from = now() + interval '1 day'")
    assert await refusal() == ["CODE_NOT_YET_VALID"]
    await db.execute("UPDATE codes SET valid_from = NULL, expires_at = now() - interval '1 s'")
    assert await refusal() == ["CODE_EXPIRED"]
    await db.execute("UPDATE codes SET expires_at = NULL")
    # Nothing was used by the refusals
    assert await db.fetchval("SELECT uses FROM codes") == 0
    assert await refusal() == []
    assert await refusal(region="CN-SH", deviceId="till") == ["CODE_USED_UP"]


async def test_only_a_merchants_verifier_redeems(api: Api, tree: dict[str, Node]) -> None:
    code = await sold_code(api, tree)
    body = await api.data(REDEEM, redeem(code, "k"), token=tree["A"].key)
    assert codes_of([body]) == ["FORBIDDEN"]


async def test_a_code_of_another_territory_is_frozen_and_its_seller_told(
    api: Api,
    tree: dict[str, Node],
    db: asyncpg.Connection[Any],
    receiver: Receiver,
) -> None:
    # Given A's code, a webhook of A's for frozen codes, and a merchant authorised for B
    code = await sold_code(api, tree)
    endpoint = await create_endpoint(
        api,
        tree["A"].key,
        url=receiver.answer("/frozen", OK),
        kind="GENERIC",
        events=["code.frozen"],
    )
    _, outsider = await verifier(api, tree, tree["B"].id)

    # When the outsider redeems it
    body = await api.data(REDEEM, redeem(code, "k1"), token=outsider)

    # Then it is refused, the code is frozen and A hears of it, signed
    assert codes_of([body]) == ["CHANNEL_NOT_AUTHORIZED"]
    assert await db.fetchval("SELECT status FROM codes") == "frozen"
    assert await eventually(lambda: _arrived(receiver))
    (message,) = receiver.at("/frozen")
    verified = Webhook(endpoint["secret"]).verify(message.body, message.headers)
    assert verified["type"] == "code.frozen"
    assert verified["data"]["codeId"] == code["id"]
    # And the decision is a risk event about the merchant, seen by A
    events = await db.fetch("SELECT subject_kind, decision, channel_id FROM risk_events")
    assert [(e["subject_kind"], e["decision"]) for e in events] == [("MERCHANT", "BLOCK")]
    # And a merchant that may redeem it now finds it frozen
    _, insider = await verifier(api, tree, tree["A"].id)
    assert codes_of([await api.data(REDEEM, redeem(code, "k2"), token=insider)]) == ["CODE_FROZEN"]
    assert await db.fetchval("SELECT uses FROM codes") == 0


async def _arrived(receiver: Receiver) -> bool:
    return len(receiver.at("/frozen")) == 1


async def test_guesses_are_throttled_even_in_one_request(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    code = await sold_code(api, tree)
    _, key = await verifier(api, tree, tree["A"].id)

    # When a verifier sends 12 wrong codes as aliases of one request
    guesses = " ".join(
        f'g{i}: redeemCode(input: {{code: "GUESS-{i}", idempotencyKey: "g{i}"}})'
        " { userErrors { code } }"
        for i in range(12)
    )
    body = await api.data(f"mutation {{ {guesses} }}", token=key)

    # Then only the first few are answered and the rest are throttled
    found = sorted(e["code"] for g in body.values() for e in g["userErrors"])
    assert found == ["CODE_NOT_FOUND"] * GUESS_LIMIT + ["RATE_LIMITED"] * (12 - GUESS_LIMIT)
    # And even a right code is not answered until the window moves on
    right = await api.data(REDEEM, redeem(code, "right"), token=key)
    assert codes_of([right]) == ["RATE_LIMITED"]
    assert await db.fetchval("SELECT uses FROM codes") == 0
    # And each throttled try is a risk event about the verifier
    throttled = await db.fetch("SELECT subject_kind, decision FROM risk_events")
    assert [(e["subject_kind"], e["decision"]) for e in throttled] == [("VERIFIER", "BLOCK")] * (
        12 - GUESS_LIMIT + 1
    )


async def test_a_scanned_link_redeems_its_code(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given a code delivered by a link page, and the link's token (what its QR carries)
    root = tree["root"].key
    product = await create_product(api, root)
    await api.data(
        SET_REDEEMABLE, {"input": {"productId": product["id"], "redeemable": True}}, token=root
    )
    pool = (
        await api.data(
            CREATE_POOL, {"input": {"productId": product["id"], "name": "main"}}, token=root
        )
    )["createPool"]["pool"]["id"]
    await api.data(IMPORT, {"input": {"poolId": pool, "codes": [{"code": "LINKED-1"}]}}, token=root)
    await funded(api, root, tree["A"].id, "100.00", "bank-link")
    placed = await api.data(
        LINKED_ORDER,
        {
            "input": order_input(product["id"], "linked")["input"]
            | {"delivery": [{"method": "LINK"}]}
        },
        token=tree["A"].key,
    )
    (link,) = [d for d in placed["placeOrder"]["order"]["deliveries"] if d["method"] == "LINK"]
    token = link["url"].rsplit("/r/", 1)[1]
    _, key = await verifier(api, tree, tree["A"].id)

    # When the verifier scans it
    body = await api.data(REDEEM, {"input": {"token": token, "idempotencyKey": "scan"}}, token=key)

    # Then the code is redeemed without its password being typed
    assert body["redeemCode"]["userErrors"] == []
    assert body["redeemCode"]["redemption"]["usesLeft"] == 0
    assert await db.fetchval("SELECT uses FROM codes") == 1
    # And a forged token redeems nothing
    forged = await api.data(
        REDEEM, {"input": {"token": token[:-2] + "xx", "idempotencyKey": "forged"}}, token=key
    )
    assert codes_of([forged]) == ["CODE_NOT_FOUND"]


async def test_redemptions_are_listed_and_traced(api: Api, tree: dict[str, Node]) -> None:
    # Given a code redeemed twice at a cinema
    code = await sold_code(api, tree, max_uses=2)
    merchant, key = await verifier(api, tree, tree["A"].id)
    for scan in ("first", "second"):
        await api.data(REDEEM, redeem(code, scan, region="CN-SH"), token=key)

    # Then A (the seller) and the platform list both, newest first, filtered by merchant
    listed = await api.data(REDEMPTIONS, {"filter": {"merchantId": merchant}}, token=tree["A"].key)
    nodes = [e["node"] for e in listed["redemptions"]["edges"]]
    assert [(n["usesLeft"], n["region"], n["code"]["id"]) for n in nodes] == [
        (0, "CN-SH", code["id"]),
        (1, "CN-SH", code["id"]),
    ]
    # And B, which neither sold the code nor manages the merchant, sees none
    other = await api.data(REDEMPTIONS, {"filter": None}, token=tree["B"].key)
    assert other["redemptions"]["edges"] == []
    # And the code's trace shows its life in order, the redemptions with the merchant
    traced = await api.data(TRACE, {"id": code["id"]}, token=tree["root"].key)
    events = traced["codeTrace"]["events"]
    assert [e["kind"] for e in events] == ["IMPORTED", "SOLD", "DELIVERED", "REDEEMED", "REDEEMED"]
    assert [e["merchant"]["id"] for e in events if e["kind"] == "REDEEMED"] == [merchant] * 2
    assert [e["usesLeft"] for e in events if e["kind"] == "REDEEMED"] == [1, 0]
