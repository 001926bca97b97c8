"""Rules for orders: statuses, bounds and what makes two requests the same order."""

from __future__ import annotations

import enum
import hashlib
import json
from typing import Any

MAX_QUANTITY = 100
MAX_KEY = 200


class OrderStatus(enum.StrEnum):
    AWAITING_PAYMENT = "AWAITING_PAYMENT"
    REVIEW = "REVIEW"
    # Paid, waiting for the supplier's codes (REALTIME products).
    FULFILLING = "FULFILLING"
    PAID = "PAID"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"
    REFUNDED = "REFUNDED"


class PaymentMethod(enum.StrEnum):
    BALANCE = "BALANCE"
    EXTERNAL = "EXTERNAL"


class DeliveryMethod(enum.StrEnum):
    API = "API"
    LINK = "LINK"
    WEBHOOK = "WEBHOOK"
    EMAIL = "EMAIL"
    SMS = "SMS"


# The methods this release delivers by; the others are refused rather than accepted and
# silently never sent.
SUPPORTED_DELIVERY = frozenset({DeliveryMethod.API})


def input_hash(request: dict[str, Any]) -> str:
    """A fingerprint of an order request: a retried key must come with the same one."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def sale_reference(channel_id: int, idempotency_key: str) -> str:
    """The reference under which an order's codes and ledger transaction are written."""
    return f"order:{channel_id}:{idempotency_key}"
