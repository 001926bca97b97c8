"""The buyer's link page ``GET /r/{token}`` and its QR code ``GET /r/{token}/qr.svg``.

A token is ``{delivery id}.{mac}``, the MAC keyed with a key derived from the session
secret: only this server can make one, it can make it again for the order's owner at any
time, and nothing secret is stored for it. Every view counts against the link's limit
(``link_max_views``) until it expires (``link_ttl_seconds`` after the order was paid);
a HEAD request or the QR code counts none. Unknown, forged and malformed tokens get the
same answer, so the page tells nobody which ids exist.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import timedelta
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from domain import crypto
from persistence import codes, deliveries, orders
from resolvers.link_page import (
    PAGE_HEADERS,
    RefusalReason,
    pick_language,
    qr_svg,
    render_link_page,
    render_refusal,
)

if TYPE_CHECKING:
    from server import Services

ACTOR = "link"
_MAC_BYTES = 16  # 128 bits: unguessable, and the URL stays short enough for a small QR code
_TOKEN = re.compile(r"([1-9][0-9]{0,17})\.([A-Za-z0-9_-]{22})")
_STATUS: dict[RefusalReason, int] = {"unknown": 404, "expired": 410, "used_up": 410}


def link_token(session_key: bytes, delivery_id: int) -> str:
    return f"{delivery_id}.{_mac(session_key, delivery_id)}"


def link_path(session_key: bytes, delivery_id: int) -> str:
    return f"/r/{link_token(session_key, delivery_id)}"


def link_url(public_url: str | None, session_key: bytes, delivery_id: int) -> str:
    """The page's absolute URL when the server knows its public address, else its path."""
    path = link_path(session_key, delivery_id)
    return public_url.rstrip("/") + path if public_url else path


def delivery_of(session_key: bytes, token: str) -> int | None:
    """The delivery id a token names, when this server made the token."""
    match = _TOKEN.fullmatch(token)
    if match is None:
        return None
    delivery_id = int(match[1])
    if not hmac.compare_digest(match[2], _mac(session_key, delivery_id)):
        return None
    return delivery_id


def _mac(session_key: bytes, delivery_id: int) -> str:
    # A key of its own, so a link token can never pass for a session signature.
    key = crypto.derive(session_key, "link-token")
    digest = hmac.new(key, str(delivery_id).encode(), hashlib.sha256).digest()[:_MAC_BYTES]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


async def link_page(request: Request) -> Response:
    services: Services = request.app.state.services
    settings = services.settings
    lang = pick_language(request.headers.get("accept-language"))
    delivery_id = delivery_of(services.session_key, request.path_params["token"])
    if delivery_id is None:
        return _refusal("unknown", lang)
    if request.method == "HEAD":
        # Link checkers and chat previews ask first; only a real view counts.
        return Response(headers=dict(PAGE_HEADERS), media_type="text/html")
    db = services.db
    async with db.acquire() as conn, conn.transaction():
        view = await deliveries.view_link(
            conn, delivery_id, settings.link_max_views, settings.link_ttl_seconds
        )
        if view is not None:
            plain = await codes.reveal_order(conn, services.keyring, view.order_id)
            # The view and its record stand or fall together.
            await orders.record_events(
                conn, [c.id for c in plain], "REVEALED", view.order_id, view.channel_id, ACTOR
            )
    if view is None:
        return _refusal(await _why_refused(services, delivery_id), lang)
    page = render_link_page(
        [{"code": c.code, "password": c.password, "expiresAt": c.expires_at} for c in plain],
        view.product_name,
        view.created_at + timedelta(seconds=settings.link_ttl_seconds),
        settings.link_max_views - view.views,
        lang,
    )
    return HTMLResponse(page, headers=dict(PAGE_HEADERS))


async def link_qr(request: Request) -> Response:
    services: Services = request.app.state.services
    token = request.path_params["token"]
    if delivery_of(services.session_key, token) is None:
        lang = pick_language(request.headers.get("accept-language"))
        return _refusal("unknown", lang)
    base = services.settings.public_url or str(request.base_url)
    return Response(
        qr_svg(f"{base.rstrip('/')}/r/{token}"),
        media_type="image/svg+xml",
        headers=dict(PAGE_HEADERS),
    )


async def _why_refused(services: Services, delivery_id: int) -> RefusalReason:
    state = await deliveries.link_state(services.db, delivery_id)
    if state is None:
        return "unknown"
    settings = services.settings
    # A refunded order's codes are void: its page is over, as if it had expired.
    if state.views >= settings.link_max_views and state.order_status == "PAID":
        return "used_up"
    return "expired"


def _refusal(reason: RefusalReason, lang: str) -> Response:
    return HTMLResponse(
        render_refusal(reason, lang), status_code=_STATUS[reason], headers=dict(PAGE_HEADERS)
    )
