"""Risk control on the order path: blocked subjects, then rate rules in Valkey.

The active rules and blocks are read once per change (``services.reads``: every
mutation drops them), so an order with no rule or block that applies costs a dictionary
lookup and writes nothing. Otherwise one Lua script checks and counts every applicable
rule's sliding window at once: Valkey runs a script alone, so concurrent attempts can
never all see room under a limit, and an attempt a BLOCK rule refuses is counted in no
window, so one rule's refusals never use up another rule's budget. An attempt a REVIEW
rule holds is counted by the rules it was within, not by those it exceeded.

Each decision about an attempt that a rule or block applied to is written as a risk
event before the caller hears it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import asyncpg
from redis.asyncio import Redis

from domain.risk import (
    Action,
    NewRiskEvent,
    OrderAttempt,
    Outcome,
    RiskDecision,
    Rule,
    Subject,
    applicable,
    blocked,
    blocked_message,
    held,
    hit_key,
    refusal,
    rule_reason,
    shown_value,
    verdict,
    window_key,
)
from persistence import risk
from persistence.read_cache import ReadCache

log = logging.getLogger(__name__)

ALLOWED = RiskDecision()
# Scripts in flight at once from this process. The Valkey client's pool is shared (pub/sub,
# pool leases) and refuses a connection beyond its size instead of waiting for one, so a
# burst of orders must queue here rather than fail there; a script takes well under 1 ms.
VALKEY_CALLS = 16
WITHIN = "Within every rule that applies."
_CONFIG = ("risk-config",)

# KEYS: one sliding window (a sorted set of attempt times) per rule. ARGV[1]: a member
# naming this attempt; then per key: the limit, the window in ms, and "1" when going over
# it refuses the attempt. Valkey's clock is the one clock every process shares. Returns
# the (1-based) indexes of the windows that were full; the attempt is added to the others,
# unless one of the full ones refuses it.
_WINDOWS = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local over = {}
local refused = false
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - tonumber(ARGV[i * 3]))
  if redis.call('ZCARD', key) >= tonumber(ARGV[i * 3 - 1]) then
    over[#over + 1] = i
    if ARGV[i * 3 + 1] == '1' then
      refused = true
    end
  end
end
if not refused then
  local next_over = 1
  for i, key in ipairs(KEYS) do
    if over[next_over] == i then
      next_over = next_over + 1
    else
      redis.call('ZADD', key, now, ARGV[1])
      redis.call('PEXPIRE', key, ARGV[i * 3])
    end
  end
end
return over
"""


# KEYS[1]: one sliding window; ARGV: its limit and its length in ms. Whether it is full;
# it counts nothing.
_FULL = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 1
end
return 0
"""


@dataclass(frozen=True, slots=True)
class _Config:
    rules: tuple[Rule, ...]
    # Blocked subjects, with the reason each was blocked for.
    blocks: Mapping[Subject, str]


class RiskControl:
    """``RiskCheck`` for the server: rules and blocks from the database, windows in Valkey."""

    def __init__(self, db: asyncpg.Pool[Any], redis: Redis, reads: ReadCache) -> None:
        self.db = db
        self.reads = reads
        self._script = redis.register_script(_WINDOWS)
        self._full = redis.register_script(_FULL)
        self._calls = asyncio.Semaphore(VALKEY_CALLS)

    async def assess(self, attempt: OrderAttempt) -> RiskDecision:
        config = await self.reads.load(_CONFIG, self._read_config)
        if not config.rules and not config.blocks:
            return ALLOWED
        context: dict[str, Any] = {
            "quantity": attempt.quantity,
            "ip": _shown(attempt.ip),
            "deviceId": _shown(attempt.device_id),
            "accountId": _shown(attempt.account_id),
        }
        subject = blocked(attempt, config.blocks)
        if subject is not None:
            reason = f"Blocked: {config.blocks[subject]}"
            event_id = await self._record(_event(attempt, subject, Outcome.BLOCK, reason, context))
            return RiskDecision(Outcome.BLOCK, blocked_message(subject), None, event_id)

        checked = applicable(attempt, config.rules)
        if not checked:
            return ALLOWED
        over = await self._count(checked)
        decided = verdict(checked, over)
        context["rules"] = [rule.id for rule, _ in checked]
        context["over"] = [checked[i][0].id for i in over]
        if decided.rule is None or decided.subject is None:
            event = _event(attempt, checked[0][1], Outcome.ALLOW, WITHIN, context)
            return RiskDecision(Outcome.ALLOW, None, None, await self._record(event))
        reason = rule_reason(decided.rule, decided.subject)
        event = _event(attempt, decided.subject, decided.outcome, reason, context, decided.rule.id)
        told = (refusal if decided.outcome is Outcome.BLOCK else held)(decided.subject)
        return RiskDecision(decided.outcome, told, decided.rule.id, await self._record(event))

    async def hit(self, key: str, limit: int, window_seconds: float) -> bool:
        """Count one attempt under ``key`` unless ``limit`` attempts were counted in the
        last ``window_seconds``; whether it was counted (allowed). Atomic: of any number
        of concurrent hits, at most ``limit`` per window are allowed. Refused hits are not
        counted, so a steady caller gets ``limit`` attempts per window, never fewer."""
        if limit < 1 or window_seconds <= 0:
            raise ValueError("give a limit of at least 1 and a window of more than 0 s")
        window_ms = max(1, round(window_seconds * 1000))
        return not await self._windows([hit_key(key)], [secrets.token_hex(8), limit, window_ms, 1])

    async def full(self, key: str, limit: int, window_seconds: float) -> bool:
        """Whether ``hit`` would refuse now; counts nothing."""
        window_ms = max(1, round(window_seconds * 1000))
        async with self._calls:
            answer = await self._full(keys=[hit_key(key)], args=[limit, window_ms])
        return bool(answer)

    async def record(self, event: NewRiskEvent) -> None:
        """Write ``event`` (a decision taken elsewhere: a redemption refused, say)."""
        await self._record(event)

    async def _record(self, event: NewRiskEvent) -> int:
        # Subjects are callers' free text: an event keeps a bounded part of them.
        subject = Subject(event.subject.kind, shown_value(event.subject.value))
        return await risk.insert_event(self.db, replace(event, subject=subject))

    async def _count(self, checked: Sequence[tuple[Rule, Subject]]) -> list[int]:
        """Which windows (by index into ``checked``) were full; see ``_WINDOWS``."""
        args: list[str | int] = [secrets.token_hex(8)]
        for rule, _ in checked:
            args += [rule.limit, rule.window_seconds * 1000, int(rule.action is Action.BLOCK)]
        keys = [window_key(rule.id, subject) for rule, subject in checked]
        return [int(i) - 1 for i in await self._windows(keys, args)]

    async def _windows(self, keys: list[str], args: list[str | int]) -> list[int]:
        async with self._calls:
            over: list[int] = await self._script(keys=keys, args=args)
        return over

    async def _read_config(self) -> _Config:
        rules, blocks = await asyncio.gather(
            risk.active_rules(self.db), risk.active_blocks(self.db)
        )
        return _Config(tuple(rules), {b.subject: b.reason for b in blocks})


def _event(
    attempt: OrderAttempt,
    subject: Subject,
    outcome: Outcome,
    reason: str,
    context: dict[str, Any],
    rule_id: int | None = None,
) -> NewRiskEvent:
    return NewRiskEvent(
        subject,
        outcome,
        reason,
        attempt.channel_id,
        attempt.product_id,
        rule_id=rule_id,
        context=context,
    )


def _shown(value: str | None) -> str | None:
    return shown_value(value) if value is not None else None
