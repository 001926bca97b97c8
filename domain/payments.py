"""The payment gateway's notification: its signature and its body, as pure rules.

The gateway signs the raw body with HMAC-SHA256 under the shared secret and sends the
hex digest in ``X-Signature``. The body is JSON: ``{"reference", "transactionId",
"amount", "status"}`` with the amount a decimal string in CNY.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from domain.money import CENT

SUCCESS = "SUCCESS"
MAX_TRANSACTION_ID = 200
MAX_REFERENCE = 200
MAX_MANUAL_REFERENCE = 190
AMOUNT_LIMIT = Decimal("1000000000000")


def sign(secret: bytes, body: bytes) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def signature_ok(secret: bytes, body: bytes, signature: str | None) -> bool:
    """Whether ``signature`` (hex, any case) is the body's HMAC; compared in constant time."""
    if not signature:
        return False
    # As bytes: compare_digest refuses str with characters beyond ASCII, and a header may
    # carry any (Starlette reads headers as Latin-1).
    return hmac.compare_digest(sign(secret, body).encode(), signature.strip().lower().encode())


@dataclass(frozen=True, slots=True)
class Notification:
    reference: str
    transaction_id: str
    amount: Decimal
    status: str

    @property
    def succeeded(self) -> bool:
        return self.status == SUCCESS


class BadNotification(ValueError):
    """A body that is not a notification; the message says why."""


def parse(body: bytes) -> Notification:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        # RecursionError: arrays or objects nested thousands deep, which no gateway sends.
        raise BadNotification("The body is not JSON.") from error
    if not isinstance(data, dict):
        raise BadNotification("The body must be a JSON object.")
    reference = _text(data, "reference", MAX_REFERENCE)
    transaction_id = _text(data, "transactionId", MAX_TRANSACTION_ID)
    status = _text(data, "status", 50).upper()
    raw = data.get("amount")
    if not isinstance(raw, str | int) or isinstance(raw, bool):
        raise BadNotification('`amount` must be a decimal string such as "12.50".')
    try:
        amount = Decimal(str(raw))
    except InvalidOperation as error:
        raise BadNotification('`amount` must be a decimal string such as "12.50".') from error
    if not amount.is_finite() or not 0 <= amount < AMOUNT_LIMIT or amount.quantize(CENT) != amount:
        raise BadNotification("`amount` must be at least 0 with at most 2 decimals.")
    return Notification(reference, transaction_id, amount, status)


def _text(data: dict[str, object], name: str, limit: int) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not 1 <= len(value.strip()) <= limit:
        raise BadNotification(f"`{name}` must be a string of 1 to {limit} characters.")
    if "\x00" in value:
        # PostgreSQL cannot store it; the query would fail with a 500.
        raise BadNotification(f"`{name}` must not contain NUL characters.")
    return value.strip()


def manual_transaction_id(reference: str) -> str:
    """The transaction id of a payment confirmed by hand, apart from the gateway's ids."""
    return f"manual:{reference}"
