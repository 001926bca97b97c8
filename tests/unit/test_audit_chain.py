"""The audit chain's pure rules: canonical content, links, the verification walk."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest

from domain.audit import (
    GENESIS,
    Break,
    BreakReason,
    Detail,
    Entry,
    Event,
    Walk,
    canonical,
    extend,
    link_hash,
    read_detail,
)
from domain.orders import DeliveryMethod

AT = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
EVENT = Event(
    id=41,
    code_id=7,
    kind="REDEEMED",
    order_id=12,
    channel_id=3,
    actor="api-key:5",
    created_at=AT,
    detail='{"region": "CN-SH", "merchant_id": 9}',
)
CANONICAL = (
    b'{"actor":"api-key:5","channel_id":3,"code_id":7,'
    b'"created_at":"2026-03-01T12:00:00.123456+00:00",'
    b'"detail":{"merchant_id":9,"region":"CN-SH"},"id":41,"kind":"REDEEMED","order_id":12}'
)


def test_the_canonical_content_is_sorted_compact_json_in_utc() -> None:
    assert canonical(EVENT) == CANONICAL


def test_a_link_hashes_the_previous_hash_and_the_content() -> None:
    assert link_hash(GENESIS, EVENT) == hashlib.sha256(bytes(32) + CANONICAL).digest()


def test_the_same_instant_in_another_zone_and_detail_spelt_otherwise_hash_alike() -> None:
    # Given the event as a session in Shanghai time would read it, its detail's keys in
    # another order with other spacing (jsonb's text is not our canonical form)
    shanghai = timezone(timedelta(hours=8))
    same = dataclasses.replace(
        EVENT,
        created_at=AT.astimezone(shanghai),
        detail='{"merchant_id":9,   "region":"CN-SH"}',
    )

    # Then its content and link are the same
    assert canonical(same) == CANONICAL
    assert link_hash(GENESIS, same) == link_hash(GENESIS, EVENT)


def test_no_detail_and_non_ascii_text() -> None:
    event = dataclasses.replace(EVENT, detail=None, actor="门店", order_id=None)
    assert (
        canonical(event)
        == (
            '{"actor":"门店","channel_id":3,"code_id":7,'
            '"created_at":"2026-03-01T12:00:00.123456+00:00",'
            '"detail":null,"id":41,"kind":"REDEEMED","order_id":null}'
        ).encode()
    )


@pytest.mark.parametrize(
    "change",
    [
        {"id": 42},
        {"code_id": 8},
        {"kind": "FROZEN"},
        {"order_id": 13},
        {"order_id": None},
        {"channel_id": 4},
        {"actor": "api-key:6"},
        {"actor": None},
        {"created_at": AT + timedelta(microseconds=1)},
        {"detail": '{"region": "CN-SH", "merchant_id": 10}'},
        {"detail": '{"region": "CN-SH"}'},
        {"detail": None},
    ],
)
def test_any_change_of_the_event_changes_its_link(change: dict[str, object]) -> None:
    changed = dataclasses.replace(EVENT, **change)  # type: ignore[arg-type]
    assert link_hash(GENESIS, changed) != link_hash(GENESIS, EVENT)


def test_the_previous_hash_is_part_of_the_link() -> None:
    assert link_hash(b"\x01" * 32, EVENT) != link_hash(GENESIS, EVENT)


def test_a_time_without_a_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        canonical(dataclasses.replace(EVENT, created_at=AT.replace(tzinfo=None)))


def _events(n: int) -> list[Event]:
    return [dataclasses.replace(EVENT, id=100 + i, code_id=i) for i in range(n)]


def _entries(events: list[Event]) -> list[Entry]:
    return [
        Entry(link.seq, link.event_id, link.prev_hash, link.hash, event)
        for link, event in zip(extend(0, GENESIS, events), events, strict=True)
    ]


def test_extend_numbers_and_links_the_events_after_the_head() -> None:
    events = _events(3)
    first = extend(0, GENESIS, events[:1])
    rest = extend(first[-1].seq, first[-1].hash, events[1:])

    assert [(x.seq, x.event_id) for x in first + rest] == [(1, 100), (2, 101), (3, 102)]
    assert first + rest == extend(0, GENESIS, events)
    assert rest[0].prev_hash == first[0].hash == link_hash(GENESIS, events[0])
    assert rest[1].hash == link_hash(rest[0].hash, events[2])


def test_an_intact_chain_walks_in_pages() -> None:
    # Given five entries fed in pages of two
    entries = _entries(_events(5))
    walk = Walk()

    for start in range(0, 5, 2):
        walk.feed(entries[start : start + 2])
    walk.finish(5)

    # Then all are checked and nothing is broken
    assert (walk.checked, walk.broken, walk.seq, walk.hash) == (5, None, 5, entries[-1].hash)


def _walked(entries: list[Entry], through: int = 5) -> Walk:
    walk = Walk()
    walk.feed(entries)
    walk.finish(through)
    return walk


def test_a_changed_event_is_the_first_break() -> None:
    events = _events(5)
    entries = _entries(events)
    entries[2] = dataclasses.replace(entries[2], event=dataclasses.replace(events[2], actor="x"))

    walk = _walked(entries)

    assert walk.checked == 2
    assert walk.broken == Break(BreakReason.EVENT_CHANGED, 3, 102, 2)


def test_a_missing_event_is_a_break() -> None:
    entries = _entries(_events(5))
    entries[3] = dataclasses.replace(entries[3], event=None)

    assert _walked(entries).broken == Break(BreakReason.EVENT_MISSING, 4, 103, None)


def test_a_missing_entry_is_a_break_at_its_place() -> None:
    entries = _entries(_events(5))
    del entries[1]

    walk = _walked(entries)

    assert (walk.checked, walk.broken) == (1, Break(BreakReason.ENTRY_MISSING, 2, None, None))


def test_a_missing_first_entry_and_missing_last_entries_are_breaks() -> None:
    entries = _entries(_events(5))

    assert _walked(entries[1:]).broken == Break(BreakReason.ENTRY_MISSING, 1, None, None)
    assert _walked(entries[:3]).broken == Break(BreakReason.ENTRY_MISSING, 4, None, None)


def test_an_entry_that_does_not_follow_the_one_before_is_a_break() -> None:
    # Given an entry whose hash was recomputed over a changed event, so that it matches
    # its event again, but the next entry still names the old hash
    events = _events(5)
    entries = _entries(events)
    tampered = dataclasses.replace(events[1], kind="VOIDED")
    entries[1] = dataclasses.replace(
        entries[1], event=tampered, hash=link_hash(entries[0].hash, tampered)
    )

    walk = _walked(entries)

    assert (walk.checked, walk.broken) == (2, Break(BreakReason.LINK_BROKEN, 3, 102, 2))


def test_the_walk_stops_at_the_first_break() -> None:
    entries = _entries(_events(5))
    walk = Walk()
    walk.feed([entries[0], entries[2]])
    walk.feed(entries[3:])

    assert (walk.checked, walk.broken) == (1, Break(BreakReason.ENTRY_MISSING, 2, None, None))


@pytest.mark.parametrize(
    ("kind", "actor", "detail", "expected"),
    [
        (
            "REDEEMED",
            "api-key:5",
            '{"merchant_id": 9, "region": "CN-SH", "uses_left": 2}',
            Detail(None, None, 9, "CN-SH", 2),
        ),
        ("REDEEMED", "api-key:5", '{"merchant_id": "9"}', Detail(None, None, None, None, None)),
        (
            "FROZEN",
            "user:1",
            '{"reason": "resold outside CN-GD"}',
            Detail(None, "resold outside CN-GD", None, None, None),
        ),
        (
            "DELIVERED",
            "outbox:WEBHOOK",
            None,
            Detail(DeliveryMethod.WEBHOOK, None, None, None, None),
        ),
        ("DELIVERED", "api-key:5", None, Detail(DeliveryMethod.API, None, None, None, None)),
        (
            "DELIVERED",
            "outbox:EMAIL",
            '{"method": "SMS"}',
            Detail(DeliveryMethod.SMS, None, None, None, None),
        ),
        ("DELIVERED", "outbox:PIGEON", None, Detail(None, None, None, None, None)),
        ("SOLD", "api-key:5", None, Detail(None, None, None, None, None)),
        ("SOLD", "api-key:5", "[1, 2]", Detail(None, None, None, None, None)),
    ],
)
def test_what_a_detail_tells_a_person(
    kind: str, actor: str, detail: str | None, expected: Detail
) -> None:
    event = dataclasses.replace(EVENT, kind=kind, actor=actor, detail=detail)
    assert read_detail(event) == expected
