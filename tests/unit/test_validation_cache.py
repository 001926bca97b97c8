"""Each parsed document is validated once, and its verdict is the same every time."""

from __future__ import annotations

from functools import partial
from typing import Any

import strawberry
from graphql import ValidationRule
from strawberry.extensions import AddValidationRules, ParserCache

from schema.extensions import DocumentValidationCache

validated: list[str] = []


class _Counted(ValidationRule):
    def enter_document(self, *_: Any) -> None:
        validated.append("document")


@strawberry.type
class Query:
    @strawberry.field
    def hello(self, name: str = "world") -> str:
        return f"hello {name}"


SCHEMA = strawberry.Schema(
    Query,
    extensions=[
        partial(ParserCache, maxsize=16),
        partial(AddValidationRules, [_Counted]),
        DocumentValidationCache,
    ],
)


async def test_a_query_sent_again_is_not_validated_again() -> None:
    validated.clear()
    for _ in range(3):
        result = await SCHEMA.execute("{ hello }")
        assert result.data == {"hello": "hello world"}
    assert validated == ["document"]


async def test_an_invalid_query_is_refused_every_time_it_comes() -> None:
    validated.clear()
    for _ in range(2):
        result = await SCHEMA.execute("{ goodbye }")
        assert result.errors is not None
        assert "Cannot query field 'goodbye'" in result.errors[0].message
    assert validated == ["document"]


async def test_different_queries_are_validated_each_on_its_own() -> None:
    validated.clear()
    assert (await SCHEMA.execute('{ hello(name: "a") }')).data == {"hello": "hello a"}
    assert (await SCHEMA.execute("{ hello(name: 1) }")).errors is not None
    assert len(validated) == 2
