"""Request limits over real HTTP: deep, wide and huge documents and oversized pages.

Each refusal must be a clear error (HTTP 200 with `errors`, or 4xx), never a 500, and the
refused operation must not run: where it can, a test sends a mutation that would leave a
trace (a new channel) and checks that none was left. Every request is sent twice, because
the parser and validation caches must refuse the second copy exactly like the first.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from settings import Settings
from tests.conftest import CREATE_CHANNEL, Api, LiveServer

CHILD_NAMES = "{ channel { children(first: 100) { edges { node { name } } } } }"
CREATE = 'createChannel(input: {{name: "{name}"}}) {{ userErrors {{ code }} }}'


def _nested_paths(levels: int) -> str:
    """A selection `levels` fields deep: channel { path { path { ... id } } }."""
    return "channel { " + "path { " * (levels - 2) + "id" + " }" * (levels - 1)


def _nested_children(levels: int) -> str:
    """A selection about `levels` fields deep through children connections."""
    hops = (levels - 2) // 3
    return "channel { " + "children { edges { node { " * hops + "id" + " } } }" * hops + " }"


async def _post(
    server: LiveServer, token: str, query: str, variables: dict[str, Any] | None = None
) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(
            server.graphql_url,
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {token}"},
        )


def _no_values(data: Any) -> bool:
    """Whether a response's data holds nothing but nulls (a refused field nulls its parent)."""
    if isinstance(data, dict):
        return all(_no_values(v) for v in data.values())
    return data is None


def _refusal(response: httpx.Response) -> str:
    """The error message of a refused request; fails on a 500, a traceback or a success."""
    assert response.status_code < 500, response.text
    assert "Traceback" not in response.text
    if 400 <= response.status_code < 500:
        return response.text
    assert response.status_code == 200, response.text
    body = response.json()
    assert body.get("errors"), f"not refused: {response.text[:500]}"
    assert _no_values(body.get("data")), f"refused but still ran: {response.text[:500]}"
    return " ".join(e["message"] for e in body["errors"])


async def _children_of(api: Api, token: str) -> list[str]:
    seen = await api.data(CHILD_NAMES, token=token)
    return [e["node"]["name"] for e in seen["channel"]["children"]["edges"]]


async def _assert_refused_twice(
    server: LiveServer, api: Api, token: str, query: str, *expected: str
) -> None:
    """``query`` is refused twice with a message holding ``expected``, and changes nothing."""
    before = await _children_of(api, token)
    for attempt in (1, 2):
        message = _refusal(await _post(server, token, query))
        for part in expected:
            assert part in message.lower(), f"attempt {attempt}: {message}"
    assert await _children_of(api, token) == before


@pytest.mark.parametrize("nest", [_nested_paths, _nested_children], ids=["path", "children"])
async def test_deep_query_is_refused_and_does_not_run(
    server: LiveServer, api: Api, platform_key: str, settings: Settings, nest: Any
) -> None:
    # Given a 50-deep selection in the payload of a mutation that would create a channel
    query = 'mutation { createChannel(input: {name: "deep"}) { ' + nest(50) + " } }"

    # When the platform sends it (twice)
    # Then it is refused for its depth, naming the limit, and no channel was created
    await _assert_refused_twice(
        server, api, platform_key, query, "depth", str(settings.max_query_depth)
    )


async def test_query_within_the_depth_limit_runs(
    api: Api, platform_key: str, settings: Settings
) -> None:
    # Given a query exactly as deep as the limit allows
    query = "{ " + _nested_paths(settings.max_query_depth) + " }"

    # When the platform sends it
    seen = await api.data(query, token=platform_key)

    # Then it runs all the way down
    level = seen["channel"]
    for _ in range(settings.max_query_depth - 2):
        (level,) = level["path"]
    assert set(level) == {"id"}


async def test_thousand_aliases_are_refused_and_do_not_run(
    server: LiveServer, api: Api, platform_key: str, settings: Settings
) -> None:
    # Given a mutation of 1,000 aliased fields, 31 of them creating channels
    # (small enough in tokens to reach the alias check rather than the token limit)
    creating = [f"c{i}: " + CREATE.format(name=f"alias {i}") for i in range(31)]
    cheap = [f"t{i}: __typename" for i in range(1000 - len(creating))]
    query = "mutation { " + " ".join(creating + cheap) + " }"
    assert len(query.split()) < settings.max_tokens

    # When the platform sends it (twice)
    # Then it is refused for its aliases, naming the limit, and no channel was created
    await _assert_refused_twice(
        server, api, platform_key, query, "aliases", str(settings.max_aliases)
    )


async def test_one_alias_too_many_is_refused_and_the_limit_itself_runs(
    server: LiveServer, api: Api, platform_key: str, settings: Settings
) -> None:
    # Given one alias over the limit
    over = "{ " + " ".join(f"a{i}: viewer {{ role }}" for i in range(settings.max_aliases + 1))

    # When the platform sends it (twice), then it is refused
    await _assert_refused_twice(server, api, platform_key, over + " }", "aliases")

    # And exactly at the limit it runs
    at = "{ " + " ".join(f"a{i}: viewer {{ role }}" for i in range(settings.max_aliases)) + " }"
    seen = await api.data(at, token=platform_key)
    assert len(seen) == settings.max_aliases
    assert {v["role"] for v in seen.values()} == {"OWNER"}


async def test_huge_document_is_refused_and_does_not_run(
    server: LiveServer, api: Api, platform_key: str, settings: Settings
) -> None:
    # Given a 20,000-token mutation that would create a channel
    padding = " __typename" * 20_000
    query = "mutation { " + CREATE.format(name="huge") + padding + " }"

    # When the platform sends it (twice)
    # Then it is refused for its size, naming the limit, and no channel was created
    await _assert_refused_twice(
        server, api, platform_key, query, "tokens", str(settings.max_tokens)
    )


async def test_oversized_page_is_refused_naming_the_maximum(
    server: LiveServer, api: Api, platform_key: str, settings: Settings
) -> None:
    # Given the platform with one child
    await api.data(CREATE_CHANNEL, {"input": {"name": "only child"}}, token=platform_key)

    for first in (1000, settings.max_page_size + 1, -1):
        query = f"{{ channel {{ children(first: {first}) {{ edges {{ node {{ id }} }} }} }} }}"

        # When it asks for a page of 1,000, one over the maximum, or a negative one (twice)
        # Then each is refused with a message naming `first` and the maximum
        await _assert_refused_twice(
            server, api, platform_key, query, "first", str(settings.max_page_size)
        )

    # And a page of the maximum is served
    query = (
        f"{{ channel {{ children(first: {settings.max_page_size}) {{ edges {{ cursor }} }} }} }}"
    )
    seen = await api.data(query, token=platform_key)
    assert len(seen["channel"]["children"]["edges"]) == 1


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


BAD_CURSORS = [
    "abc",
    "",
    "游标",
    _b64("User:1"),
    _b64("Channel:3"),
    _b64("cursor:"),
    _b64("cursor:-1"),
    _b64("cursor:1e3"),
    _b64("cursor:" + "9" * 40),
    _b64("cursor:1") + "!",
    base64.b64encode(b"\xff\xfe:1").decode(),
]


async def test_bad_cursors_are_refused_clearly(
    server: LiveServer, api: Api, platform_key: str
) -> None:
    # Given the platform with one child, so a page after a valid cursor would be served
    await api.data(CREATE_CHANNEL, {"input": {"name": "only child"}}, token=platform_key)
    query = "query($after: String) { channel { children(after: $after) { edges { cursor } } } }"

    for cursor in BAD_CURSORS:
        # When it pages with a cursor this connection never gave out (twice)
        for attempt in (1, 2):
            response = await _post(server, platform_key, query, {"after": cursor})

            # Then it is refused with a message about `after`
            message = _refusal(response)
            assert "`after`" in message, f"{cursor!r} attempt {attempt}: {message}"


async def test_cursor_given_out_is_accepted(api: Api, platform_key: str) -> None:
    # Given the end cursor of the first page of the platform's two children
    for name in ("first child", "second child"):
        await api.data(CREATE_CHANNEL, {"input": {"name": name}}, token=platform_key)
    page = await api.data(
        "{ channel { children(first: 1) { pageInfo { endCursor } } } }", token=platform_key
    )
    cursor = page["channel"]["children"]["pageInfo"]["endCursor"]

    # When the platform asks for the page after it
    after = await api.data(
        """query($after: String) { channel { children(after: $after) {
             edges { node { name } } pageInfo { hasPreviousPage } } } }""",
        {"after": cursor},
        token=platform_key,
    )

    # Then it is served: the second child
    assert after["channel"]["children"] == {
        "edges": [{"node": {"name": "second child"}}],
        "pageInfo": {"hasPreviousPage": True},
    }
