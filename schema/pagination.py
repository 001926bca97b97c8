"""Relay connections with keyset cursors."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import strawberry

from schema.errors import bad_request

N = TypeVar("N")
R = TypeVar("R")
DEFAULT_PAGE = 20


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[N]):
    cursor: str
    node: N


@strawberry.type
class Connection(Generic[N]):
    edges: list[Edge[N]]
    page_info: PageInfo

    @strawberry.field(description="The nodes of `edges`, for clients that need no cursors.")
    def nodes(self) -> list[N]:
        return [edge.node for edge in self.edges]


@dataclass(frozen=True, slots=True)
class Window:
    """A page request made safe: fetch ``limit`` rows with key above ``after_key``."""

    after_key: int
    size: int
    has_previous: bool

    @property
    def limit(self) -> int:
        # One extra row tells whether there is a next page.
        return self.size + 1


def window(first: int | None, after: str | None, max_size: int) -> Window:
    size = DEFAULT_PAGE if first is None else first
    if not 0 <= size <= max_size:
        raise bad_request(f"`first` must be between 0 and {max_size}.")
    after_key = 0
    if after is not None:
        after_key = _decode_cursor(after)
    return Window(after_key=after_key, size=size, has_previous=after is not None)


def connection(
    rows: Sequence[R], win: Window, key: Callable[[R], int], node: Callable[[R], N]
) -> Connection[N]:
    page = rows[: win.size]
    edges = [Edge(cursor=_encode_cursor(key(r)), node=node(r)) for r in page]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=len(rows) > win.size,
            has_previous_page=win.has_previous,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
    )


def _encode_cursor(key: int) -> str:
    return base64.b64encode(f"cursor:{key}".encode()).decode()


def _decode_cursor(cursor: str) -> int:
    try:
        kind, _, key = base64.b64decode(cursor, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        kind, key = "", ""
    if kind != "cursor" or not (key.isascii() and key.isdigit()) or len(key) > 18:
        raise bad_request("`after` is not a cursor from this connection.")
    return int(key)
