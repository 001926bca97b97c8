"""The order of redemption's checks, and which refusals count as guesses."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from domain.redemption import Candidate, Refusal, check

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
GOOD = Candidate(
    status="sold",
    frozen_from=None,
    redeemable=True,
    sold=True,
    password_ok=True,
    valid_from=None,
    expires_at=None,
    region_ok=True,
    authorised=True,
    uses_left=1,
)


def test_a_good_code_is_redeemed() -> None:
    assert check(GOOD, NOW) is None


@pytest.mark.parametrize(
    "candidate",
    [
        None,
        replace(GOOD, status="available", sold=False),
        replace(GOOD, status="reserved"),
        replace(GOOD, redeemable=False),
        replace(GOOD, status="frozen", frozen_from="available", sold=False),
    ],
)
def test_unknown_unsold_and_foreign_codes_look_the_same(candidate: Candidate | None) -> None:
    assert check(candidate, NOW) is Refusal.CODE_NOT_FOUND


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ({"password_ok": False}, Refusal.WRONG_PASSWORD),
        ({"valid_from": NOW + timedelta(seconds=1)}, Refusal.CODE_NOT_YET_VALID),
        ({"expires_at": NOW}, Refusal.CODE_EXPIRED),
        ({"status": "frozen", "frozen_from": "sold"}, Refusal.CODE_FROZEN),
        ({"status": "voided"}, Refusal.CODE_VOIDED),
        ({"region_ok": False}, Refusal.REGION_NOT_ALLOWED),
        ({"authorised": False}, Refusal.CHANNEL_NOT_AUTHORIZED),
        ({"uses_left": 0}, Refusal.CODE_USED_UP),
    ],
)
def test_each_check_has_its_refusal(change: dict[str, object], refusal: Refusal) -> None:
    assert check(replace(GOOD, **change), NOW) is refusal  # type: ignore[arg-type]


def test_a_wrong_password_is_told_before_anything_about_the_code() -> None:
    # Whoever lacks the password learns nothing of the code's state or validity.
    locked = replace(
        GOOD, password_ok=False, status="frozen", frozen_from="sold", expires_at=NOW, uses_left=0
    )
    assert check(locked, NOW) is Refusal.WRONG_PASSWORD


def test_a_frozen_code_of_another_territory_stays_frozen_not_refrozen() -> None:
    assert check(replace(GOOD, status="frozen", frozen_from="sold", authorised=False), NOW) is (
        Refusal.CODE_FROZEN
    )
