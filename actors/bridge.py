"""Between the asyncio loop and actor threads.

Callers on the loop never block on an actor: they hand it a ``Reply`` (an asyncio future
and its loop) and await the future. The actor resolves many replies with one
``call_soon_threadsafe``. The other way, an actor runs a coroutine on the loop (where
the asyncpg pool lives) and waits in its own thread for the result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

DB_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True, eq=False)
class Reply(Generic[T]):
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[T]

    @classmethod
    def new(cls) -> Reply[T]:
        loop = asyncio.get_running_loop()
        return cls(loop, loop.create_future())


def resolve_all(
    loop: asyncio.AbstractEventLoop,
    answers: Sequence[tuple[Reply[Any], Any]],
    then: Callable[[], None] | None = None,
) -> None:
    """From an actor thread: answer every reply of a batch with one loop wake-up."""
    loop.call_soon_threadsafe(_resolve, answers, then)


def _resolve(answers: Sequence[tuple[Reply[Any], Any]], then: Callable[[], None] | None) -> None:
    for reply, value in answers:
        if reply.future.done():
            continue
        if isinstance(value, BaseException):
            reply.future.set_exception(value)
        else:
            reply.future.set_result(value)
    if then is not None:
        then()


def run_on_loop(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """From an actor thread: run ``coro`` on the loop and wait for it here."""
    return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=DB_TIMEOUT)
