"""The risk check every order passes before stock is touched.

This release allows everything; rate windows and block lists plug in behind ``RiskCheck``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class OrderAttempt:
    channel_id: int
    product_id: int
    quantity: int
    ip: str | None = None
    device_id: str | None = None
    account_id: str | None = None


@dataclass(frozen=True, slots=True)
class RiskDecision:
    allowed: bool
    reason: str | None = None


class RiskCheck(Protocol):
    async def assess(self, attempt: OrderAttempt) -> RiskDecision: ...


class AllowAll:
    async def assess(self, attempt: OrderAttempt) -> RiskDecision:
        return RiskDecision(allowed=True)
