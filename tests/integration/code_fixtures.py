"""Codes for import and rotation tests: marked plaintexts, a pool, a connection pool."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from persistence.keyring import Keyring

Rows = list[tuple[str, str | None, datetime | None]]
LATER = datetime.now(UTC) + timedelta(days=365)
# Every plaintext made here starts with one of these, so a scan for them finds any copy.
CODE_MARK = "QYPLAIN-"
PASSWORD_MARK = "QYPASS-"


def new_code() -> str:
    return CODE_MARK + secrets.token_hex(10).upper()


def new_password() -> str:
    return PASSWORD_MARK + secrets.token_hex(6)


def fresh_rows(n: int) -> Rows:
    return [(new_code(), new_password(), LATER) for _ in range(n)]


@pytest.fixture
async def pg(database_url: str) -> AsyncIterator[asyncpg.Pool[Any]]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=12)
    assert pool is not None
    yield pool
    await pool.close()


@pytest.fixture
async def keyring(pg: asyncpg.Pool[Any]) -> Keyring:
    return await Keyring.load(pg, os.urandom(32))


async def make_pool(db: asyncpg.Connection[Any], name: str = "pool") -> int:
    product_id = await db.fetchval(
        """INSERT INTO products (name, category, face_value, cost_price, base_price, fulfilment)
           VALUES ('Game card 100', 'GAME', 100, 90, 95, 'POOL') RETURNING id"""
    )
    pool_id: int = await db.fetchval(
        "INSERT INTO pools (product_id, name) VALUES ($1, $2) RETURNING id", product_id, name
    )
    return pool_id
