"""What redeeming a code (核销) checks, in order, and what each refusal is called.

A code that is unknown, not sold, or of a product not redeemed here is CODE_NOT_FOUND:
the same answer whether it exists or not. Wrong codes and wrong passwords are guesses,
counted against the verifier and the device (the guessing defence).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class Refusal(enum.StrEnum):
    CODE_NOT_FOUND = "CODE_NOT_FOUND"
    WRONG_PASSWORD = "WRONG_PASSWORD"  # noqa: S105 - an error code, not a password
    CODE_NOT_YET_VALID = "CODE_NOT_YET_VALID"
    CODE_EXPIRED = "CODE_EXPIRED"
    CODE_FROZEN = "CODE_FROZEN"
    CODE_VOIDED = "CODE_VOIDED"
    REGION_NOT_ALLOWED = "REGION_NOT_ALLOWED"
    CHANNEL_NOT_AUTHORIZED = "CHANNEL_NOT_AUTHORIZED"
    CODE_USED_UP = "CODE_USED_UP"


GUESSES = frozenset({Refusal.CODE_NOT_FOUND, Refusal.WRONG_PASSWORD})

MESSAGES = {
    Refusal.CODE_NOT_FOUND: "No such code.",
    Refusal.WRONG_PASSWORD: "The password does not match the code.",
    Refusal.CODE_NOT_YET_VALID: "This code is not valid yet.",
    Refusal.CODE_EXPIRED: "This code has expired.",
    Refusal.CODE_FROZEN: "This code is frozen.",
    Refusal.CODE_VOIDED: "This code was voided.",
    Refusal.REGION_NOT_ALLOWED: "This merchant does not redeem in that region.",
    Refusal.CHANNEL_NOT_AUTHORIZED: (
        "This code was sold through a channel this merchant is not authorised for;"
        " it is frozen and its seller told."
    ),
    Refusal.CODE_USED_UP: "This code has no uses left.",
}


@dataclass(frozen=True, slots=True)
class Candidate:
    """A code as redemption sees it (None fields: not applicable)."""

    status: str
    frozen_from: str | None
    redeemable: bool
    sold: bool
    password_ok: bool
    valid_from: datetime | None
    expires_at: datetime | None
    region_ok: bool
    authorised: bool
    uses_left: int


def check(code: Candidate | None, now: datetime) -> Refusal | None:
    """The first reason the code cannot be redeemed now, or None."""
    if code is None or code.status in ("available", "reserved"):
        return Refusal.CODE_NOT_FOUND
    if not code.redeemable or not code.sold:
        return Refusal.CODE_NOT_FOUND
    if code.status == "frozen" and code.frozen_from != "sold":
        return Refusal.CODE_NOT_FOUND
    if not code.password_ok:
        return Refusal.WRONG_PASSWORD
    if code.valid_from is not None and now < code.valid_from:
        return Refusal.CODE_NOT_YET_VALID
    if code.expires_at is not None and now >= code.expires_at:
        return Refusal.CODE_EXPIRED
    if code.status == "frozen":
        return Refusal.CODE_FROZEN
    if code.status == "voided":
        return Refusal.CODE_VOIDED
    if not code.region_ok:
        return Refusal.REGION_NOT_ALLOWED
    if not code.authorised:
        return Refusal.CHANNEL_NOT_AUTHORIZED
    if code.uses_left <= 0:
        return Refusal.CODE_USED_UP
    return None
