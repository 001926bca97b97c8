"""Input objects built by the converters made once per type are what strawberry builds."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    Undefined,
    coerce_input_value,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from strawberry import Schema
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.arguments import convert_argument

from schema.root import make_schema
from settings import Settings

SCHEMA = make_schema(Settings())
INPUTS = sorted(
    (t for t in SCHEMA._schema.type_map.values() if isinstance(t, GraphQLInputObjectType)),
    key=lambda t: t.name,
)
SCALARS: dict[str, st.SearchStrategy[Any]] = {
    "String": st.text(max_size=8),
    "ID": st.text(min_size=1, max_size=8),
    "Int": st.integers(-(2**31), 2**31 - 1),
    "Boolean": st.booleans(),
    "Decimal": st.decimals(-1000, 1000, places=2).map(str),
    "DateTime": st.datetimes().map(lambda d: d.isoformat() + "+00:00"),
    "Upload": st.just(None),
}


def _raw(graphql_type: GraphQLInputType, depth: int = 0) -> st.SearchStrategy[Any]:
    """Variables as a client sends them (JSON), for ``graphql_type``."""
    if isinstance(graphql_type, GraphQLNonNull):
        return _raw(graphql_type.of_type, depth)
    nullable = st.none()
    if isinstance(graphql_type, GraphQLList):
        return nullable | st.lists(_raw(graphql_type.of_type, depth + 1), max_size=3)
    if isinstance(graphql_type, GraphQLEnumType):
        return nullable | st.sampled_from(sorted(graphql_type.values))
    if isinstance(graphql_type, GraphQLScalarType):
        return nullable | SCALARS[graphql_type.name]
    assert isinstance(graphql_type, GraphQLInputObjectType)
    if depth > 2:
        return nullable
    return nullable | st.fixed_dictionaries(
        {},
        optional={name: _raw(f.type, depth + 1) for name, f in graphql_type.fields.items()},
    )


@contextmanager
def _strawberry_conversion(schema: Schema) -> Iterator[None]:
    """strawberry's own field-by-field conversion, for the length of the block."""
    definitions = [t.extensions[GraphQLCoreConverter.DEFINITION_BACKREF] for t in INPUTS]
    installed = [d.from_input for d in definitions]
    for d in definitions:
        d.from_input = None
    try:
        yield
    finally:
        for d, hook in zip(definitions, installed, strict=True):
            d.from_input = hook


@pytest.mark.parametrize("graphql_type", INPUTS, ids=lambda t: t.name)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_input_is_built_as_strawberry_builds_it(
    graphql_type: GraphQLInputObjectType, data: st.DataObject
) -> None:
    raw = data.draw(_raw(GraphQLNonNull(graphql_type)).filter(lambda v: v is not None))
    value = coerce_input_value(raw, graphql_type)
    if value is Undefined:
        return  # the request would be refused before any conversion
    cls = graphql_type.extensions[GraphQLCoreConverter.DEFINITION_BACKREF].origin
    registry, config = SCHEMA.schema_converter.scalar_registry, SCHEMA.config

    ours = convert_argument(value, cls, registry, config)
    with _strawberry_conversion(SCHEMA):
        theirs = convert_argument(value, cls, registry, config)

    assert ours == theirs
    assert type(ours) is type(theirs)


def test_a_list_of_scalars_is_a_copy_of_what_graphql_core_gives() -> None:
    # graphql-core may hand every request the same list (a published default): a
    # resolver that changes its copy must not change the next request's.
    selection = SCHEMA._schema.type_map["FreezeCodesInput"]
    cls = selection.extensions[GraphQLCoreConverter.DEFINITION_BACKREF].origin
    value = coerce_input_value({"codeIds": ["a", "b"], "reason": "test"}, selection)
    built = convert_argument(value, cls, SCHEMA.schema_converter.scalar_registry, SCHEMA.config)
    assert built.code_ids == ["a", "b"]
    assert built.code_ids is not value["codeIds"]
