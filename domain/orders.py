"""Rules for orders: statuses, bounds and what makes two requests the same order."""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from domain.channels import Problem
from domain.staff import clean_email

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


MAX_DELIVERIES = 5
# Mainland mobiles as people type them, or E.164 with its leading +.
_PHONE = re.compile(r"1[3-9][0-9]{9}|\+[1-9][0-9]{6,14}", re.ASCII)


@dataclass(frozen=True, slots=True)
class QueuedDelivery:
    """A delivery to queue once the order is paid (API delivery is the answer itself)."""

    method: DeliveryMethod
    target: str | None

    def as_json(self) -> dict[str, str | None]:
        return {"method": self.method.value, "target": self.target}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QueuedDelivery:
        return cls(DeliveryMethod(data["method"]), data.get("target"))


def delivery_plan(
    requested: Sequence[tuple[DeliveryMethod, str | None]],
    email: str | None,
    phone: str | None,
) -> tuple[list[QueuedDelivery], Problem | None]:
    """What to queue for an order's requested deliveries. E-mail and SMS go to the given
    target, else to the buyer's address or phone; LINK and WEBHOOK take no target (the
    link is made for the order, the webhook goes to the channel's endpoints)."""
    if len(requested) > MAX_DELIVERIES:
        return [], Problem("delivery", f"Ask for at most {MAX_DELIVERIES} deliveries.")
    planned: list[QueuedDelivery] = []
    for i, (method, target) in enumerate(requested):
        field = f"delivery.{i}.target"
        if method is DeliveryMethod.API:
            continue
        if method in (DeliveryMethod.LINK, DeliveryMethod.WEBHOOK):
            if target is not None:
                return [], Problem(field, f"Delivery by {method.value} takes no target.")
            chosen = None
        elif method is DeliveryMethod.EMAIL:
            address, problem = clean_email(target or email or "")
            if problem:
                return [], Problem(field, "Give an e-mail address here or as buyer.email.")
            chosen = address
        else:
            number = "".join((target or phone or "").split())
            if not _PHONE.fullmatch(number):
                return [], Problem(field, "Give a mobile number here or as buyer.phone.")
            chosen = number
        queued = QueuedDelivery(method, chosen)
        if queued not in planned:
            planned.append(queued)
    return planned, None


def input_hash(request: dict[str, Any]) -> str:
    """A fingerprint of an order request: a retried key must come with the same one."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def sale_reference(channel_id: int, idempotency_key: str) -> str:
    """The reference under which an order's codes and ledger transaction are written."""
    return f"order:{channel_id}:{idempotency_key}"
