"""PoolActor: the only writer of one pool's code states.

It holds a bounded window of free code ids, refilled from the database in id order, so
its memory does not grow with the pool. Its mailbox serialises every change to the
pool; the database stays the source of truth, and every write is fenced by the epoch
the actor claimed when it started, so a stale actor cannot sell a code twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar, assert_never

import asyncpg
import pykka

from actors.bridge import Reply, resolve_all, run_on_loop
from actors.messages import (
    Batch,
    Changed,
    Commit,
    Committed,
    Freeze,
    NotReserved,
    OutOfStock,
    PoolSnapshot,
    Refresh,
    Release,
    ReleaseExpired,
    Reserve,
    Reserved,
    Sell,
    Snapshot,
    Sold,
    Unfreeze,
    Void,
)
from persistence import code_states
from persistence.code_states import Counts, MoveEvent

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R", Reserve, Sell)


class PoolGone(Exception):
    """The pool does not exist."""


class PoolActor(pykka.ThreadingActor):
    def __init__(
        self,
        pool_id: int,
        db: asyncpg.Pool[Any],
        db_loop: asyncio.AbstractEventLoop,
        loop: asyncio.AbstractEventLoop,
        window_size: int,
        on_change: Callable[[int, int], None],
        on_exit: Callable[[str], None],
    ) -> None:
        super().__init__()
        self.pool_id = pool_id
        # ``db`` lives on ``db_loop``; replies and notices go to the callers' ``loop``.
        self.db = db
        self.db_loop = db_loop
        self.loop = loop
        self.window_size = window_size
        self.on_change = on_change
        self.on_exit = on_exit
        self.window: deque[int] = deque()
        self.in_window: set[int] = set()
        # Taken for this batch but not yet written: still 'available' in the database,
        # so a refill must not bring them back.
        self.taking: set[int] = set()
        self.cursor = 0
        self.epoch = 0
        self.product_id = 0
        self.counts = Counts(0, 0, 0, 0, 0)
        self.start_error: Exception | None = None

    # Lifecycle ---------------------------------------------------------------------

    def on_start(self) -> None:
        # A failure here must still answer the batch waiting in the mailbox, so it is
        # kept and answered in on_receive rather than raised.
        try:
            claim = self._db(code_states.claim(self.db, self.pool_id))
            if claim is None:
                raise PoolGone(self.pool_id)
            self.epoch, self.product_id, self.counts = claim.epoch, claim.product_id, claim.counts
            self._refill()
        except Exception as error:
            log.warning("pool %s could not start: %r", self.pool_id, error)
            self.start_error = error

    def on_stop(self) -> None:
        self.on_exit(self.actor_urn)

    def on_failure(self, *exc_info: object) -> None:
        self.on_exit(self.actor_urn)

    # Dispatch ------------------------------------------------------------------------

    def on_receive(self, message: Any) -> None:
        if not isinstance(message, Batch):
            raise TypeError(f"PoolActor got {type(message).__name__}")
        batch: Batch | None = message
        while batch is not None:
            if self.start_error is not None:
                # Answered but not taken on: the registry hands what waits to a new actor.
                error = self.start_error
                resolve_all(self.loop, [(c.reply, error) for c in batch.commands])
                self.stop()
                return
            before = self.counts
            for answers in self._answers(batch):
                if answers:
                    resolve_all(self.loop, answers)
            if self.counts != before:
                self.on_change(self.pool_id, self.product_id)
            batch = batch.following()

    def _answers(self, batch: Batch) -> Iterator[list[tuple[Reply[Any], Any]]]:
        """The batch's answers in two goes. Reservations and sales are answered as soon as
        they are made, after what frees stock (releases, unfreezes) and before freezes and
        voids: those take longest (thousands of codes a chunk) and only take stock away,
        so no buyer waits for one that came in the same batch."""
        answers: list[tuple[Reply[Any], Any]] = []
        reserves: list[Reserve] = []
        sales: list[Sell] = []
        removals: list[Freeze | Void] = []
        for command in batch.commands:
            match command:
                case Reserve():
                    reserves.append(command)
                case Sell():
                    sales.append(command)
                case Freeze() | Void():
                    removals.append(command)
                case Commit():
                    answers.append((command.reply, self._commit(command)))
                case Release():
                    answers.append((command.reply, self._release(command.ref, None)))
                case ReleaseExpired():
                    answers.append((command.reply, self._release(None, datetime.now(UTC))))
                case Unfreeze():
                    moved = self._move(command.code_ids, None, command.event)
                    answers.append((command.reply, moved))
                case Refresh():
                    self._refresh()
                    answers.append((command.reply, self._snapshot()))
                case Snapshot():
                    answers.append((command.reply, self._snapshot()))
                case _:
                    assert_never(command)
        if reserves:
            answers += self._reserve(reserves, retry=batch.retry)
        if sales:
            answers += self._sell(sales)
        yield answers
        yield [(command.reply, self._remove(command)) for command in removals]

    # Handlers ------------------------------------------------------------------------

    def _reserve(
        self, requests: list[Reserve], *, retry: bool
    ) -> list[tuple[Reply[Any], Reserved | OutOfStock]]:
        answers: list[tuple[Reply[Any], Reserved | OutOfStock]] = []
        if retry:
            # The last actor may have written some of these before it died.
            found = self._db(
                code_states.reserved_for(self.db, self.pool_id, [r.ref for r in requests])
            )
            for request in [r for r in requests if r.ref in found]:
                ids, until = found[request.ref]
                answers.append((request.reply, Reserved(request.ref, tuple(ids), until)))
            requests = [r for r in requests if r.ref not in found]

        now = datetime.now(UTC)
        plans, refused = self._plan_all(requests)
        answers += refused
        planned = [(request, ids, now + request.ttl) for request, ids in plans]
        if not planned:
            return answers

        ids = [i for _, taken, _ in planned for i in taken]
        refs = [r.ref for r, taken, _ in planned for _ in taken]
        until = [u for _, taken, u in planned for _ in taken]
        try:
            moved = self._db(
                code_states.reserve(self.db, self.pool_id, self.epoch, ids, refs, until)
            )
        finally:
            self.taking.clear()
        self.counts = moved.counts
        if len(moved.ids) != len(ids):
            # Only a second writer could cause this; the fence makes it impossible unless
            # the database was changed by hand. Refuse the short requests and reload.
            log.error(
                "pool %s: %d of %d codes were not available",
                self.pool_id,
                len(ids) - len(moved.ids),
                len(ids),
            )
            done = set(moved.ids)
            for request, taken, expires in planned:
                if all(i in done for i in taken):
                    answers.append((request.reply, Reserved(request.ref, tuple(taken), expires)))
                else:
                    self._release(request.ref, None)
                    answers.append((request.reply, OutOfStock(request.quantity, 0)))
            self._reload_window()
            return answers
        answers += [
            (request.reply, Reserved(request.ref, tuple(taken), expires))
            for request, taken, expires in planned
        ]
        return answers

    def _plan(self, request: Reserve | Sell, free: int) -> list[int] | OutOfStock:
        """Codes from the window for one request, or why there are none."""
        if request.quantity > free:
            return OutOfStock(request.quantity, free)
        ids = self._take(request.quantity)
        if len(ids) < request.quantity:
            # The counters promised more than the database has: give back and refuse.
            self.taking.difference_update(ids)
            self._give_back(ids)
            return OutOfStock(request.quantity, len(ids))
        return ids

    def _plan_all(
        self, requests: Sequence[R]
    ) -> tuple[list[tuple[R, list[int]]], list[tuple[Reply[Any], OutOfStock]]]:
        """Codes for each request in turn while stock lasts; the rest are out of stock."""
        planned: list[tuple[R, list[int]]] = []
        refused: list[tuple[Reply[Any], OutOfStock]] = []
        free = self.counts.available
        for request in requests:
            plan = self._plan(request, free)
            if isinstance(plan, OutOfStock):
                if not refused:
                    self._check_still_owner()
                refused.append((request.reply, plan))
                continue
            free -= request.quantity
            planned.append((request, plan))
        return planned, refused

    def _check_still_owner(self) -> None:
        """Before saying "out of stock", make sure the stock we know is the pool's.

        Writes are fenced and fail once another actor (in another process) has claimed
        the pool, but refusing writes nothing: without this check a replaced actor would
        keep refusing stock that its successor has. Raising ends this actor; its batch is
        retried by a new one, which claims the pool and sees the real stock.
        """
        if self._db(code_states.epoch(self.db, self.pool_id)) != self.epoch:
            raise code_states.Fenced

    def _sell(self, requests: list[Sell]) -> list[tuple[Reply[Any], Any]]:
        planned, refused = self._plan_all(requests)
        answers: list[tuple[Reply[Any], Any]] = list(refused)
        if not planned:
            return answers
        try:
            counts, results = self._db(
                code_states.sell(
                    self.db, self.pool_id, self.epoch, [(r.ref, ids, r.work) for r, ids in planned]
                )
            )
        finally:
            self.taking.clear()
        self.counts = counts
        for (request, ids), result in zip(planned, results, strict=True):
            if isinstance(result, BaseException):
                self._give_back(ids)
                answers.append((request.reply, result))
            else:
                answers.append((request.reply, Sold(request.ref, tuple(ids), result)))
        return answers

    def _commit(self, command: Commit) -> Committed | NotReserved:
        moved = self._db(code_states.commit(self.db, self.pool_id, self.epoch, command.ref))
        self.counts = moved.counts
        ids = sorted(moved.ids + list(moved.row["sold_before"]))
        return Committed(command.ref, tuple(ids)) if ids else NotReserved(command.ref)

    def _release(self, ref: str | None, expired_by: datetime | None) -> Changed:
        moved = self._db(code_states.release(self.db, self.pool_id, self.epoch, ref, expired_by))
        self.counts = moved.counts
        self._give_back(moved.ids)
        return Changed(tuple(moved.ids))

    def _remove(self, command: Freeze | Void) -> Changed:
        target = "frozen" if isinstance(command, Freeze) else "voided"
        return self._move(command.code_ids, target, command.event)

    def _move(
        self, code_ids: tuple[int, ...], target: str | None, event: MoveEvent | None
    ) -> Changed:
        sources = {"frozen": ["available", "sold"], "voided": ["available", "frozen", "sold"]}
        moved = self._db(
            code_states.move(
                self.db,
                self.pool_id,
                self.epoch,
                list(code_ids),
                sources[target] if target else ["frozen"],
                target,
                event,
            )
        )
        self.counts = moved.counts
        if target is not None:
            self._forget(moved.ids)
        self._give_back(list(moved.row["now_available"]))
        return Changed(tuple(moved.ids))

    def _refresh(self) -> None:
        counts = self._db(code_states.counts(self.db, self.pool_id))
        if counts is not None:
            self.counts = counts

    def _snapshot(self) -> PoolSnapshot:
        c = self.counts
        return PoolSnapshot(
            self.pool_id,
            self.product_id,
            self.epoch,
            c.available,
            c.reserved,
            c.sold,
            c.frozen,
            c.voided,
            len(self.window),
        )

    # The window of free ids ------------------------------------------------------------

    def _take(self, quantity: int) -> list[int]:
        if len(self.window) < quantity:
            self._refill(quantity)
        taken = [self.window.popleft() for _ in range(min(quantity, len(self.window)))]
        self.in_window.difference_update(taken)
        self.taking.update(taken)
        return taken

    def _refill(self, at_least: int = 0) -> None:
        """Top the window up in id order, wrapping round once for ids freed behind us."""
        target = min(max(self.window_size, at_least), self.counts.available)
        wrapped = False
        while len(self.window) < target:
            need = target - len(self.window)
            ids = self._db(code_states.window(self.db, self.pool_id, self.cursor, need))
            if ids:
                self.cursor = ids[-1]
            fresh = [i for i in ids if i not in self.in_window and i not in self.taking]
            self.window.extend(fresh)
            self.in_window.update(fresh)
            if len(ids) < need:
                if wrapped:
                    return
                wrapped, self.cursor = True, 0

    def _give_back(self, ids: list[int]) -> None:
        """Freed codes go back into the window while it has room; else a refill finds them."""
        room = self.window_size - len(self.window)
        back = [i for i in ids if i not in self.in_window][: max(room, 0)]
        self.window.extendleft(reversed(back))
        self.in_window.update(back)

    def _forget(self, ids: list[int]) -> None:
        gone = self.in_window.intersection(ids)
        if gone:
            self.window = deque(i for i in self.window if i not in gone)
            self.in_window -= gone

    def _reload_window(self) -> None:
        self.window.clear()
        self.in_window.clear()
        self.cursor = 0
        self._refresh()
        self._refill()

    def _db(self, coro: Coroutine[Any, Any, T]) -> T:
        return run_on_loop(self.db_loop, coro)
