"""A loop of its own, in a thread of its own, for the pool actors' database work.

The actors' statements would otherwise run on the server's event loop, where each await
queues behind the request handling of every other client: under load a ten-statement
batch took about 100 ms, most of it waiting for its turn. On a loop that does nothing
else it takes what the database takes.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from persistence.database import create_pool


class DatabaseLoop:
    def __init__(self, dsn: str, size: int) -> None:
        self.dsn = dsn
        self.size = size
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="pool-actors-db", daemon=True
        )
        self.db: Any = None

    async def start(self) -> None:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(create_pool(self.dsn, self.size), self.loop)
        self.db = await asyncio.wrap_future(future)

    async def stop(self) -> None:
        if self.db is not None:
            closing = asyncio.run_coroutine_threadsafe(self.db.close(), self.loop)
            await asyncio.wrap_future(closing)
        self.loop.call_soon_threadsafe(self.loop.stop)
        await asyncio.to_thread(self._thread.join)
        self.loop.close()
