"""The supplier protocol end to end: HttpSupplier against the simulator in its own process.

The simulator runs as ``python -m supplier_sim`` on a free local port and is reached over
real HTTP. Where a test needs a man in the middle, a transport forwards each exchange over
real HTTP and changes it on the way.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from domain.backoff import delay
from integrations.suppliers import (
    HttpSupplier,
    SupplierAdapter,
    SupplierOrder,
    SupplierRejected,
    SupplierUnavailable,
)
from tests.simulator import SECRET, Simulator, admin, simulator

WRONG_SECRET = b"not-the-simulator-secret-98765432"
CODE = re.compile(r"[A-Z0-9]{16}")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    with simulator(tmp_path_factory.mktemp("sim")) as running:
        yield running


@pytest.fixture(scope="module")
def flaky_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    options = ("--failure-rate", "0.3", "--latency-ms", "20", "--seed", "7")
    with simulator(tmp_path_factory.mktemp("flaky"), *options) as running:
        yield running


@pytest.fixture(scope="module")
def catalog_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    """A simulator whose catalog each test using it replaces first."""
    with simulator(tmp_path_factory.mktemp("catalog")) as running:
        yield running


@pytest.fixture
async def supplier(sim: Simulator) -> AsyncIterator[SupplierAdapter]:
    # Typed as the interface, so mypy checks that HttpSupplier implements it.
    async with HttpSupplier(sim.url, SECRET, allow_private=True) as client:
        yield client


async def _stats(sim: Simulator) -> dict[str, Any]:
    stats: dict[str, Any] = await admin(sim, "GET", "/stats")
    return stats


def _ref() -> str:
    return f"test-{uuid.uuid4().hex}"


class Interceptor(httpx.AsyncBaseTransport):
    """A man in the middle: real HTTP to the simulator, with each exchange altered."""

    def __init__(
        self,
        *,
        request: Callable[[httpx.Request], None] = lambda request: None,
        response: Callable[[bytes, httpx.Headers], bytes] = lambda body, headers: body,
    ) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._alter_request = request
        self._alter_response = response

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._alter_request(request)
        answer = await self._inner.handle_async_request(request)
        body = await answer.aread()
        headers = httpx.Headers(answer.headers)
        body = self._alter_response(body, headers)
        headers["content-length"] = str(len(body))
        return httpx.Response(answer.status_code, headers=headers, content=body)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_the_catalog_comes_with_decimal_money(supplier: SupplierAdapter) -> None:
    items = {item.sku: item for item in await supplier.catalog()}

    assert len(items) == 5
    assert {item.category for item in items.values()} == {
        "video_membership",
        "music_membership",
        "game_card",
        "gift_card",
        "coupon",
    }
    game = items["GAME-100"]
    assert (game.face_value, game.cost, game.available) == (
        Decimal("100.00"),
        Decimal("93.00"),
        True,
    )
    assert all(isinstance(item.cost, Decimal) for item in items.values())


async def test_a_placed_order_has_its_codes_and_reads_back_the_same(
    supplier: SupplierAdapter,
) -> None:
    # Given an order for three game cards, which come with a password
    ref = _ref()
    order = await supplier.place(ref, "GAME-100", 3)

    # Then it has three distinct codes, each with a password and an expiry a year ahead in UTC
    assert order.ref == ref
    assert len({code.code for code in order.codes}) == 3
    for code in order.codes:
        assert CODE.fullmatch(code.code)
        assert code.password is not None
        assert code.password.isdigit()
        assert code.expires_at is not None
        assert code.expires_at.tzinfo is UTC
        assert code.expires_at - datetime.now(UTC) > timedelta(days=364)
    # And reading it back gives the same codes
    assert await supplier.read(ref) == order


async def test_codes_without_a_password_have_none(supplier: SupplierAdapter) -> None:
    order = await supplier.place(_ref(), "VIDEO-VIP-1M", 1)
    assert order.codes[0].password is None


async def test_reading_an_unknown_ref_gives_none(supplier: SupplierAdapter) -> None:
    assert await supplier.read(_ref()) is None


async def test_refs_are_sent_escaped(supplier: SupplierAdapter) -> None:
    ref = f"odd ref/{uuid.uuid4().hex}?#%"
    order = await supplier.place(ref, "MUSIC-VIP-1M", 1)
    assert await supplier.read(ref) == order


async def test_placing_again_with_the_same_ref_buys_nothing_more(
    supplier: SupplierAdapter, sim: Simulator
) -> None:
    # Given an order that was placed
    ref = _ref()
    first = await supplier.place(ref, "GIFT-200", 2)
    before = await _stats(sim)

    # When it is placed again with the same ref, as a caller does after a lost reply
    again = await supplier.place(ref, "GIFT-200", 2)

    # Then the same codes come back and the supplier created the order only once
    assert again == first
    after = await _stats(sim)
    assert after["refs"][ref] == 1
    assert after["duplicates_prevented"] == before["duplicates_prevented"] + 1


@pytest.mark.parametrize(
    ("sku", "quantity", "error"),
    [
        ("NO-SUCH-SKU", 1, "unknown_sku"),
        ("GAME-100", 101, "invalid_quantity"),
    ],
)
async def test_requests_the_supplier_cannot_serve_are_rejected(
    supplier: SupplierAdapter, sim: Simulator, sku: str, quantity: int, error: str
) -> None:
    ref = _ref()
    with pytest.raises(SupplierRejected, match=error):
        await supplier.place(ref, sku, quantity)
    assert ref not in (await _stats(sim))["refs"]


async def test_a_ref_reused_for_a_different_order_is_rejected(supplier: SupplierAdapter) -> None:
    # Given an order placed under a ref
    ref = _ref()
    first = await supplier.place(ref, "GAME-100", 1)

    # When the same ref is used for another sku or quantity
    with pytest.raises(SupplierRejected, match="ref_conflict"):
        await supplier.place(ref, "GAME-100", 2)
    with pytest.raises(SupplierRejected, match="ref_conflict"):
        await supplier.place(ref, "GIFT-200", 1)

    # Then the first order is untouched
    assert await supplier.read(ref) == first


async def test_concurrent_retries_through_faults_create_each_order_exactly_once(
    flaky_sim: Simulator,
) -> None:
    # Given a supplier that fails 30% of calls, half of them after creating the order,
    # and 200 callers placing 50 orders, four callers per ref, each retrying until success
    refs = [_ref() for _ in range(50)]
    callers = [ref for ref in refs for _ in range(4)]
    random.shuffle(callers)
    unavailable = 0

    async def place_until_done(client: HttpSupplier, ref: str) -> SupplierOrder:
        nonlocal unavailable
        for attempt in range(60):
            try:
                return await client.place(ref, "COFFEE-COUPON", 2)
            except SupplierUnavailable:
                unavailable += 1
                await asyncio.sleep(delay(attempt, 0.005, 0.05, random.random))
        pytest.fail(f"{ref} never succeeded")

    async with HttpSupplier(flaky_sim.url, SECRET, allow_private=True) as client:
        orders = await asyncio.gather(*(place_until_done(client, ref) for ref in callers))

    # Then every caller of one ref got the same codes, and no code went to two refs
    by_ref: dict[str, set[SupplierOrder]] = {}
    for order in orders:
        by_ref.setdefault(order.ref, set()).add(order)
    assert sorted(by_ref) == sorted(refs)
    assert all(len(seen) == 1 for seen in by_ref.values())
    codes = Counter(code.code for seen in by_ref.values() for o in seen for code in o.codes)
    assert len(codes) == 100
    assert set(codes.values()) == {1}
    # And the supplier created exactly one order per ref, although replies were lost
    stats = await _stats(flaky_sim)
    assert stats["created"] == 50
    assert set(stats["refs"]) == set(refs)
    assert set(stats["refs"].values()) == {1}
    assert stats["duplicates_prevented"] >= 150
    assert stats["lost_replies"] > 0
    assert unavailable > 0


async def test_a_client_with_the_wrong_secret_buys_nothing(sim: Simulator) -> None:
    # Given a client whose secret the supplier does not share
    ref = _ref()
    before = await _stats(sim)
    async with HttpSupplier(sim.url, WRONG_SECRET, allow_private=True) as client:
        # Then its request is refused, and the refusal (signed with the real secret) is
        # not trusted either
        with pytest.raises(SupplierUnavailable, match="signature"):
            await client.place(ref, "GAME-100", 1)

    after = await _stats(sim)
    assert after["requests"] == before["requests"] + 1
    assert ref not in after["refs"]


async def test_a_request_whose_signature_is_refused_is_retryable(sim: Simulator) -> None:
    # Given a request whose signature is spoiled on the way
    def spoil(request: httpx.Request) -> None:
        request.headers["X-Signature"] = "0" * 64

    ref = _ref()
    transport = Interceptor(request=spoil)
    async with HttpSupplier(sim.url, SECRET, allow_private=True, transport=transport) as client:
        # Then the supplier's signed 401 is read as a credentials problem, not a refused order
        with pytest.raises(SupplierUnavailable, match=r"401 .* \(credentials refused\)"):
            await client.place(ref, "GAME-100", 1)
    assert ref not in (await _stats(sim))["refs"]


async def test_a_tampered_response_is_refused_and_its_codes_never_used(sim: Simulator) -> None:
    # Given a man in the middle who swaps the first code in the supplier's answer
    planted = "PLANTEDPLANTED00"
    seen: list[str] = []

    def swap(body: bytes, headers: httpx.Headers) -> bytes:
        data = json.loads(body)
        seen.extend(code["code"] for code in data["codes"])
        data["codes"][0]["code"] = planted
        return json.dumps(data).encode()

    ref = _ref()
    async with HttpSupplier(
        sim.url, SECRET, allow_private=True, transport=Interceptor(response=swap)
    ) as client:
        with pytest.raises(SupplierUnavailable, match="signature") as refused:
            await client.place(ref, "GIFT-200", 2)

    # Then the error carries no code, and a retry with the same ref gets the real ones once
    assert planted not in str(refused.value)
    assert not any(code in str(refused.value) for code in seen)
    async with HttpSupplier(sim.url, SECRET, allow_private=True) as client:
        order = await client.place(ref, "GIFT-200", 2)
    assert [code.code for code in order.codes] == seen
    assert (await _stats(sim))["refs"][ref] == 1


async def test_an_unsigned_response_is_refused(sim: Simulator) -> None:
    def unsign(body: bytes, headers: httpx.Headers) -> bytes:
        del headers["X-Signature"]
        return body

    async with HttpSupplier(
        sim.url, SECRET, allow_private=True, transport=Interceptor(response=unsign)
    ) as client:
        with pytest.raises(SupplierUnavailable, match="signature"):
            await client.catalog()


async def test_a_local_supplier_is_refused_unless_private_targets_are_allowed(
    sim: Simulator,
) -> None:
    before = (await _stats(sim))["requests"]

    async with HttpSupplier(sim.url, SECRET, allow_private=False) as client:
        with pytest.raises(SupplierRejected, match="loopback"):
            await client.catalog()
        with pytest.raises(SupplierRejected, match="loopback"):
            await client.place(_ref(), "GAME-100", 1)

    # Then not one request reached the supplier
    assert (await _stats(sim))["requests"] == before


async def test_catalog_sync_sees_prices_availability_and_skus_change(
    catalog_sim: Simulator,
) -> None:
    # Given the supplier raises a price, sells out of one sku, drops another and adds one
    items = [
        {
            "sku": "VIDEO-VIP-1M",
            "name": "Video VIP membership, 1 month",
            "category": "video_membership",
            "faceValue": "30.00",
            "cost": "26.10",
            "available": True,
        },
        {
            "sku": "GAME-100",
            "name": "Game card, 100 points",
            "category": "game_card",
            "faceValue": "100.00",
            "cost": "93.00",
            "available": False,
        },
        {
            "sku": "VIDEO-VIP-12M",
            "name": "Video VIP membership, 12 months",
            "category": "video_membership",
            "faceValue": "248.00",
            "cost": "219.99",
            "available": True,
        },
    ]
    await admin(catalog_sim, "POST", "/admin/catalog", {"items": items})

    async with HttpSupplier(catalog_sim.url, SECRET, allow_private=True) as client:
        # Then the catalog shows exactly the new state
        catalog = {item.sku: item for item in await client.catalog()}
        assert set(catalog) == {"VIDEO-VIP-1M", "GAME-100", "VIDEO-VIP-12M"}
        assert catalog["VIDEO-VIP-1M"].cost == Decimal("26.10")
        assert catalog["VIDEO-VIP-12M"].face_value == Decimal("248.00")
        assert not catalog["GAME-100"].available

        # And the sold-out and the dropped skus can no longer be bought
        with pytest.raises(SupplierRejected, match="out_of_stock"):
            await client.place(_ref(), "GAME-100", 1)
        with pytest.raises(SupplierRejected, match="unknown_sku"):
            await client.place(_ref(), "GIFT-200", 1)


@pytest.mark.parametrize(
    "change",
    [
        {"cost": 12.5},
        {"cost": "NaN"},
        {"cost": "-1.00"},
        {"faceValue": "1e3"},
        {"available": 1},
        {"sku": ""},
    ],
)
async def test_a_malformed_catalog_is_not_trusted(
    catalog_sim: Simulator, change: dict[str, Any]
) -> None:
    # Given a catalog item with money as a float, a non-number, a negative or an exponent,
    # or a field of the wrong type
    item = {
        "sku": "MUSIC-VIP-1M",
        "name": "Music membership, 1 month",
        "category": "music_membership",
        "faceValue": "15.00",
        "cost": "12.30",
        "available": True,
    }
    await admin(catalog_sim, "POST", "/admin/catalog", {"items": [item | change]})

    # Then reading the catalog fails as a supplier fault, not with a wrong price
    async with HttpSupplier(catalog_sim.url, SECRET, allow_private=True) as client:
        with pytest.raises(SupplierUnavailable, match="malformed"):
            await client.catalog()
