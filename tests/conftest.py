"""Shared fixtures: real PostgreSQL and Valkey, started once per test session.

Each test gets a database of its own, cloned from a migrated template, a flushed
Valkey, and, when it asks for ``server``, the real app served by uvicorn on a free
local port, so requests travel through real HTTP and WebSocket.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import shutil
import socket
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from redis.asyncio import Redis
from starlette.applications import Starlette

from domain.access import Role
from domain.credentials import format_api_key, new_api_key_secret
from persistence import api_keys, channels, migrations
from persistence.embedded import EmbeddedPostgres, EmbeddedValkey
from server import create_app, http_server_config
from settings import Settings

TEMPLATE = "quanyi_template"
SESSION_SECRET = "test-session-secret"


@dataclass
class Servers:
    postgres: EmbeddedPostgres
    redis_url: str
    clones: Clones

    def dsn(self, database: str) -> str:
        return self.postgres.dsn(database)


class Clones:
    """Test databases cloned from the template one test ahead, and dropped behind.

    A clone takes about a quarter of a second; made here, in a thread of its own while
    the test before runs, it costs the test that takes it nothing.
    """

    def __init__(self, admin_dsn: str) -> None:
        self.admin_dsn = admin_dsn
        self.ready: queue.Queue[str | BaseException] = queue.Queue(maxsize=1)
        self.used: queue.Queue[str] = queue.Queue()
        self.wake = threading.Event()
        self.stopping = False
        # Once set, every test that asks for a database is told, rather than left waiting.
        self.failed: BaseException | None = None
        self.thread = threading.Thread(target=asyncio.run, args=(self._work(),), daemon=True)
        self.thread.start()

    def take(self) -> str:
        made = self.failed or self.ready.get(timeout=60)
        self.wake.set()
        if isinstance(made, BaseException):
            raise made
        return made

    def give_back(self, name: str) -> None:
        self.used.put(name)
        self.wake.set()

    def stop(self) -> None:
        self.stopping = True
        self.wake.set()
        self.thread.join(timeout=30)

    async def _work(self) -> None:
        try:
            admin = await asyncpg.connect(self.admin_dsn)
            try:
                while not self.stopping:
                    self.wake.clear()
                    while not self.used.empty():
                        await admin.execute(f'DROP DATABASE "{self.used.get()}" WITH (FORCE)')
                    if not self.ready.full():
                        name = f"test_{uuid.uuid4().hex[:16]}"
                        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
                        self.ready.put(name)
                        continue
                    await asyncio.to_thread(self.wake.wait, 0.5)
            finally:
                await admin.close()
        except Exception as error:
            self.failed = error
            with contextlib.suppress(queue.Full):
                self.ready.put_nowait(error)


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    # Not under pytest's tmp_path: pytest prunes old base dirs, which would pull the data
    # dir from under a session running beside another one.
    base = Path(tempfile.mkdtemp(prefix="quanyi-test-"))
    postgres = EmbeddedPostgres(base)
    postgres.start()
    valkey = EmbeddedValkey(base)
    clones: Clones | None = None
    try:
        redis_url = valkey.start()
        asyncio.run(_prepare_template(postgres))
        clones = Clones(postgres.dsn("postgres"))
        yield Servers(postgres, redis_url, clones)
    finally:
        if clones is not None:
            clones.stop()
        valkey.stop()
        postgres.stop()
        shutil.rmtree(base, ignore_errors=True)


async def _prepare_template(postgres: EmbeddedPostgres) -> None:
    admin = await asyncpg.connect(postgres.dsn("postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}"')
        await admin.execute(f'CREATE DATABASE "{TEMPLATE}"')
    finally:
        await admin.close()
    await migrations.migrate(postgres.dsn(TEMPLATE))
    # This server lives and dies with the test session, so flushing to disk buys
    # nothing: no test crashes PostgreSQL itself (the crash tests kill our process).
    admin = await asyncpg.connect(postgres.dsn("postgres"))
    try:
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            await admin.execute(f"ALTER SYSTEM SET {setting} = off")
        await admin.execute("SELECT pg_reload_conf()")
    finally:
        await admin.close()


@pytest.fixture
async def database_url(servers: Servers) -> AsyncIterator[str]:
    name = await asyncio.to_thread(servers.clones.take)
    yield servers.dsn(name)
    servers.clones.give_back(name)


@pytest.fixture
async def redis_url(servers: Servers) -> str:
    redis = Redis.from_url(servers.redis_url)
    await redis.flushall()
    await redis.aclose()
    return servers.redis_url


@pytest.fixture
def settings(tmp_path: Path, database_url: str, redis_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        data_dir=tmp_path / "data",
        session_secret=SESSION_SECRET,
        migrate_on_start=False,
        log_level="WARNING",
    )


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


@dataclass
class LiveServer:
    url: str
    app: Starlette

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def graphql_url(self) -> str:
        return self.url + "/graphql"

    @property
    def ws_url(self) -> str:
        return "ws" + self.graphql_url.removeprefix("http")


@contextlib.asynccontextmanager
async def live_server(settings: Settings) -> AsyncIterator[LiveServer]:
    """The app served by uvicorn on a free local port, for as long as the block runs."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(settings)
    uv = uvicorn.Server(http_server_config(app, settings))
    task = asyncio.create_task(uv.serve(sockets=[sock]))
    while not uv.started:
        if task.done():
            task.result()
            raise RuntimeError("server stopped during startup")
        await asyncio.sleep(0.01)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", app)
    finally:
        uv.should_exit = True
        await task
        sock.close()


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[LiveServer]:
    async with live_server(settings) as live:
        yield live


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 5.0) -> bool:
    """Whether ``check`` comes true within ``seconds``: for effects that travel between
    processes or through background tasks."""
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.05)
    return False


def http_client(**options: Any) -> httpx.AsyncClient:
    """An HTTP client for the servers under test, safe under many concurrent requests.

    httpcore 1.0.9 closes idle connections beyond ``max_keepalive_connections`` without
    checking whether one was just handed to a request that is about to use it
    (encode/httpcore#1110): under more concurrent requests than that, a request now and then
    fails with ``ReadError`` though the server answered nothing wrong. Keeping as many
    connections alive as may be open takes that path away.
    """
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    return httpx.AsyncClient(limits=limits, **options)


class Api:
    """A GraphQL client over real HTTP."""

    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        self.http = http
        self.url = url

    async def raw(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.http.post(
            self.url, json={"query": query, "variables": variables or {}}, headers=headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def data(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> dict[str, Any]:
        body = await self.raw(query, variables, token=token)
        assert not body.get("errors"), body["errors"]
        data: dict[str, Any] = body["data"]
        return data


@pytest.fixture
async def api(server: LiveServer) -> AsyncIterator[Api]:
    async with http_client(timeout=30) as http:
        yield Api(http, server.graphql_url)


@pytest.fixture
async def platform_key(db: asyncpg.Connection[Any]) -> str:
    """An owner API key of the platform, made the way ``create-admin`` bootstraps."""
    root = await channels.root(db)
    secret, secret_hash = new_api_key_secret()
    key = await api_keys.insert(db, root.id, "test platform key", Role.OWNER, secret_hash)
    return format_api_key(key.id, secret)


CREATE_CHANNEL = """
mutation($input: CreateChannelInput!) {
  createChannel(input: $input) {
    channel { id name level }
    userErrors { field code message }
  }
}
"""

ISSUE_KEY = """
mutation($input: IssueApiKeyInput!) {
  issueApiKey(input: $input) {
    secret
    apiKey { id name role }
    userErrors { field code message }
  }
}
"""


@dataclass
class Node:
    id: str
    key: str
    key_id: str


async def make_channel(api: Api, token: str, name: str, parent_id: str | None = None) -> Node:
    created = await api.data(
        CREATE_CHANNEL, {"input": {"name": name, "parentId": parent_id}}, token=token
    )
    payload = created["createChannel"]
    assert payload["userErrors"] == []
    channel_id = payload["channel"]["id"]
    issued = await api.data(
        ISSUE_KEY,
        {"input": {"channelId": channel_id, "name": f"{name} key", "role": "OWNER"}},
        token=token,
    )
    key = issued["issueApiKey"]
    assert key["userErrors"] == []
    return Node(id=channel_id, key=key["secret"], key_id=key["apiKey"]["id"])


@pytest.fixture
async def tree(api: Api, platform_key: str) -> dict[str, Node]:
    """root -> A -> A1 -> A11 and root -> B, each with an owner API key."""
    viewer = await api.data("{ viewer { channel { id } apiKey { id } } }", token=platform_key)
    root = Node(
        id=viewer["viewer"]["channel"]["id"],
        key=platform_key,
        key_id=viewer["viewer"]["apiKey"]["id"],
    )
    a = await make_channel(api, platform_key, "A")
    a1 = await make_channel(api, a.key, "A1", a.id)
    a11 = await make_channel(api, a1.key, "A11", a1.id)
    b = await make_channel(api, platform_key, "B")
    return {"root": root, "A": a, "A1": a1, "A11": a11, "B": b}
