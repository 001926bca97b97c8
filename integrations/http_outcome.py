"""What one outbound delivery attempt came to, and whether the outbox should try it again.

Senders never raise for failures a peer can cause; they return an ``Outcome`` and the
outbox worker decides from ``retry``, ``gone`` and ``retry_after``. Error strings are short
and made of status codes, errcodes, exception class names and the target check's reason
(which names the host only): a peer's body may echo the codes we sent it, and a URL's query
may carry a robot's key.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from integrations.targets import TargetRefused, TargetUnresolved, check_target

RETRY_AFTER_CAP = 3600.0
# Robot APIs answer with a few dozen bytes; more than this is not a reply worth reading.
MAX_BODY_BYTES = 64 * 1024

_SECONDS = re.compile(r"\d+(\.\d+)?")


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    retry: bool
    gone: bool
    error: str | None
    retry_after: float | None


SUCCESS = Outcome(ok=True, retry=False, gone=False, error=None, retry_after=None)


def failed(error: str) -> Outcome:
    """A failure that another attempt would repeat."""
    return Outcome(ok=False, retry=False, gone=False, error=error, retry_after=None)


def transient(error: str, retry_after: float | None = None) -> Outcome:
    return Outcome(ok=False, retry=True, gone=False, error=error, retry_after=retry_after)


def network_failure(exc: BaseException) -> Outcome:
    # The class name (ConnectError, ReadTimeout, ...) says enough and carries no URL.
    return transient(f"network error: {type(exc).__name__}")


def classify(
    status: int,
    headers: Mapping[str, str],
    body_json: object | None,
    *,
    retry_errcodes: Collection[int] = (),
    now: datetime | None = None,
) -> Outcome:
    """Classify an HTTP response.

    ``body_json`` is None when the status alone decides. Otherwise the peer reports its
    outcome in the body, as the chat robots do with ``{"errcode": 0, ...}``: a 2xx then also
    needs errcode 0, and an errcode in ``retry_errcodes`` (a rate limit) is worth retrying.
    """
    if 200 <= status < 300:
        return SUCCESS if body_json is None else _errcode_outcome(body_json, retry_errcodes)
    if status == 410:
        return Outcome(ok=False, retry=False, gone=True, error="HTTP 410 gone", retry_after=None)
    if status in (408, 429) or 500 <= status < 600:
        return transient(f"HTTP {status}", retry_after(headers, now or datetime.now(UTC)))
    if 300 <= status < 400:
        return failed(f"HTTP {status}: redirect not followed")
    return failed(f"HTTP {status}")


def retry_after(headers: Mapping[str, str], now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), capped."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    value = value.strip()
    if _SECONDS.fullmatch(value):
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


def _errcode_outcome(body_json: object, retry_errcodes: Collection[int]) -> Outcome:
    errcode = body_json.get("errcode") if isinstance(body_json, dict) else None
    if not isinstance(errcode, int) or isinstance(errcode, bool):
        return failed("2xx reply without an errcode")
    if errcode == 0:
        return SUCCESS
    if errcode in retry_errcodes:
        return transient(f"errcode {errcode}")
    return failed(f"errcode {errcode}")


async def post(
    client: httpx.AsyncClient,
    url: str,
    *,
    content: bytes,
    headers: Mapping[str, str],
    allow_private: bool,
    read_body: bool,
    retry_errcodes: Collection[int] = (),
    request_timeout: float | None = None,
) -> Outcome:
    """POST once to a checked target and classify the answer.

    Redirects are not followed: the target check covered this URL only, and a redirect could
    lead to a private address. With ``read_body`` the reply is read (capped) as JSON for
    ``classify``'s errcode rule.
    """
    # The refusal names the host and why, never the query, where robot keys live.
    try:
        await check_target(url, allow_private=allow_private)
    except TargetUnresolved as exc:
        return transient(f"target refused: {exc.reason}")
    except TargetRefused as exc:
        return failed(f"target refused: {exc.reason}")
    try:
        async with client.stream(
            "POST",
            url,
            content=content,
            headers=headers,
            follow_redirects=False,
            timeout=httpx.USE_CLIENT_DEFAULT if request_timeout is None else request_timeout,
        ) as response:
            body = _parse(await _read_capped(response)) if read_body else None
            status, reply_headers = response.status_code, response.headers
    except httpx.InvalidURL:
        return failed("invalid URL")
    except httpx.HTTPError as exc:
        return network_failure(exc)
    return classify(status, reply_headers, body, retry_errcodes=retry_errcodes)


async def _read_capped(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_BODY_BYTES:
            break
    return b"".join(chunks)[:MAX_BODY_BYTES]


def _parse(raw: bytes) -> object:
    # An unreadable reply still counts as a reply: classify() fails it for lacking an errcode.
    try:
        parsed: object = json.loads(raw)
    except ValueError:
        return raw
    return parsed
