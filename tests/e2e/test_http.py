"""The HTTP surface beside GraphQL semantics: health, metrics, request ids, GraphiQL, GET
queries, and what malformed requests get back (a 4xx or a GraphQL error, never a 500)."""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from observability import Metrics, RequestContext
from settings import Settings
from tests.conftest import CREATE_CHANNEL, Api, LiveServer, http_client, live_server

CHILD_NAMES = "{ channel { children(first: 100) { edges { node { name } } } } }"


@pytest.fixture
async def http(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(base_url=server.url, timeout=30) as client:
        yield client


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of the sample ``name`` with ``labels`` in a Prometheus exposition; 0 if absent."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


async def _metrics(http: httpx.AsyncClient) -> str:
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def _metrics_until(http: httpx.AsyncClient, ready: Callable[[str], bool]) -> str:
    """/metrics once ``ready`` holds for it, or at a deadline.

    A request is counted as it ends, just after its response went out, so the count of the
    request before may lag a moment behind the client.
    """
    deadline = time.monotonic() + 5
    for _ in range(10_000):
        text = await _metrics(http)
        if ready(text) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.01)
    return text


def _no_traceback(response: httpx.Response) -> None:
    assert response.status_code != 500, response.text
    assert "Traceback" not in response.text
    assert not re.search(r'File "[^"]+\.py", line \d+', response.text), response.text


async def test_healthz_answers(http: httpx.AsyncClient) -> None:
    # When the liveness probe is asked
    response = await http.get("/healthz")
    # Then it answers 200 ok
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_checks_database_and_valkey(http: httpx.AsyncClient) -> None:
    # When the readiness probe is asked with both servers up
    response = await http.get("/readyz")
    # Then it answers 200 and names both checks as ok
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "valkey": "ok"}}


async def test_metrics_count_operations_by_root_field_and_requests(
    http: httpx.AsyncClient, platform_key: str
) -> None:
    # Given the metrics before
    auth = {"Authorization": f"Bearer {platform_key}"}
    before = await _metrics(http)

    # When a query on `viewer` runs twice, one on `channel` once,
    # and an anonymous `createChannel` is refused
    for query in ("{ viewer { role } }", "{ viewer { role } }", "{ channel { name } }"):
        response = await http.post("/graphql", json={"query": query}, headers=auth)
        assert response.json()["data"], response.text
    refused = await http.post(
        "/graphql",
        json={"query": 'mutation { createChannel(input: {name: "x"}) { channel { id } } }'},
    )
    assert refused.json()["errors"]

    # Then the operation counter went up by exactly those, labelled by type, field and outcome
    after = await _metrics(http)
    ops = "quanyi_graphql_operations_total"

    def grew(**labels: str) -> float:
        return _sample(after, ops, **labels) - _sample(before, ops, **labels)

    assert grew(type="query", field="viewer", outcome="ok") == 2
    assert grew(type="query", field="channel", outcome="ok") == 1
    assert grew(type="mutation", field="createChannel", outcome="error") == 1
    assert grew(type="mutation", field="createChannel", outcome="ok") == 0

    # And the HTTP request counter counted the four POSTs to /graphql (counted as each
    # request ends, so wait for the last one briefly) and the /metrics call before
    reqs = "quanyi_http_requests_total"
    post = {"method": "POST", "route": "/graphql", "status": "200"}

    def posts(text: str) -> float:
        return _sample(text, reqs, **post) - _sample(before, reqs, **post)

    text = await _metrics_until(http, lambda t: posts(t) >= 4)
    assert posts(text) == 4
    assert _sample(text, reqs, method="GET", route="/metrics", status="200") >= 2


async def test_metrics_label_unknown_paths_as_other(http: httpx.AsyncClient) -> None:
    # When paths that are not routes are requested (any number of distinct ones)
    for path in ("/nope", "/nope/1", "/wp-admin.php"):
        assert (await http.get(path)).status_code == 404

    # Then they are counted under one bounded route label, not one label per path
    def other(text: str) -> float:
        return _sample(text, "quanyi_http_requests_total", route="other", status="404")

    text = await _metrics_until(http, lambda t: other(t) >= 3)
    assert other(text) == 3
    assert "/wp-admin.php" not in text


async def test_request_id_is_echoed_or_generated(http: httpx.AsyncClient) -> None:
    # When a request carries a sane X-Request-Id
    given = await http.get("/healthz", headers={"X-Request-Id": "edge-42.a_b"})
    # Then the response carries the same id
    assert given.headers["x-request-id"] == "edge-42.a_b"

    # When requests carry none, or one that is too long or has odd characters
    generated = [
        (await http.get("/healthz", headers=headers)).headers["x-request-id"]
        for headers in ({}, {}, {"X-Request-Id": "x" * 65}, {"X-Request-Id": "a b<script>"})
    ]
    # Then each gets a fresh, unique, generated id
    assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in generated), generated
    assert len(set(generated)) == len(generated)

    # And error responses carry an id too
    refused = await http.post(
        "/graphql",
        content=b"{",
        headers={"content-type": "application/json", "X-Request-Id": "bad-body-1"},
    )
    assert refused.status_code == 400
    assert refused.headers["x-request-id"] == "bad-body-1"


async def _get_healthz(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """One request on an open connection; the status line of its answer."""
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: quanyi.test\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
    assert length is not None, head
    await reader.readexactly(int(length.group(1)))
    return head.split(b"\r\n", 1)[0]


async def test_an_idle_connection_outlives_the_usual_client_idle_timeouts(
    server: LiveServer,
) -> None:
    # Given a client connection that has made one request
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        assert await _get_healthz(reader, writer) == b"HTTP/1.1 200 OK"

        # When it stays idle longer than uvicorn's own keep-alive (5 s), as pooled
        # connections of clients that keep them 5 s and more do
        await asyncio.sleep(6)

        # Then the server has kept it: the next request on it is answered
        assert await _get_healthz(reader, writer) == b"HTTP/1.1 200 OK"
    finally:
        writer.close()


async def test_the_keep_alive_is_a_setting(settings: Settings) -> None:
    # Given a server that keeps idle connections 1 s
    short = settings.model_copy(update={"keep_alive_seconds": 1})
    async with live_server(short) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            assert await _get_healthz(reader, writer) == b"HTTP/1.1 200 OK"

            # When the connection stays idle, then the server closes it after that second
            started = time.monotonic()
            assert await asyncio.wait_for(reader.read(), 5) == b""
            assert 0.5 < time.monotonic() - started < 3
        finally:
            writer.close()


async def test_graphiql_is_served_to_browsers(http: httpx.AsyncClient) -> None:
    # When a browser opens /graphql
    response = await http.get("/graphql", headers={"Accept": "text/html"})
    # Then it gets the GraphiQL page
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "graphiql" in response.text.lower()


async def test_get_runs_queries_but_not_mutations(
    http: httpx.AsyncClient, api: Api, platform_key: str
) -> None:
    auth = {"Authorization": f"Bearer {platform_key}", "Accept": "application/json"}

    # When a query is sent as GET with a key
    response = await http.get("/graphql", params={"query": "{viewer{role}}"}, headers=auth)
    # Then it runs as the key's owner
    assert response.status_code == 200
    assert response.json() == {"data": {"viewer": {"role": "OWNER"}}}

    # And variables come through the query string too
    response = await http.get(
        "/graphql",
        params={
            "query": "query($n: Int) { channel { children(first: $n) { edges { cursor } } } }",
            "variables": '{"n": 1}',
        },
        headers=auth,
    )
    assert response.json() == {"data": {"channel": {"children": {"edges": []}}}}

    # When a mutation is sent as GET
    mutation = 'mutation { createChannel(input: {name: "by GET"}) { channel { id } } }'
    response = await http.get("/graphql", params={"query": mutation}, headers=auth)
    # Then it is refused and nothing was created
    assert 400 <= response.status_code < 500
    _no_traceback(response)
    seen = await api.data(CHILD_NAMES, token=platform_key)
    assert seen["channel"]["children"]["edges"] == []


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


JSON = {"content-type": "application/json"}
VIEWER = "{ viewer { role } }"

MALFORMED: list[Any] = [
    pytest.param({"content": b"{not json", "headers": JSON}, id="invalid-json"),
    pytest.param({"content": b"", "headers": JSON}, id="empty-body"),
    pytest.param({"json": {"variables": {}}}, id="missing-query"),
    pytest.param({"json": {"query": None}}, id="null-query"),
    pytest.param({"json": {"query": 123}}, id="query-not-a-string"),
    pytest.param({"json": {"query": [VIEWER]}}, id="query-a-list"),
    pytest.param({"json": {"query": {"q": VIEWER}}}, id="query-an-object"),
    pytest.param({"json": [{"query": VIEWER}]}, id="batch"),
    pytest.param(
        {"content": b'{"query": "{ viewer { role } }"}', "headers": {"content-type": "text/plain"}},
        id="text-plain",
    ),
    pytest.param({"data": {"query": VIEWER}}, id="form-urlencoded"),
    pytest.param({"json": {"query": VIEWER, "variables": "x"}}, id="variables-a-string"),
    pytest.param({"json": {"query": VIEWER, "variables": [1]}}, id="variables-a-list"),
    pytest.param({"json": {"query": VIEWER, "extensions": "x"}}, id="extensions-a-string"),
    pytest.param({"json": {"query": VIEWER, "operationName": "Nope"}}, id="unknown-operation"),
    pytest.param({"json": {"query": VIEWER, "operationName": 5}}, id="operation-name-a-number"),
    pytest.param(
        {
            "json": {
                "query": "query($f: Int) { channel { children(first: $f) { edges { cursor } } } }",
                "variables": {"f": "ten"},
            }
        },
        id="variable-of-wrong-type",
    ),
    pytest.param(
        {
            "json": {
                "query": "query($f: Int) { channel { children(first: $f) { edges { cursor } } } }",
                "variables": {"f": 2**40},
            }
        },
        id="variable-out-of-range",
    ),
    pytest.param(
        {"json": {"query": "query($id: ID!) { channel(id: $id) { name } }", "variables": {}}},
        id="required-variable-missing",
    ),
    pytest.param(
        {
            "json": {
                "query": "query($id: ID) { channel(id: $id) { name } }",
                "variables": {"id": {"nested": 1}},
            }
        },
        id="id-an-object",
    ),
    pytest.param(
        {
            "json": {
                "query": "mutation($input: CreateChannelInput!) { createChannel(input: $input)"
                " { channel { id } } }",
                "variables": {"input": {"name": 5, "bogus": True}},
            }
        },
        id="input-with-wrong-fields",
    ),
    pytest.param({"json": {"query": "{ viewer { role }"}}, id="syntax-error"),
    pytest.param({"json": {"query": "{ viewer { role } }\x00"}}, id="nul-character"),
    pytest.param({"json": {"query": "{ nope }"}}, id="unknown-field"),
    pytest.param(
        {"json": {"query": "subscription { channelCreated { id } }"}}, id="subscription-over-post"
    ),
]


def _authorised(request_kwargs: dict[str, Any], token: str) -> dict[str, Any]:
    kwargs = dict(request_kwargs)
    kwargs["headers"] = {"Authorization": f"Bearer {token}", **kwargs.get("headers", {})}
    return kwargs


async def test_malformed_requests_get_a_client_error_never_a_500(
    http: httpx.AsyncClient, platform_key: str
) -> None:
    for case in MALFORMED:
        (request_kwargs,) = case.values
        # Given a malformed request from an authenticated caller
        # When it is posted
        response = await http.post("/graphql", **_authorised(request_kwargs, platform_key))

        # Then it gets a 4xx, or a 200 with GraphQL errors and no data, and no traceback
        where = f"{case.id}: {response.status_code} {response.text[:300]}"
        _no_traceback(response)
        if response.status_code == 200:
            body = response.json()
            assert body.get("errors"), where
            assert not body.get("data"), where
            assert all(e.get("message") for e in body["errors"]), where
            assert not any("Internal server error" in e["message"] for e in body["errors"]), where
            assert all(
                e.get("extensions", {}).get("code") == "BAD_REQUEST" for e in body["errors"]
            ), where
        else:
            assert 400 <= response.status_code < 500, where
            assert response.headers["content-type"] == "application/json", where
            (error,) = response.json()["errors"]
            assert error["message"].strip(), where
            assert error["extensions"] == {"code": "BAD_REQUEST"}, where


# Valid JSON (or bytes) that is not a GraphQL request object. strawberry itself calls
# `.get()`/`.items()` on such a body or multipart `map`, which was a 500 until GraphQLApp
# turned it into a 400.
NOT_AN_OBJECT: list[Any] = [
    pytest.param({"content": b'"hello"', "headers": JSON}, id="json-string"),
    pytest.param({"content": b"null", "headers": JSON}, id="json-null"),
    pytest.param({"content": b"123", "headers": JSON}, id="json-number"),
    pytest.param({"content": b"true", "headers": JSON}, id="json-boolean"),
    pytest.param({"content": b"\xff\xfe\x00", "headers": JSON}, id="not-utf8"),
    pytest.param(
        {
            "files": {
                "operations": (None, '{"query": "{ viewer { role } }"}'),
                "map": (None, "[]"),
            }
        },
        id="multipart-map-a-list",
    ),
    pytest.param(
        {"files": {"operations": (None, '"x"'), "map": (None, "{}")}},
        id="multipart-operations-a-string",
    ),
]


async def test_body_that_is_not_an_object_gets_a_400(
    http: httpx.AsyncClient, platform_key: str
) -> None:
    wrong: list[str] = []
    for case in NOT_AN_OBJECT:
        (request_kwargs,) = case.values
        # Given a request body that is valid JSON but not a GraphQL request object
        # When it is posted
        response = await http.post("/graphql", **_authorised(request_kwargs, platform_key))

        # Then it gets a 400 with a coded message, not a 500 (every case is tried, then
        # reported)
        if response.status_code != 400 or _refusal_code(response) != "BAD_REQUEST":
            wrong.append(f"{case.id}: {response.status_code} {response.text[:200]}")
    assert wrong == []


def _refusal_code(response: httpx.Response) -> str | None:
    try:
        (error,) = response.json()["errors"]
    except (ValueError, KeyError, TypeError):
        return None
    code: str | None = error.get("extensions", {}).get("code")
    return code if error.get("message") else None


FOREIGN_IDS = [
    "abc",
    "",
    "Channel:1",
    _b64("User:1"),
    _b64("ApiKey:1"),
    _b64("Channel:"),
    _b64("Channel:-1"),
    _b64("Channel:abc"),
    _b64("Channel:1:2"),
    _b64("Channel:" + "9" * 20),
    _b64("Channel:999999999999999999"),
    _b64("Channel:1") + "\n",
]


async def test_ids_that_are_not_channel_ids_find_nothing(api: Api, platform_key: str) -> None:
    # Given the platform's own channel id, which works
    own = await api.data("{ channel { id } }", token=platform_key)
    own_id = own["channel"]["id"]
    found = await api.data(
        "query($id: ID) { channel(id: $id) { id } }", {"id": own_id}, token=platform_key
    )
    assert found["channel"] == {"id": own_id}

    for foreign in FOREIGN_IDS:
        # When an id that is not a channel id of ours is used to read a channel
        body = await api.raw(
            "query($id: ID) { channel(id: $id) { id name } }", {"id": foreign}, token=platform_key
        )
        # Then nothing is found (or the request is refused), and nothing leaks
        assert body.get("data") in ({"channel": None}, None), (foreign, body)
        assert "Internal server error" not in str(body.get("errors")), (foreign, body)

        # When it is used as the parent of a new channel, or to issue a key
        created = await api.data(
            CREATE_CHANNEL, {"input": {"name": "orphan", "parentId": foreign}}, token=platform_key
        )
        # Then it is a NOT_FOUND user error on that field
        assert created["createChannel"]["channel"] is None
        assert [(e["code"], e["field"]) for e in created["createChannel"]["userErrors"]] == [
            ("NOT_FOUND", ["parentId"])
        ]
        if foreign == _b64("ApiKey:1"):
            continue  # that one is the platform's own key's id
        revoked = await api.data(
            """mutation($input: RevokeApiKeyInput!) { revokeApiKey(input: $input) {
                 apiKey { id } userErrors { code field } } }""",
            {"input": {"apiKeyId": foreign}},
            token=platform_key,
        )
        assert revoked["revokeApiKey"] == {
            "apiKey": None,
            "userErrors": [{"code": "NOT_FOUND", "field": ["apiKeyId"]}],
        }

    # And no channel was created along the way
    seen = await api.data(CHILD_NAMES, token=platform_key)
    assert seen["channel"]["children"]["edges"] == []


async def test_a_crash_is_counted_as_a_500() -> None:
    # Given the request middleware around an app whose handler crashes
    async def crash(request: Request) -> Response:
        raise RuntimeError("boom")

    metrics = Metrics()
    app = Starlette(routes=[Route("/graphql", crash)])
    app.add_middleware(RequestContext, metrics=metrics)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)

    # When a request reaches it
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        response = await client.get("/graphql")

    # Then the client gets a plain 500 without a traceback
    assert response.status_code == 500
    assert "boom" not in response.text
    assert "Traceback" not in response.text
    # And the request is counted as a 500, not as an unknown status
    assert metrics.http_requests.labels("GET", "/graphql", "500")._value.get() == 1
    assert metrics.http_requests.labels("GET", "/graphql", "0")._value.get() == 0
