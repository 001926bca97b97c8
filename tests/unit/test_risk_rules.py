"""Risk rules without I/O: subjects of an attempt, which rules apply, what they decide."""

from __future__ import annotations

import pytest

from domain.channels import Problem
from domain.risk import (
    MAX_LIMIT,
    MAX_WINDOW_SECONDS,
    Action,
    BlockKind,
    OrderAttempt,
    Outcome,
    RiskDecision,
    Rule,
    Scope,
    Subject,
    SubjectKind,
    applicable,
    blocked,
    check_rule,
    clean_block,
    clean_reason,
    normalise,
    subject_of,
    verdict,
    window_key,
)

ATTEMPT = OrderAttempt(
    channel_id=7,
    product_id=3,
    quantity=1,
    ip=" 203.0.113.7 ",
    device_id="dev-1",
    account_id="buyer-9",
)


def rule(rule_id: int, scope: Scope, action: Action = Action.BLOCK, limit: int = 5) -> Rule:
    return Rule(rule_id, scope, limit, 60, action)


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        (Scope.IP, Subject(SubjectKind.IP, "203.0.113.7")),
        (Scope.DEVICE, Subject(SubjectKind.DEVICE, "dev-1")),
        (Scope.BUYER, Subject(SubjectKind.BUYER, "buyer-9")),
        (Scope.CHANNEL, Subject(SubjectKind.CHANNEL, "7")),
    ],
)
def test_each_scope_counts_its_own_subject_of_the_attempt(scope: Scope, expected: Subject) -> None:
    assert subject_of(scope, ATTEMPT) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("::ffff:10.0.0.1", "10.0.0.1"),
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        ("  10.0.0.1\n", "10.0.0.1"),
        ("not an address", "not an address"),
        ("   ", None),
        (None, None),
    ],
)
def test_ip_addresses_are_compared_as_addresses(given: str | None, expected: str | None) -> None:
    assert normalise(SubjectKind.IP, given) == expected


def test_other_subjects_are_trimmed_and_keep_their_case() -> None:
    assert normalise(SubjectKind.DEVICE, "  Dev-1 ") == "Dev-1"
    assert normalise(SubjectKind.BUYER, "") is None


def test_a_rule_applies_only_when_the_attempt_names_its_subject() -> None:
    # Given rules of every scope, out of id order, and an attempt with no device or buyer
    rules = [rule(4, Scope.BUYER), rule(2, Scope.CHANNEL), rule(1, Scope.DEVICE), rule(3, Scope.IP)]
    bare = OrderAttempt(channel_id=7, product_id=3, quantity=1, ip="10.0.0.1")

    # Then the IP and channel rules apply, in rule order, each with its subject
    assert applicable(bare, rules) == [
        (rules[1], Subject(SubjectKind.CHANNEL, "7")),
        (rules[3], Subject(SubjectKind.IP, "10.0.0.1")),
    ]
    # And an attempt naming everything is counted by all four
    assert [r.id for r, _ in applicable(ATTEMPT, rules)] == [1, 2, 3, 4]


def test_blocks_match_the_normalised_subject() -> None:
    blocks = {Subject(SubjectKind.IP, "203.0.113.7"): "fraud"}
    mapped = OrderAttempt(channel_id=7, product_id=3, quantity=1, ip="::FFFF:203.0.113.7")

    assert blocked(mapped, blocks) == Subject(SubjectKind.IP, "203.0.113.7")
    assert blocked(OrderAttempt(7, 3, 1, ip="203.0.113.8"), blocks) is None
    assert blocked(OrderAttempt(7, 3, 1, device_id="203.0.113.7"), blocks) is None


def test_the_first_blocked_subject_is_reported() -> None:
    blocks = {
        Subject(SubjectKind.BUYER, "buyer-9"): "chargebacks",
        Subject(SubjectKind.DEVICE, "dev-1"): "emulator",
    }
    assert blocked(ATTEMPT, blocks) == Subject(SubjectKind.DEVICE, "dev-1")


def test_within_every_limit_is_allowed() -> None:
    checked = applicable(ATTEMPT, [rule(1, Scope.DEVICE), rule(2, Scope.IP, Action.REVIEW)])
    assert verdict(checked, []) == verdict(checked, ()) == verdict([], [])
    assert verdict(checked, []).outcome is Outcome.ALLOW
    assert verdict(checked, []).rule is None


def test_a_review_rule_over_its_limit_holds_the_order() -> None:
    checked = applicable(ATTEMPT, [rule(1, Scope.DEVICE), rule(2, Scope.IP, Action.REVIEW)])
    decided = verdict(checked, [1])
    assert decided.outcome is Outcome.REVIEW
    assert decided.rule == checked[1][0]
    assert decided.subject == Subject(SubjectKind.IP, "203.0.113.7")


def test_a_block_rule_over_its_limit_wins_over_review_rules() -> None:
    checked = applicable(
        ATTEMPT,
        [
            rule(1, Scope.DEVICE, Action.REVIEW),
            rule(2, Scope.IP, Action.BLOCK),
            rule(3, Scope.BUYER, Action.BLOCK),
        ],
    )
    decided = verdict(checked, [2, 0, 1])
    assert decided.outcome is Outcome.BLOCK
    assert decided.rule == checked[1][0]


def test_a_decision_says_whether_the_order_goes_ahead() -> None:
    decisions = [RiskDecision(), RiskDecision(Outcome.REVIEW), RiskDecision(Outcome.BLOCK)]
    assert [(d.allowed, d.review) for d in decisions] == [
        (True, False),
        (True, True),
        (False, False),
    ]


@pytest.mark.parametrize(
    ("limit", "window", "problem"),
    [
        (1, 1, None),
        (MAX_LIMIT, MAX_WINDOW_SECONDS, None),
        (0, 60, Problem("limit", f"Give a limit of 1 to {MAX_LIMIT} orders.")),
        (MAX_LIMIT + 1, 60, Problem("limit", f"Give a limit of 1 to {MAX_LIMIT} orders.")),
        (
            5,
            0,
            Problem(
                "windowSeconds",
                f"Give a window of 1 to {MAX_WINDOW_SECONDS} seconds (31 days).",
            ),
        ),
        (
            5,
            MAX_WINDOW_SECONDS + 1,
            Problem(
                "windowSeconds",
                f"Give a window of 1 to {MAX_WINDOW_SECONDS} seconds (31 days).",
            ),
        ),
    ],
)
def test_rule_bounds(limit: int, window: int, problem: Problem | None) -> None:
    assert check_rule(limit, window) == problem


def test_blocks_are_checked_and_normalised() -> None:
    assert clean_block(BlockKind.IP, " ::ffff:10.0.0.1 ") == (
        Subject(SubjectKind.IP, "10.0.0.1"),
        None,
    )
    assert clean_block(BlockKind.IP, "10.0.0") == (
        None,
        Problem("value", "Give an IP address, such as 203.0.113.7."),
    )
    assert clean_block(BlockKind.DEVICE, " ") == (
        None,
        Problem("value", "Give a value of 1 to 200 characters."),
    )
    assert clean_block(BlockKind.BUYER, "b" * 201)[1] == Problem(
        "value", "Give a value of 1 to 200 characters."
    )
    assert clean_block(BlockKind.BUYER, " b-1 ") == (Subject(SubjectKind.BUYER, "b-1"), None)


def test_reasons_are_required_and_bounded() -> None:
    assert clean_reason("  chargebacks ") == ("chargebacks", None)
    assert clean_reason(" ")[1] == Problem("reason", "Give a reason of 1 to 500 characters.")
    assert clean_reason("x" * 501)[1] == Problem("reason", "Give a reason of 1 to 500 characters.")


def test_window_keys_are_bounded_and_distinct_per_rule_and_subject() -> None:
    device = Subject(SubjectKind.DEVICE, "d" * 10_000)
    key = window_key(1, device)
    assert key == window_key(1, Subject(SubjectKind.DEVICE, "d" * 10_000))
    assert len(key) < 80
    assert (
        len({key, window_key(2, device), window_key(1, Subject(SubjectKind.BUYER, device.value))})
        == 3
    )
