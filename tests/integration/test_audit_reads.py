"""What the audit chainer reads: the newest events, never the whole log.

A pass runs twice a second for the life of the server, so its cost must not grow with
the history. Work is measured in buffers touched, which a plan decides, not the clock."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest

from persistence.queries import queries
from tests.integration.pool_fixtures import make_pool

Q = queries("audit")
HISTORY = 20_000


async def buffers_touched(db: asyncpg.Connection[Any], after_id: int) -> int:
    # EXECUTE takes no bind parameters; the id is an int of ours.
    plan = await db.fetchval(
        f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE unchained({int(after_id)}, 500)"
    )
    top = json.loads(plan)[0]["Plan"]
    return int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"])


@pytest.mark.parametrize("plan_cache_mode", ["force_generic_plan", "force_custom_plan"])
@pytest.mark.parametrize("analyzed", [True, False], ids=["analyzed", "no-statistics"])
async def test_a_pass_reads_only_the_events_above_the_horizon(
    db: asyncpg.Connection[Any], plan_cache_mode: str, analyzed: bool
) -> None:
    # Given a long history, all chained but its last 100 events
    await make_pool(db, HISTORY)
    async with db.transaction():
        # Placeholder rows: foreign-key checks one by one would only slow the setup.
        await db.execute("SET LOCAL session_replication_role = replica")
        await db.execute("INSERT INTO code_events (code_id, kind) SELECT id, 'IMPORTED' FROM codes")
        await db.execute(
            "INSERT INTO audit_chain (seq, event_id, prev_hash, hash)"
            " SELECT id, id, sha256(''::bytea), sha256(''::bytea) FROM code_events"
            " WHERE id <= $1",
            HISTORY - 100,
        )
    if analyzed:
        await db.execute("ANALYZE code_events, audit_chain")
    await db.execute(f"SET plan_cache_mode = {plan_cache_mode}")
    await db.execute("PREPARE unchained(bigint, integer) AS " + Q["unchained"])

    # When the chainer searches above a horizon 200 events back
    found = await db.fetch(f"EXECUTE unchained({HISTORY - 200}, 500)")

    # Then it finds the 100 unchained events, touching a few pages, not the history's
    assert [r["id"] for r in found] == list(range(HISTORY - 99, HISTORY + 1))
    assert await buffers_touched(db, HISTORY - 200) < 100
