"""Migrations against real, empty PostgreSQL databases: idempotent, safe to race, tamper-evident."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from persistence import migrations
from persistence.migrations import MigrationError
from tests.conftest import Servers

FreshDatabase = Callable[[], Awaitable[str]]
# The console script installed beside this interpreter.
QUANYI = str(Path(sys.executable).parent / "quanyi")


@pytest.fixture
async def fresh_database(servers: Servers) -> AsyncIterator[FreshDatabase]:
    """Makes empty databases (not cloned from the migrated template) and drops them after."""
    made: list[str] = []

    async def make() -> str:
        name = f"fresh_{uuid.uuid4().hex[:16]}"
        admin = await asyncpg.connect(servers.dsn("postgres"))
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        made.append(name)
        return servers.dsn(name)

    yield make

    admin = await asyncpg.connect(servers.dsn("postgres"))
    try:
        for name in made:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _applied_state(dsn: str) -> tuple[list[tuple[int, str, str]], int]:
    """The rows of schema_migrations in order, and how many root channels exist."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT version, name, checksum FROM schema_migrations ORDER BY version"
        )
        roots = await conn.fetchval("SELECT count(*) FROM channels WHERE parent_id IS NULL")
    finally:
        await conn.close()
    return [(r["version"], r["name"], r["checksum"]) for r in rows], roots


def _expected_rows() -> list[tuple[int, str, str]]:
    return [(m.version, m.name, m.checksum) for m in migrations.available()]


async def test_migrate_twice_applies_each_file_once(fresh_database: FreshDatabase) -> None:
    # Given an empty database and the migration files shipped in the package
    dsn = await fresh_database()
    files = migrations.available()
    assert files, "the package ships at least one migration"

    # When it is migrated twice
    first = await migrations.migrate(dsn)
    second = await migrations.migrate(dsn)

    # Then the first call applies every file in order and the second applies nothing
    assert [m.version for m in first] == [m.version for m in files]
    assert second == []

    # And schema_migrations holds one row per file, with the file's checksum
    rows, roots = await _applied_state(dsn)
    assert rows == _expected_rows()
    assert roots == 1


def _migrate_command(dsn: str, data_dir: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env |= {"DATABASE_URL": dsn, "QUANYI_DATA_DIR": str(data_dir), "QUANYI_LOG_LEVEL": "WARNING"}
    return subprocess.Popen(
        [QUANYI, "migrate"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_two_concurrent_migrate_commands_apply_one_copy(
    fresh_database: FreshDatabase, tmp_path: Path
) -> None:
    # Given an empty database
    dsn = await fresh_database()

    # When two `quanyi migrate` processes start at the same moment
    procs = [_migrate_command(dsn, tmp_path / f"data{i}") for i in range(2)]
    try:
        outputs = [await asyncio.to_thread(p.communicate, timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    # Then both succeed
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, f"stdout={out!r} stderr={err!r}"
    # And between them every file was applied exactly once
    applied_lines = [
        line for out, _ in outputs for line in out.splitlines() if line.startswith("applied ")
    ]
    expected = [f"applied {m.version:04d}_{m.name}" for m in migrations.available()]
    assert sorted(applied_lines) == sorted(expected)
    # And the database holds one applied copy: one row per version, one root channel
    rows, roots = await _applied_state(dsn)
    assert rows == _expected_rows()
    assert roots == 1


async def test_concurrent_in_process_migrations_apply_one_copy(
    fresh_database: FreshDatabase,
) -> None:
    # Given an empty database
    dsn = await fresh_database()

    # When five migrators run at once in one process
    results = await asyncio.gather(*(migrations.migrate(dsn) for _ in range(5)))

    # Then exactly one of them applied the files and the others found nothing to do
    applied = [r for r in results if r]
    assert len(applied) == 1
    assert [m.version for m in applied[0]] == [m.version for m in migrations.available()]
    # And the database holds one applied copy
    rows, roots = await _applied_state(dsn)
    assert rows == _expected_rows()
    assert roots == 1


async def test_changed_migration_is_refused(fresh_database: FreshDatabase) -> None:
    # Given a database where migration 1 was recorded with another checksum
    # (as if its file had been edited after it was applied)
    dsn = await fresh_database()
    await migrations.migrate(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("UPDATE schema_migrations SET checksum = $1 WHERE version = 1", "0" * 64)
        tables_before = await conn.fetchval(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        )
    finally:
        await conn.close()

    # When it is migrated again
    # Then migrate refuses, naming the changed file
    first = migrations.available()[0]
    with pytest.raises(MigrationError, match=f"{first.version:04d}_{first.name}"):
        await migrations.migrate(dsn)

    # And nothing else was changed or re-applied
    conn = await asyncpg.connect(dsn)
    try:
        checksum = await conn.fetchval("SELECT checksum FROM schema_migrations WHERE version = 1")
        tables_after = await conn.fetchval(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        )
    finally:
        await conn.close()
    assert checksum == "0" * 64
    assert tables_after == tables_before


async def test_changed_migration_recorded_on_an_empty_database_is_refused(
    fresh_database: FreshDatabase,
) -> None:
    # Given an empty database whose schema_migrations claims version 1 with a wrong checksum
    dsn = await fresh_database()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            """CREATE TABLE schema_migrations (
                 version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        await conn.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES (1, $1, 'bogus')",
            migrations.available()[0].name,
        )
    finally:
        await conn.close()

    # When it is migrated
    # Then migrate raises MigrationError before applying anything
    with pytest.raises(MigrationError, match="changed"):
        await migrations.migrate(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        channels_table = await conn.fetchval("SELECT to_regclass('channels')")
    finally:
        await conn.close()
    assert channels_table is None
