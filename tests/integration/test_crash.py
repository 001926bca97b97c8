"""Crash safety: `kill -9` of the server in the middle of a load of orders.

The real `quanyi serve` runs with its embedded PostgreSQL and Valkey in a short data
directory. SIGKILL gives the server no chance to clean up: its PostgreSQL keeps running
(a process of its own) and aborts the transactions of the dropped connections; the
restarted server adopts that PostgreSQL and replaces the orphaned Valkey (pidfile). Then
the database must show that nothing was half done.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from domain.access import Role
from domain.credentials import format_api_key, new_api_key_secret
from persistence import api_keys, channels
from persistence.embedded import EmbeddedPostgres
from tests.conftest import http_client
from tests.integration.test_process_lifecycle import (
    Running,
    _postmaster_pid,
    data_dir,
    serving,
)

__all__ = ["data_dir"]  # the fixture, imported for this module's tests

pytestmark = pytest.mark.slow

CODES = 3000
PRICE = Decimal("2.00")
TOP_UP = Decimal("100000.00")
CLIENTS = 32
LOAD_BEFORE_KILL = 2.0

POOL_COUNTERS_DIFFER = """
SELECT count(*) FROM pools p
WHERE (p.available, p.reserved, p.sold, p.frozen, p.voided) <> (
    SELECT count(*) FILTER (WHERE status = 'available'),
           count(*) FILTER (WHERE status = 'reserved'),
           count(*) FILTER (WHERE status = 'sold'),
           count(*) FILTER (WHERE status = 'frozen'),
           count(*) FILTER (WHERE status = 'voided')
    FROM codes c WHERE c.pool_id = p.id)
"""

PLACE = """
mutation($input: PlaceOrderInput!) {
  placeOrder(input: $input) {
    order { id status } codes { id code } userErrors { code message }
  }
}
"""


async def _platform_key(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        root = await channels.root(conn)
        secret, secret_hash = new_api_key_secret()
        key = await api_keys.insert(conn, root.id, "crash test key", Role.OWNER, secret_hash)
        return format_api_key(key.id, secret)
    finally:
        await conn.close()


def _payload(running: Running, query: str, variables: dict[str, Any], token: str) -> Any:
    payload = next(iter(running.gql(query, variables, token).values()))
    assert not payload.get("userErrors"), payload
    return payload


def _seed(running: Running, platform: str) -> tuple[str, str]:
    """An agent with a key and money, and a product with a pool of CODES codes."""
    agent = _payload(
        running,
        "mutation($i: CreateChannelInput!) { createChannel(input: $i) {"
        " channel { id } userErrors { code } } }",
        {"i": {"name": "agent"}},
        platform,
    )["channel"]["id"]
    key = _payload(
        running,
        "mutation($i: IssueApiKeyInput!) { issueApiKey(input: $i) { secret userErrors { code } } }",
        {"i": {"channelId": agent, "name": "agent key", "role": "OWNER"}},
        platform,
    )["secret"]
    product = _payload(
        running,
        "mutation($i: CreateProductInput!) { createProduct(input: $i) {"
        " product { id } userErrors { code } } }",
        {
            "i": {
                "name": "Crash card",
                "category": "GAME",
                "faceValue": str(PRICE),
                "costPrice": "1.00",
                "basePrice": str(PRICE),
                "fulfilment": "POOL",
            }
        },
        platform,
    )["product"]["id"]
    pool = _payload(
        running,
        "mutation($i: CreatePoolInput!) { createPool(input: $i) {"
        " pool { id } userErrors { code } } }",
        {"i": {"productId": product, "name": "main"}},
        platform,
    )["pool"]["id"]
    imported = _payload(
        running,
        "mutation($i: ImportCodesInput!) { importCodes(input: $i) {"
        " imported userErrors { code } } }",
        {"i": {"poolId": pool, "codes": [{"code": f"CRASH-{i:07d}"} for i in range(CODES)]}},
        platform,
    )
    assert imported["imported"] == CODES
    _payload(
        running,
        "mutation($i: TopUpBalanceInput!) { topUpBalance(input: $i) { userErrors { code } } }",
        {"i": {"channelId": agent, "amount": str(TOP_UP), "reference": "crash-seed"}},
        platform,
    )
    return key, product


def _order(product: str, key: str) -> dict[str, Any]:
    return {
        "query": PLACE,
        "variables": {"input": {"idempotencyKey": key, "productId": product, "quantity": 1}},
    }


async def _load_then_kill(
    running: Running, token: str, product: str
) -> tuple[dict[str, str], set[str]]:
    """Orders from CLIENTS clients until the server is killed mid-load.

    Returns what the clients saw PAID (key -> code) and the keys whose answer was lost.
    """
    paid: dict[str, str] = {}
    lost: set[str] = set()
    stop = asyncio.Event()
    headers = {"Authorization": f"Bearer {token}"}

    async def client(n: int, http: httpx.AsyncClient) -> None:
        i = 0
        while not stop.is_set():
            key = f"crash-{n}-{i}"
            i += 1
            try:
                response = await http.post(running.url + "/graphql", json=_order(product, key))
                body = response.json()
            except (httpx.HTTPError, ValueError):
                lost.add(key)
                return
            placed = body["data"]["placeOrder"]
            assert not placed["userErrors"], placed
            assert placed["order"]["status"] == "PAID"
            paid[key] = placed["codes"][0]["code"]

    async with http_client(timeout=10, headers=headers) as http:
        tasks = [asyncio.create_task(client(n, http)) for n in range(CLIENTS)]
        await asyncio.sleep(LOAD_BEFORE_KILL)
        # SIGKILL: no shutdown at all; requests are in flight, sales batches mid-write.
        running.proc.send_signal(signal.SIGKILL)
        running.proc.wait(timeout=10)
        stop.set()
        await asyncio.gather(*tasks)
    return paid, lost


async def _retry(running: Running, token: str, product: str, keys: set[str]) -> dict[str, str]:
    """The lost requests sent again with their idempotency keys, as a client would."""
    async with http_client(timeout=30, headers={"Authorization": f"Bearer {token}"}) as http:
        answers = await asyncio.gather(
            *(http.post(running.url + "/graphql", json=_order(product, k)) for k in sorted(keys))
        )
    codes: dict[str, str] = {}
    for key, response in zip(sorted(keys), answers, strict=True):
        placed = response.json()["data"]["placeOrder"]
        assert not placed["userErrors"], placed
        assert placed["order"]["status"] == "PAID"
        codes[key] = placed["codes"][0]["code"]
    return codes


async def _check_database(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        figures = {}
        # Every code has one state; sold ones belong to exactly one order, others to none.
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM (SELECT code_id FROM order_codes GROUP BY code_id"
                " HAVING count(*) > 1) AS t"
            )
            == 0
        ), "a code is in two orders"
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM order_codes oc JOIN codes c ON c.id = oc.code_id"
                " WHERE c.status <> 'sold'"
            )
            == 0
        ), "an order holds a code that is not sold (e.g. still available)"
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM codes c WHERE c.status = 'sold'"
                " AND NOT EXISTS (SELECT 1 FROM order_codes oc WHERE oc.code_id = c.id)"
            )
            == 0
        ), "a code is sold to no order"
        # No PAID order without its codes, none with more.
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM orders o WHERE o.status = 'PAID' AND o.quantity <> ("
                " SELECT count(*) FROM order_codes oc WHERE oc.order_id = o.id)"
            )
            == 0
        ), "a PAID order does not hold exactly its codes"
        # The ledger balances, per transaction and in all; the wallet paid for every order.
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM (SELECT transaction_id FROM ledger_entries"
                " GROUP BY transaction_id HAVING sum(amount) <> 0) AS t"
            )
            == 0
        ), "a ledger transaction does not balance"
        assert await conn.fetchval("SELECT coalesce(sum(amount), 0) FROM ledger_entries") == 0
        paid_total = await conn.fetchval(
            "SELECT coalesce(sum(total), 0) FROM orders WHERE status = 'PAID'"
        )
        wallet = -await conn.fetchval(
            "SELECT balance FROM ledger_accounts a JOIN channels c ON c.id = a.channel_id"
            " WHERE a.kind = 'CHANNEL_WALLET' AND c.name = 'agent'"
        )
        assert wallet == TOP_UP - paid_total, (wallet, paid_total)
        # The pool's counters equal its codes' states.
        assert await conn.fetchval(POOL_COUNTERS_DIFFER) == 0, "pool counters differ from the codes"
        # No reservation outlives an unfinished order. BALANCE orders sell without
        # reserving; a reservation may only be held by an order awaiting payment.
        figures["reserved"] = await conn.fetchval(
            "SELECT count(*) FROM codes c WHERE c.status = 'reserved' AND NOT EXISTS ("
            " SELECT 1 FROM orders o JOIN order_codes oc ON oc.order_id = o.id"
            " WHERE oc.code_id = c.id AND o.status = 'AWAITING_PAYMENT')"
        )
        figures["paid"] = await conn.fetchval("SELECT count(*) FROM orders WHERE status = 'PAID'")
        figures["sold"] = await conn.fetchval("SELECT count(*) FROM codes WHERE status = 'sold'")
        return figures
    finally:
        await conn.close()


def _wait_no_stale_reservations(dsn: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        stale = asyncio.run(_check_database(dsn))["reserved"]
        if stale == 0 or time.monotonic() > deadline:
            return stale
        time.sleep(0.5)


def test_kill_9_mid_load_leaves_nothing_half_done(data_dir: Path, tmp_path: Path) -> None:
    postgres: EmbeddedPostgres | None = None
    try:
        # Given a running server with a stocked product and a funded agent
        with serving(data_dir, tmp_path, reap=False) as first:
            postgres = EmbeddedPostgres(data_dir, owner=False)
            dsn = postgres.start()
            token, product = _seed(first, asyncio.run(_platform_key(dsn)))

            # When orders pour in from 32 clients and the server is killed with SIGKILL
            postmaster = _postmaster_pid(data_dir)
            paid, lost = asyncio.run(_load_then_kill(first, token, product))
        # (its PostgreSQL and Valkey keep running, orphaned)
        assert len(paid) > 50, f"too little load before the kill: {len(paid)} orders"
        assert lost, "the kill came after the load ended"

        # And the server is started again on the same data directory
        with serving(data_dir, tmp_path, reap=False) as second:
            # (it adopted the PostgreSQL that outlived the killed server)
            assert _postmaster_pid(data_dir) == postmaster
            postgres = EmbeddedPostgres(data_dir, owner=False)
            dsn = postgres.start()

            # Then every order a client saw PAID is stored PAID, with the code it was given
            figures = asyncio.run(_check_database(dsn))
            stored = asyncio.run(_paid_keys(dsn))
            assert set(paid) <= stored
            assert len(set(paid.values())) == len(paid)

            # And the invariants hold, and no reservation is left held
            assert _wait_no_stale_reservations(dsn, timeout=10) == 0
            assert figures["paid"] == figures["sold"]

            # And a client retrying its lost requests gets one order per key, each with
            # its own code, whether the first attempt had committed or not
            retried = asyncio.run(_retry(second, token, product, lost))
            assert len(retried) == len(lost)
            everything = list(paid.values()) + list(retried.values())
            assert len(set(everything)) == len(everything)
            after = asyncio.run(_check_database(dsn))
            assert after["paid"] == len(stored | set(retried))
    finally:
        if postgres is not None:
            with contextlib.suppress(Exception):
                postgres.stop()


async def _paid_keys(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT idempotency_key FROM orders WHERE status = 'PAID'")
        return {r["idempotency_key"] for r in rows}
    finally:
        await conn.close()
