"""Webhook events and their three wire formats: Standard Webhooks, WeCom and DingTalk robots.

GENERIC follows https://www.standardwebhooks.com: the body is the event JSON, signed with
HMAC-SHA256 over ``{id}.{timestamp}.{body}``; the id is the caller's outbox row id, so a
retry carries the same id and receivers can drop duplicates. WECOM and DINGTALK post a
bilingual markdown message to a group robot, which answers ``{"errcode": 0}`` on success.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, assert_never

import httpx

from integrations import http_outcome
from integrations.http_outcome import Outcome

WebhookKind = Literal["GENERIC", "WECOM", "DINGTALK"]

ORDER_PAID = "order.paid"
# A code frozen because a merchant not authorised for its channel tried to redeem it.
CODE_FROZEN = "code.frozen"
WHSEC_PREFIX = "whsec_"
# WeCom refuses markdown over 4096 bytes; DingTalk takes more, but one limit keeps both
# messages alike.
MARKDOWN_MAX_BYTES = 4096
WECOM_RATE_LIMITED = 45009
DINGTALK_RATE_LIMITED = 130101

_WHITESPACE = re.compile(r"\s+")
_JSON = {"content-type": "application/json"}


def event(type: str, data: dict[str, Any], occurred_at: datetime) -> dict[str, Any]:
    return {"type": type, "timestamp": _iso(occurred_at), "data": data}


def order_paid_event(
    order_id: str,
    channel_id: str,
    product_id: str,
    product_name: str,
    codes: list[dict[str, Any]],
    occurred_at: datetime,
) -> dict[str, Any]:
    """``codes`` as ``[{"id", "code", "password", "expiresAt"}]``; expiresAt a datetime,
    an ISO string or None."""
    return event(
        ORDER_PAID,
        {
            "orderId": order_id,
            "channelId": channel_id,
            "productId": product_id,
            "productName": product_name,
            "codes": [
                {
                    "id": str(code["id"]),
                    "code": code["code"],
                    "password": code.get("password"),
                    "expiresAt": _expiry_iso(code.get("expiresAt")),
                }
                for code in codes
            ],
        },
        occurred_at,
    )


def encode(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def new_secret() -> str:
    return WHSEC_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign_generic(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Standard Webhooks headers for one attempt. Raises ValueError for a malformed secret."""
    key = _secret_key(secret)
    signed = b"%s.%d.%s" % (msg_id.encode(), timestamp, body)
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }


def _secret_key(secret: str) -> bytes:
    if not secret.startswith(WHSEC_PREFIX):
        raise ValueError("webhook secret must start with whsec_")
    try:
        key = base64.b64decode(secret.removeprefix(WHSEC_PREFIX), validate=True)
    except binascii.Error:
        raise ValueError("webhook secret is not valid base64") from None
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def wecom_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {"msgtype": "markdown", "markdown": {"content": _markdown(payload, wecom=True)}}


def dingtalk_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "msgtype": "markdown",
        "markdown": {"title": _title(payload), "text": _markdown(payload, wecom=False)},
    }


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's signature: base64(HMAC-SHA256(secret, f"{timestamp}\\n{secret}"))."""
    digest = hmac.new(
        secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode()


def dingtalk_signed_url(url: str, secret: str, timestamp_ms: int) -> str:
    # httpx percent-encodes the query value, which is the url-encoding DingTalk asks for.
    signed = httpx.URL(url).copy_merge_params(
        {"timestamp": str(timestamp_ms), "sign": dingtalk_sign(secret, timestamp_ms)}
    )
    return str(signed)


async def send(
    client: httpx.AsyncClient,
    kind: WebhookKind,
    url: str,
    secret: str | None,
    msg_id: str,
    event: dict[str, Any],
    *,
    allow_private: bool,
    now: datetime,
) -> Outcome:
    """Deliver one event once. Never raises for what the endpoint or network can cause."""
    if kind == "GENERIC":
        if not secret:
            return http_outcome.failed("GENERIC endpoint has no signing secret")
        body = encode(event)
        try:
            headers = sign_generic(secret, msg_id, int(now.timestamp()), body)
        except ValueError:
            return http_outcome.failed("webhook secret is malformed")
        headers["content-type"] = "application/json"
        return await http_outcome.post(
            client,
            url,
            content=body,
            headers=headers,
            allow_private=allow_private,
            read_body=False,
        )
    if kind == "WECOM":
        return await http_outcome.post(
            client,
            url,
            content=encode(wecom_payload(event)),
            headers=_JSON,
            allow_private=allow_private,
            read_body=True,
            retry_errcodes={WECOM_RATE_LIMITED},
        )
    if kind == "DINGTALK":
        # A fresh timestamp per attempt: DingTalk refuses signatures older than an hour.
        try:
            target = dingtalk_signed_url(url, secret, _millis(now)) if secret else url
        except httpx.InvalidURL:
            return http_outcome.failed("invalid URL")
        return await http_outcome.post(
            client,
            target,
            content=encode(dingtalk_payload(event)),
            headers=_JSON,
            allow_private=allow_private,
            read_body=True,
            retry_errcodes={DINGTALK_RATE_LIMITED},
        )
    assert_never(kind)


def _title(payload: Mapping[str, Any]) -> str:
    if payload.get("type") == ORDER_PAID:
        return "订单已支付 / Order paid"
    return f"事件 / Event: {_inline(payload.get('type'))}"


def _markdown(payload: Mapping[str, Any], *, wecom: bool) -> str:
    # DingTalk joins single newlines into one paragraph, and shows backticks as they are.
    separator = "\n" if wecom else "\n\n"
    mark = "`" if wecom else ""
    data = payload.get("data")
    data = data if isinstance(data, Mapping) else {}
    head = [f"**{_title(payload)}**"]
    items: list[str] = []
    if payload.get("type") == ORDER_PAID:
        codes = data.get("codes") or []
        head += [
            f"> 商品 / Product: {_inline(data.get('productName'))}",
            f"> 订单 / Order: {_inline(data.get('orderId'))}",
            f"> 时间 / Time: {_inline(payload.get('timestamp'))}",
            f"卡密 / Codes ({len(codes)}):",
        ]
        for number, code in enumerate(codes, start=1):
            line = f"{number}. 卡号 / Code: {_quoted(code.get('code'), mark)}"
            if code.get("password"):
                line += f" 密码 / Password: {_quoted(code['password'], mark)}"
            if code.get("expiresAt"):
                line += f" 有效期至 / Expires: {_inline(code['expiresAt'])}"
            items.append(line)
    else:
        head.append(f"> 时间 / Time: {_inline(payload.get('timestamp'))}")
        items = [f"- {_inline(key)}: {_inline(value)}" for key, value in data.items()]
    return _fit(head, items, separator, MARKDOWN_MAX_BYTES)


def _fit(head: list[str], items: list[str], separator: str, limit: int) -> str:
    """Join head and as many whole items as fit in ``limit`` bytes, then say what was left out."""
    text = separator.join(head)
    for shown, item in enumerate(items):
        candidate = text + separator + item
        left_after = len(items) - shown - 1
        # Each accepted item leaves room for the note, so stopping later always fits.
        if _size(candidate + _left_out(left_after, separator)) > limit:
            return _cut(text + _left_out(left_after + 1, separator), limit)
        text = candidate
    return _cut(text, limit)


def _left_out(count: int, separator: str) -> str:
    if not count:
        return ""
    return (
        f"{separator}…另有 {count} 项未显示，请在后台查看 / {count} more not shown; see the console"
    )


def _cut(text: str, limit: int) -> str:
    """Cut to ``limit`` UTF-8 bytes without splitting a character; only an oversized head
    needs it."""
    if _size(text) <= limit:
        return text
    ellipsis = "…"
    room = limit - _size(ellipsis)
    return text.encode()[:room].decode(errors="ignore") + ellipsis


def _size(text: str) -> int:
    return len(text.encode())


def _inline(value: object) -> str:
    # A value spread over lines could forge headings or list items in the message.
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return _WHITESPACE.sub(" ", text).strip()


def _quoted(value: object, mark: str) -> str:
    text = _inline(value)
    return text if "`" in text else f"{mark}{text}{mark}"


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("event times must be timezone-aware")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _expiry_iso(value: object) -> str | None:
    if value is None:
        return None
    return _iso(value) if isinstance(value, datetime) else str(value)


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
