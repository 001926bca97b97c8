"""Upstream suppliers: the adapter interface and the adapter for the signed HTTP protocol.

Errors tell the caller what to do next:

- ``SupplierUnavailable``: try again later with the same ref (timeouts, dropped connections,
  5xx, 429, refused credentials, responses that are unsigned, badly signed or malformed).
  After a failed ``place`` the supplier may or may not have created the order; placing again
  with the same ref, or reading it back, finds out without buying twice.
- ``SupplierRejected``: the supplier refused this request for good (unknown sku, out of
  stock, invalid quantity, a ref already used for a different order); do not retry it.

Code plaintexts and secrets never appear in logs or exception messages.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, NoReturn, Protocol, Self
from urllib.parse import quote, urlsplit

import httpx

from integrations import supplier_signing, tls
from integrations.targets import TargetRefused, TargetUnresolved, check_target

log = logging.getLogger("quanyi.suppliers")

MIN_SECRET_BYTES = 16
MAX_BODY_BYTES = 8 * 1024 * 1024
TARGET_CHECK_TTL = 30.0
_MONEY = re.compile(r"[0-9]{1,12}(\.[0-9]{1,4})?", re.ASCII)
_MAX_TEXT = 256
_MAX_ERROR_SHOWN = 100


@dataclass(frozen=True)
class CatalogItem:
    sku: str
    name: str
    category: str
    face_value: Decimal
    cost: Decimal
    available: bool


@dataclass(frozen=True)
class SuppliedCode:
    code: str
    password: str | None
    expires_at: datetime | None

    def __repr__(self) -> str:
        # Dataclass reprs end up in logs and tracebacks; the secrets must not.
        return f"SuppliedCode(code=<hidden>, password=<hidden>, expires_at={self.expires_at!r})"


@dataclass(frozen=True)
class SupplierOrder:
    ref: str
    codes: tuple[SuppliedCode, ...]


class SupplierAdapter(Protocol):
    async def catalog(self) -> list[CatalogItem]: ...

    async def place(self, ref: str, sku: str, quantity: int) -> SupplierOrder:
        """Buy ``quantity`` codes of ``sku``; calling again with the same ref buys nothing more."""
        ...

    async def read(self, ref: str) -> SupplierOrder | None:
        """The order placed under ``ref``, None when the supplier has none."""
        ...

    async def aclose(self) -> None: ...


class SupplierError(Exception):
    pass


class SupplierUnavailable(SupplierError):
    pass


class SupplierRejected(SupplierError):
    pass


class _Malformed(Exception):
    pass


class HttpSupplier:
    """A supplier that speaks the signed HTTP JSON protocol (see the API document)."""

    def __init__(
        self,
        base_url: str,
        secret: bytes,
        *,
        timeout: float = 5.0,
        allow_private: bool,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the supplier secret must have at least {MIN_SECRET_BYTES} bytes")
        self._base = base_url.rstrip("/")
        self._host = urlsplit(self._base).hostname or ""
        self._secret = secret
        self._allow_private = allow_private
        self._target_checked_until = 0.0
        # trust_env=False: a proxy taken from the environment would make the address check
        # meaningless and could see every code in transit.
        self._client = httpx.AsyncClient(
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
            trust_env=False,
            verify=tls.client_context(trust_env=False),
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def catalog(self) -> list[CatalogItem]:
        data = await self._call("GET", "/catalog", None)
        try:
            items = _field(data, "items", list)
            return [_catalog_item(item) for item in items]
        except _Malformed as error:
            raise SupplierUnavailable(f"malformed catalog: {error}") from None

    async def place(self, ref: str, sku: str, quantity: int) -> SupplierOrder:
        if not ref or not sku or quantity < 1:
            raise ValueError("ref and sku must not be empty and quantity must be positive")
        data = await self._call("POST", "/orders", {"ref": ref, "sku": sku, "quantity": quantity})
        try:
            order = _order(data)
            if order.ref != ref:
                raise _Malformed("the answer is for another ref")
            if len(order.codes) != quantity:
                raise _Malformed(f"{len(order.codes)} codes for a quantity of {quantity}")
        except _Malformed as error:
            raise SupplierUnavailable(f"malformed order {ref}: {error}") from None
        return order

    async def read(self, ref: str) -> SupplierOrder | None:
        if not ref:
            raise ValueError("ref must not be empty")
        data = await self._call("GET", f"/orders/{quote(ref, safe='')}", None, missing_ok=True)
        if data is None:
            return None
        try:
            order = _order(data)
            if order.ref != ref:
                raise _Malformed("the answer is for another ref")
        except _Malformed as error:
            raise SupplierUnavailable(f"malformed order {ref}: {error}") from None
        return order

    async def _call(
        self,
        method: str,
        path: str,
        payload: Mapping[str, Any] | None,
        *,
        missing_ok: bool = False,
    ) -> Any:
        """The verified JSON answer to one signed request; None for 404 when ``missing_ok``."""
        url = self._base + path
        await self._check_target(url)
        body = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        request = self._client.build_request(method, url, content=body)
        if payload is not None:
            request.headers["Content-Type"] = "application/json"
        signed_path = request.url.raw_path.decode("ascii")
        request.headers.update(
            supplier_signing.sign(self._secret, method, signed_path, body, int(time.time()))
        )
        status, headers, answer = await self._send(request)
        if not supplier_signing.verify(
            self._secret, supplier_signing.RESPONSE, signed_path, answer, headers, time.time()
        ):
            log.warning(
                "supplier response without a valid signature",
                extra={"fields": {"host": self._host, "path": path, "status": status}},
            )
            raise SupplierUnavailable(f"{method} {path}: response signature invalid")
        if 200 <= status < 300:
            try:
                return _loads(answer)
            except _Malformed as error:
                raise SupplierUnavailable(f"{method} {path}: malformed answer: {error}") from None
        if status == 404 and missing_ok:
            return None
        _raise_for_status(method, path, status, answer)

    async def _check_target(self, url: str) -> None:
        # Every URL of one adapter has the same host, so one expiry covers them all.
        now = time.monotonic()
        if self._target_checked_until > now:
            return
        try:
            await check_target(url, allow_private=self._allow_private)
        except TargetUnresolved as error:
            raise SupplierUnavailable(error.reason) from error
        except TargetRefused as error:
            raise SupplierRejected(f"supplier address refused: {error.reason}") from error
        self._target_checked_until = now + TARGET_CHECK_TTL

    async def _send(self, request: httpx.Request) -> tuple[int, httpx.Headers, bytes]:
        try:
            response = await self._client.send(request, stream=True)
            try:
                chunks = bytearray()
                async for chunk in response.aiter_bytes():
                    chunks += chunk
                    if len(chunks) > MAX_BODY_BYTES:
                        raise SupplierUnavailable(
                            f"{request.method} {request.url.path}: response over "
                            f"{MAX_BODY_BYTES} bytes"
                        )
            finally:
                await response.aclose()
        except httpx.HTTPError as error:
            # The class name only: some httpx messages quote what the peer sent.
            raise SupplierUnavailable(
                f"{request.method} {request.url.path}: {type(error).__name__}"
            ) from None
        return response.status_code, response.headers, bytes(chunks)


def _raise_for_status(method: str, path: str, status: int, answer: bytes) -> NoReturn:
    where = f"{method} {path}: {status}"
    reason = _error_reason(answer)
    if reason:
        where = f"{where} {reason}"
    if status in (401, 403):
        # Our credentials, not this order, were refused: fixable by the operator, and the
        # order may go through once they are.
        raise SupplierUnavailable(f"{where} (credentials refused)")
    if status in (408, 429) or status >= 500 or status < 400:
        raise SupplierUnavailable(where)
    raise SupplierRejected(where)


def _error_reason(answer: bytes) -> str:
    """The short ``error`` field of an error answer, never the body itself."""
    try:
        data = json.loads(answer)
    except ValueError:
        return ""
    reason = data.get("error") if isinstance(data, dict) else None
    if not isinstance(reason, str):
        return ""
    return reason[:_MAX_ERROR_SHOWN].encode("ascii", "replace").decode()


def _refuse_float(text: str) -> NoReturn:
    raise _Malformed("a number with a fraction or exponent (amounts are strings)")


def _refuse_constant(text: str) -> NoReturn:
    raise _Malformed(f"{text} is not JSON")


def _loads(answer: bytes) -> Any:
    try:
        return json.loads(answer, parse_float=_refuse_float, parse_constant=_refuse_constant)
    except ValueError:
        raise _Malformed("the answer is not JSON") from None


def _field(data: Any, name: str, kind: type[Any]) -> Any:
    if not isinstance(data, dict):
        raise _Malformed("an object was expected")
    value = data.get(name)
    # bool is an int in Python; a flag must not pass for a number or the reverse.
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise _Malformed(f"{name} must be a {kind.__name__}")
    return value


def _text(data: Any, name: str) -> str:
    value: str = _field(data, name, str)
    if not value or len(value) > _MAX_TEXT:
        raise _Malformed(f"{name} must have 1 to {_MAX_TEXT} characters")
    return value


def _money(data: Any, name: str) -> Decimal:
    value: str = _field(data, name, str)
    if not _MONEY.fullmatch(value):
        raise _Malformed(f"{name} must be a non-negative decimal string")
    return Decimal(value)


def _catalog_item(data: Any) -> CatalogItem:
    return CatalogItem(
        sku=_text(data, "sku"),
        name=_text(data, "name"),
        category=_text(data, "category"),
        face_value=_money(data, "faceValue"),
        cost=_money(data, "cost"),
        available=_field(data, "available", bool),
    )


def _order(data: Any) -> SupplierOrder:
    codes = tuple(_code(item) for item in _field(data, "codes", list))
    if len({code.code for code in codes}) != len(codes):
        raise _Malformed("the same code twice")
    return SupplierOrder(ref=_text(data, "ref"), codes=codes)


def _code(data: Any) -> SuppliedCode:
    password = _get(data, "password")
    if password is not None and (not isinstance(password, str) or len(password) > _MAX_TEXT):
        raise _Malformed(f"password must be null or a string of at most {_MAX_TEXT} characters")
    expires = _get(data, "expiresAt")
    return SuppliedCode(
        code=_text(data, "code"),
        password=password,
        expires_at=None if expires is None else _instant(expires),
    )


def _get(data: Any, name: str) -> Any:
    if not isinstance(data, dict):
        raise _Malformed("an object was expected")
    return data.get(name)


def _instant(value: Any) -> datetime:
    if not isinstance(value, str):
        raise _Malformed("expiresAt must be an ISO-8601 string")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise _Malformed("expiresAt is not an ISO-8601 instant") from None
    if when.tzinfo is None:
        raise _Malformed("expiresAt has no UTC offset")
    return when.astimezone(UTC)
