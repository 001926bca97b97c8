"""The asyncpg connection pool."""

from __future__ import annotations

from typing import Any

import asyncpg


async def _keep_session(conn: asyncpg.Connection[Any]) -> None:
    """Release a connection as it is.

    asyncpg's default reset sends ``RESET ALL`` and friends on every release, a round trip
    per request, and undoes the UTC time zone. Our queries leave no session state behind:
    locks are transaction-scoped (``pg_advisory_xact_lock``) and nothing LISTENs.
    """


async def create_pool(dsn: str, size: int) -> asyncpg.Pool[Any]:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=size,
        reset=_keep_session,
        server_settings={"timezone": "UTC"},
        command_timeout=30,
    )
    assert pool is not None
    return pool
