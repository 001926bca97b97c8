"""Background passes that run every few seconds for as long as the server does."""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger(__name__)


class Periodic:
    """Runs ``run_once`` every ``interval`` seconds (never when it is 0) in a task of its
    own until ``stop``. A pass that returns ``batch`` found a full batch of work and is run
    again at once. A failing pass is logged and the next one runs as usual: the work waits
    in the database."""

    name = "periodic"
    batch: int | None = None

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> int:
        raise NotImplementedError

    async def start(self) -> None:
        if self.interval > 0:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                while await self.run_once() == self.batch:
                    pass
            except Exception:
                log.exception("%s pass failed", self.name)
