"""Risk rules: who an order attempt comes from, and what the rules decide about it.

Everything here is pure. The rate windows themselves live in Valkey and the rules and
blocks in the database (see ``resolvers.risk``); this module says which subjects an
attempt has, which rules apply to it, what their verdicts add up to, and how rules and
blocks are checked when they are set.
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from domain.channels import Problem

# Bounds of a rule: a window keeps one entry per counted attempt, so the limit bounds the
# memory of one subject's window; a month covers "so many per buyer per month".
MAX_LIMIT = 100_000
MAX_WINDOW_SECONDS = 31 * 24 * 3600
MAX_SUBJECT = 200
MAX_REASON = 500
# How long an order held for review keeps its codes before it expires unreviewed: a
# person decides, which may take a working day; the stock is not locked up for ever.
REVIEW_HOLD = timedelta(hours=24)


class Scope(enum.StrEnum):
    """Whose orders a rule counts: per IP address, device, buyer account or channel."""

    IP = "IP"
    DEVICE = "DEVICE"
    BUYER = "BUYER"
    CHANNEL = "CHANNEL"


class Action(enum.StrEnum):
    BLOCK = "BLOCK"
    REVIEW = "REVIEW"


class Outcome(enum.StrEnum):
    ALLOW = "ALLOW"
    BLOCK = "BLOCK"
    REVIEW = "REVIEW"


class BlockKind(enum.StrEnum):
    IP = "IP"
    DEVICE = "DEVICE"
    BUYER = "BUYER"


class SubjectKind(enum.StrEnum):
    """What a risk event is about: an order's subjects, or a redemption's."""

    IP = "IP"
    DEVICE = "DEVICE"
    BUYER = "BUYER"
    CHANNEL = "CHANNEL"
    VERIFIER = "VERIFIER"
    MERCHANT = "MERCHANT"
    CODE = "CODE"


# How messages name a subject of each kind.
_NOUN = {
    SubjectKind.IP: "IP address",
    SubjectKind.DEVICE: "device",
    SubjectKind.BUYER: "buyer account",
    SubjectKind.CHANNEL: "channel",
    SubjectKind.VERIFIER: "verifier",
    SubjectKind.MERCHANT: "merchant",
    SubjectKind.CODE: "code",
}


@dataclass(frozen=True, slots=True)
class Subject:
    kind: SubjectKind
    value: str

    @property
    def noun(self) -> str:
        return _NOUN[self.kind]


@dataclass(frozen=True, slots=True)
class OrderAttempt:
    channel_id: int
    product_id: int
    quantity: int
    ip: str | None = None
    device_id: str | None = None
    account_id: str | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    id: int
    scope: Scope
    limit: int
    window_seconds: int
    action: Action


@dataclass(frozen=True, slots=True)
class RiskDecision:
    outcome: Outcome = Outcome.ALLOW
    # Told to the caller: why the order is refused or held.
    reason: str | None = None
    rule_id: int | None = None
    # The risk event that records this decision (none when no rule or block applied).
    event_id: int | None = None

    @property
    def allowed(self) -> bool:
        """Whether the order may go ahead: at once, or held for review."""
        return self.outcome is not Outcome.BLOCK

    @property
    def review(self) -> bool:
        return self.outcome is Outcome.REVIEW


@dataclass(frozen=True, slots=True)
class NewRiskEvent:
    """A decision to record: about ``subject``, for the channel whose order or code it
    concerns (that channel and those above it see the event)."""

    subject: Subject
    outcome: Outcome
    reason: str
    channel_id: int
    product_id: int | None = None
    order_id: int | None = None
    rule_id: int | None = None
    context: Mapping[str, Any] = field(default_factory=dict)


class RiskCheck(Protocol):
    async def assess(self, attempt: OrderAttempt) -> RiskDecision: ...

    async def hit(self, key: str, limit: int, window_seconds: float) -> bool:
        """Count one attempt under ``key`` unless ``limit`` attempts were counted in the
        last ``window_seconds``; whether it was counted (allowed)."""
        ...

    async def full(self, key: str, limit: int, window_seconds: float) -> bool:
        """Whether ``hit`` would refuse now; counts nothing."""
        ...

    async def record(self, event: NewRiskEvent) -> None: ...


class AllowAll:
    """No risk control: nothing is limited and nothing recorded."""

    async def assess(self, attempt: OrderAttempt) -> RiskDecision:
        return RiskDecision()

    async def hit(self, key: str, limit: int, window_seconds: float) -> bool:
        return True

    async def full(self, key: str, limit: int, window_seconds: float) -> bool:
        return False

    async def record(self, event: NewRiskEvent) -> None:
        return None


# --- subjects ---------------------------------------------------------------------------


def normalise(kind: SubjectKind, value: str | None) -> str | None:
    """The form a subject is counted and blocked under; None for no subject.

    IP addresses are compared as addresses (``::FFFF:10.0.0.1`` is ``10.0.0.1``); a
    value that is not one is still a subject, taken as given. Other values are trimmed.
    """
    if value is None:
        return None
    cleaned = value.strip()
    if not cleaned:
        return None
    if kind is SubjectKind.IP:
        try:
            address = ipaddress.ip_address(cleaned)
        except ValueError:
            return cleaned
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return address.compressed
    return cleaned


def subject_of(scope: Scope | BlockKind, attempt: OrderAttempt) -> Subject | None:
    """The attempt's subject a rule of ``scope`` (or a block of that kind) counts."""
    kind = SubjectKind(scope.value)
    given = {
        SubjectKind.IP: attempt.ip,
        SubjectKind.DEVICE: attempt.device_id,
        SubjectKind.BUYER: attempt.account_id,
        SubjectKind.CHANNEL: str(attempt.channel_id),
    }[kind]
    value = normalise(kind, given)
    return Subject(kind, value) if value is not None else None


def applicable(attempt: OrderAttempt, rules: Sequence[Rule]) -> list[tuple[Rule, Subject]]:
    """The rules that count this attempt, each with the subject it counts, in rule order.
    A rule whose subject the attempt does not name (no device id given) does not apply."""
    found = []
    for rule in sorted(rules, key=lambda r: r.id):
        subject = subject_of(rule.scope, attempt)
        if subject is not None:
            found.append((rule, subject))
    return found


def blocked(attempt: OrderAttempt, blocks: Mapping[Subject, str]) -> Subject | None:
    """The attempt's first blocked subject (IP, then device, then buyer), if any."""
    for kind in BlockKind:
        subject = subject_of(kind, attempt)
        if subject is not None and subject in blocks:
            return subject
    return None


def window_key(rule_id: int, subject: Subject) -> str:
    """The Valkey key of a rule's window for one subject. Subjects are the callers' free
    text, so the key holds a digest of them: bounded, and nothing to escape."""
    digest = hashlib.sha256(f"{subject.kind}:{subject.value}".encode()).hexdigest()[:32]
    return f"quanyi:risk:window:{rule_id}:{digest}"


def hit_key(key: str) -> str:
    return "quanyi:risk:hit:" + hashlib.sha256(key.encode()).hexdigest()[:32]


# --- decisions --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    # The rule that decided, and the subject it counted; None for ALLOW.
    rule: Rule | None = None
    subject: Subject | None = None


def verdict(checked: Sequence[tuple[Rule, Subject]], over: Sequence[int]) -> Verdict:
    """What the rules decide, given which of ``checked`` (by index) are over their
    limit: a BLOCK rule over its limit refuses; else a REVIEW rule over its limit holds
    the order; else it is allowed. The first such rule decides."""
    exceeded = [checked[i] for i in sorted(over)]
    for action, outcome in ((Action.BLOCK, Outcome.BLOCK), (Action.REVIEW, Outcome.REVIEW)):
        for rule, subject in exceeded:
            if rule.action is action:
                return Verdict(outcome, rule, subject)
    return Verdict(Outcome.ALLOW)


def refusal(subject: Subject) -> str:
    """Told to a caller refused by a rate rule (the limits themselves stay private)."""
    return f"Too many orders from this {subject.noun}; try again later."


def held(subject: Subject) -> str:
    return f"Held for review: many orders from this {subject.noun}."


def blocked_message(subject: Subject) -> str:
    return f"This {subject.noun} is blocked."


def rule_reason(rule: Rule, subject: Subject) -> str:
    """Recorded with the event: which rule decided, in words."""
    return (
        f"Over {rule.limit} orders per {rule.window_seconds} s from this {subject.noun} "
        f"(rule {rule.id}, {rule.action.value})."
    )


# --- checking what is set ---------------------------------------------------------------


def check_rule(limit: int, window_seconds: int) -> Problem | None:
    if not 1 <= limit <= MAX_LIMIT:
        return Problem("limit", f"Give a limit of 1 to {MAX_LIMIT} orders.")
    if not 1 <= window_seconds <= MAX_WINDOW_SECONDS:
        return Problem(
            "windowSeconds", f"Give a window of 1 to {MAX_WINDOW_SECONDS} seconds (31 days)."
        )
    return None


def clean_block(kind: BlockKind, value: str) -> tuple[Subject | None, Problem | None]:
    """The subject a block names, in the form attempts are compared in."""
    subject_kind = SubjectKind(kind.value)
    cleaned = normalise(subject_kind, value)
    if cleaned is None or len(cleaned) > MAX_SUBJECT:
        return None, Problem("value", f"Give a value of 1 to {MAX_SUBJECT} characters.")
    if subject_kind is SubjectKind.IP:
        try:
            ipaddress.ip_address(cleaned)
        except ValueError:
            return None, Problem("value", "Give an IP address, such as 203.0.113.7.")
    return Subject(subject_kind, cleaned), None


def clean_reason(reason: str | None, field: str = "reason") -> tuple[str, Problem | None]:
    cleaned = (reason or "").strip()
    if not 1 <= len(cleaned) <= MAX_REASON:
        return cleaned, Problem(field, f"Give a reason of 1 to {MAX_REASON} characters.")
    return cleaned, None


def shown_value(value: str) -> str:
    """A subject as an event keeps it: callers' free text, cut to a bounded length."""
    return value[:MAX_SUBJECT]
