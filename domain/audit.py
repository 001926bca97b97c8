"""The hash chain over code events: canonical content, links and their verification.

Each chain entry commits to one event and to the entry before it:
``hash = SHA-256(prev_hash || canonical(event))``, starting from 32 zero bytes. Changing
an event's row changes its recomputed hash; removing an entry leaves a gap in ``seq``;
re-linking entries breaks ``prev_hash``. What a chain cannot show by itself is the removal
of its newest entries; anchoring the head outside the database would.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from domain.access import Principal, Role
from domain.orders import DeliveryMethod

GENESIS = bytes(32)
# One encoder for every event: json.dumps with options builds a new one per call.
_CANONICAL_JSON = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)

# Who may walk the chain: every platform role but the merchants' verifiers.
AUDITORS = frozenset({Role.OWNER, Role.OPERATOR, Role.FINANCE})


def may_verify(viewer: Principal) -> bool:
    return viewer.is_platform and viewer.role in AUDITORS


def may_trace(viewer: Principal) -> bool:
    """Verifiers redeem codes; the life of a code is for the channels that sell it."""
    return viewer.role is not Role.VERIFIER


@dataclass(frozen=True, slots=True)
class Event:
    """A code event as stored. ``detail`` is the JSON text of the jsonb column."""

    id: int
    code_id: int
    kind: str
    order_id: int | None
    channel_id: int | None
    actor: str | None
    created_at: datetime
    detail: str | None


def canonical(event: Event) -> bytes:
    """The event's content as hashed: one JSON object with sorted keys, no whitespace,
    UTF-8, the time in UTC with microseconds (PostgreSQL's precision), and ``detail``
    parsed and written again, so that how the jsonb text is spaced or ordered never
    matters (numbers compare as JSON numbers: 1.10 and 1.1 are one value)."""
    if event.created_at.tzinfo is None:
        raise ValueError("an event's time must carry its time zone")
    content = {
        "id": event.id,
        "code_id": event.code_id,
        "kind": event.kind,
        "order_id": event.order_id,
        "channel_id": event.channel_id,
        "actor": event.actor,
        "created_at": event.created_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "detail": None if event.detail is None else json.loads(event.detail),
    }
    return _CANONICAL_JSON.encode(content).encode()


def link_hash(prev_hash: bytes, event: Event) -> bytes:
    return hashlib.sha256(prev_hash + canonical(event)).digest()


@dataclass(frozen=True, slots=True)
class Link:
    seq: int
    event_id: int
    prev_hash: bytes
    hash: bytes


def extend(head_seq: int, head_hash: bytes, events: Iterable[Event]) -> list[Link]:
    """The entries that chain ``events``, in the order given, after the head."""
    links = []
    for event in events:
        digest = link_hash(head_hash, event)
        head_seq += 1
        links.append(Link(head_seq, event.id, head_hash, digest))
        head_hash = digest
    return links


class BreakReason(enum.StrEnum):
    # No entry with this seq: an entry was deleted.
    ENTRY_MISSING = "ENTRY_MISSING"
    # The entry's prev_hash is not the previous entry's hash: entries were changed.
    LINK_BROKEN = "LINK_BROKEN"
    # The entry's event is gone.
    EVENT_MISSING = "EVENT_MISSING"
    # The event's content no longer hashes to the entry's hash: the event was changed.
    EVENT_CHANGED = "EVENT_CHANGED"
    # An event older than the grace period has no entry: the chain does not protect it.
    UNCHAINED = "UNCHAINED"


@dataclass(frozen=True, slots=True)
class Entry:
    """A chain entry and its event as it is now (None when the event is gone)."""

    seq: int
    event_id: int
    prev_hash: bytes
    hash: bytes
    event: Event | None


@dataclass(frozen=True, slots=True)
class Break:
    reason: BreakReason
    seq: int | None
    event_id: int | None
    code_id: int | None


@dataclass
class Walk:
    """A verification walk, fed the entries in seq order page by page; it stops at the
    first break. ``checked`` counts the entries found intact."""

    seq: int = 0
    hash: bytes = GENESIS
    checked: int = 0
    broken: Break | None = None

    def feed(self, entries: Iterable[Entry]) -> None:
        for entry in entries:
            if self.broken is not None:
                return
            self.broken = self._check(entry)
            if self.broken is None:
                self.seq, self.hash = entry.seq, entry.hash
                self.checked += 1

    def finish(self, through_seq: int) -> None:
        """The walk ends at ``through_seq``: entries missing before it are a break."""
        if self.broken is None and self.seq < through_seq:
            self.broken = Break(BreakReason.ENTRY_MISSING, self.seq + 1, None, None)

    def _check(self, entry: Entry) -> Break | None:
        code_id = entry.event.code_id if entry.event is not None else None
        if entry.seq != self.seq + 1:
            return Break(BreakReason.ENTRY_MISSING, self.seq + 1, None, None)
        if entry.prev_hash != self.hash:
            return Break(BreakReason.LINK_BROKEN, entry.seq, entry.event_id, code_id)
        if entry.event is None:
            return Break(BreakReason.EVENT_MISSING, entry.seq, entry.event_id, None)
        if link_hash(self.hash, entry.event) != entry.hash:
            return Break(BreakReason.EVENT_CHANGED, entry.seq, entry.event_id, code_id)
        return None


class EventKind(enum.StrEnum):
    IMPORTED = "IMPORTED"
    GENERATED = "GENERATED"
    SUPPLIED = "SUPPLIED"
    RESERVED = "RESERVED"
    SOLD = "SOLD"
    DELIVERED = "DELIVERED"
    REVEALED = "REVEALED"
    REDEEMED = "REDEEMED"
    FROZEN = "FROZEN"
    UNFROZEN = "UNFROZEN"
    VOIDED = "VOIDED"
    RELEASED = "RELEASED"


_METHODS = {m.value: m for m in DeliveryMethod}


@dataclass(frozen=True, slots=True)
class Detail:
    """What an event's detail tells a person."""

    method: DeliveryMethod | None
    reason: str | None
    merchant_id: int | None
    region: str | None
    uses_left: int | None


def read_detail(event: Event) -> Detail:
    """Where a redemption happened and the uses it left, the reason of a freeze or void,
    and how a delivery went out: the detail's ``method`` when it names one; DELIVERED
    events written before details existed name it in their actor (``outbox:<METHOD>``),
    and the others are the codes in placeOrder's answer (API)."""
    parsed = json.loads(event.detail) if event.detail is not None else None
    detail = parsed if isinstance(parsed, dict) else {}
    reason, region = detail.get("reason"), detail.get("region")
    merchant, uses_left = detail.get("merchant_id"), detail.get("uses_left")
    method = None
    if event.kind == EventKind.DELIVERED:
        named = detail.get("method")
        if not isinstance(named, str):
            actor = event.actor or ""
            named = actor.removeprefix("outbox:") if actor.startswith("outbox:") else "API"
        method = _METHODS.get(named)
    return Detail(
        method=method,
        reason=reason if isinstance(reason, str) else None,
        merchant_id=merchant if type(merchant) is int else None,
        region=region if isinstance(region, str) else None,
        uses_left=uses_left if type(uses_left) is int else None,
    )


@dataclass(frozen=True, slots=True)
class Verification:
    checked: int
    broken: Break | None
    # Events with no entry yet, new ones included: how far the chainer is behind.
    unchained: int

    @property
    def ok(self) -> bool:
        return self.broken is None
