"""The buyer's link page and its QR code, through real HTTP."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import pytest
import segno

from resolvers.link_page import QR_BORDER
from resolvers.links import link_token
from schema import ids
from settings import Settings
from tests.conftest import SESSION_SECRET, Api, LiveServer, Node
from tests.integration.test_outbox import (
    DELIVERIES,
    Paid,
    outbox_settings,
    paid_order,
    product,
    queue,
)
from tests.unit.test_link_page import _svg_modules

__all__ = ["product"]  # the fixture, imported for this module's tests

MAX_VIEWS = 2
PUBLIC_URL = "https://codes.quanyi.example/"


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """Two views per link; a public URL when a test asks for one."""
    public_url = getattr(request, "param", None)
    return outbox_settings(settings, link_max_views=MAX_VIEWS, public_url=public_url)


async def linked_order(
    server: LiveServer, api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any], product: str
) -> tuple[Paid, str]:
    """A paid order of A's with a LINK delivery, and the link as A sees it."""
    order = await paid_order(api, tree, product)
    await queue(server, db, order, "LINK", None)
    shown = (await api.data(DELIVERIES, {"id": order.id}, token=tree["A"].key))["order"][
        "deliveries"
    ]
    link = [d for d in shown if d["method"] == "LINK"]
    assert [(d["status"], d["attempts"], d["lastError"]) for d in link] == [("DELIVERED", 1, None)]
    url: str = link[0]["url"]
    return order, url


async def revealed_by_link(db: asyncpg.Connection[Any], order: Paid) -> int:
    count: int = await db.fetchval(
        "SELECT count(*) FROM code_events WHERE order_id = $1 AND kind = 'REVEALED'"
        " AND actor = 'link'",
        ids.decode("Order", order.id),
    )
    return count


async def test_the_page_shows_the_codes_until_its_view_limit_then_refuses(
    server: LiveServer, api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any], product: str
) -> None:
    # Given A's paid order with a link (a path: no public URL is set)
    order, url = await linked_order(server, api, tree, db, product)
    assert url.startswith("/r/")
    page = server.url + url

    # When the buyer opens it in an English browser
    first = await api.http.get(page, headers={"Accept-Language": "en-US,en;q=0.9"})

    # Then the page shows every code and password, says one view is left, may not be kept
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("text/html")
    assert first.headers["cache-control"] == "no-store"
    assert first.headers["referrer-policy"] == "no-referrer"
    for code in order.codes:
        assert code["code"] in first.text
        assert code["password"] in first.text
    assert "1 views left" in first.text

    # And a HEAD request (a link checker) and the QR code count no view
    assert (await api.http.head(page)).status_code == 200
    assert (await api.http.get(page + "/qr.svg")).status_code == 200

    # And the second view, in Chinese by default, says it is the last
    second = await api.http.get(page)
    assert second.status_code == 200
    assert "这是最后一次查看，请立即保存卡密。" in second.text
    assert all(code["code"] in second.text for code in order.codes)

    # And the third is refused with 410, showing no code
    third = await api.http.get(page)
    assert third.status_code == 410
    assert "此链接的查看次数已用完。" in third.text
    assert not any(code["code"] in third.text for code in order.codes)
    assert third.headers["cache-control"] == "no-store"

    # And each view that showed the codes is logged as their reveal by the link
    assert await revealed_by_link(db, order) == MAX_VIEWS * len(order.codes)


async def test_only_the_buyer_sees_the_link(
    server: LiveServer, api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any], product: str
) -> None:
    # Given A's order with a link
    order, _ = await linked_order(server, api, tree, db, product)

    # When the platform, above A, reads the order
    shown = (await api.data(DELIVERIES, {"id": order.id}, token=tree["root"].key))["order"][
        "deliveries"
    ]

    # Then it sees the delivery but not its URL
    assert [(d["method"], d["status"], d["url"]) for d in shown] == [
        ("API", "DELIVERED", None),
        ("LINK", "DELIVERED", None),
    ]


async def test_unknown_forged_and_expired_links_are_refused_alike(
    server: LiveServer, api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any], product: str
) -> None:
    # Given a real link
    order, url = await linked_order(server, api, tree, db, product)
    delivery_id, _, mac = url.removeprefix("/r/").partition(".")
    other_mac = link_token(SESSION_SECRET.encode(), int(delivery_id) + 1).partition(".")[2]

    # When tokens are made up: another id with this MAC, a wrong MAC, garbage, a link this
    # server signed for a delivery that does not exist
    made_up = [
        f"{int(delivery_id) + 1}.{mac}",
        f"{delivery_id}.{other_mac}",
        f"{delivery_id}.{mac[:-1]}{'B' if mac.endswith('A') else 'A'}",
        "garbage",
        f"{delivery_id}",
        link_token(SESSION_SECRET.encode(), 999_999),
    ]
    answers = [await api.http.get(f"{server.url}/r/{token}") for token in made_up]
    qr = await api.http.get(f"{server.url}/r/{made_up[1]}/qr.svg")

    # Then every one gets the same 404 page, the QR code too
    assert {(a.status_code, a.text) for a in answers} == {(404, answers[0].text)}
    assert "链接无效或不存在。" in answers[0].text
    assert (qr.status_code, qr.text) == (404, answers[0].text)
    assert await revealed_by_link(db, order) == 0

    # And once the link is past its lifetime, it is refused as expired, no view counted
    await db.execute(
        "UPDATE deliveries SET created_at = created_at - $1::interval WHERE method = 'LINK'",
        timedelta(days=8),
    )
    expired = await api.http.get(server.url + url, headers={"Accept-Language": "en"})
    assert expired.status_code == 410
    assert "This link has expired." in expired.text
    assert await db.fetchval("SELECT link_views FROM deliveries") == 0


async def test_the_qr_code_encodes_the_page_as_the_request_reached_it(
    server: LiveServer, api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any], product: str
) -> None:
    # Given a link, and no public URL set
    _, url = await linked_order(server, api, tree, db, product)

    # When its QR code is fetched
    answer = await api.http.get(server.url + url + "/qr.svg")

    # Then it is an SVG of the page's absolute URL on this server
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/svg+xml"
    assert answer.headers["cache-control"] == "no-store"
    assert _svg_modules(answer.text) == _modules(server.url + url)


@pytest.mark.parametrize("settings", [PUBLIC_URL], indirect=True)
async def test_with_a_public_url_the_link_and_its_qr_code_are_absolute(
    server: LiveServer, api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any], product: str
) -> None:
    # Given the server's public URL is set
    # When A reads its order's link
    _, url = await linked_order(server, api, tree, db, product)

    # Then it is absolute, on the public URL, and the QR code encodes exactly it
    assert url.startswith("https://codes.quanyi.example/r/")
    path = url.removeprefix("https://codes.quanyi.example")
    answer = await api.http.get(server.url + path + "/qr.svg")
    assert _svg_modules(answer.text) == _modules(url)
    # And the page itself answers on the path
    assert (await api.http.get(server.url + path)).status_code == 200


def _modules(url: str) -> set[tuple[int, int]]:
    reference = segno.make(url, error="m")
    return {
        (row + QR_BORDER, col + QR_BORDER)
        for row, line in enumerate(reference.matrix)
        for col, bit in enumerate(line)
        if bit
    }
