"""Input objects built by converters made once per type, not worked out per request.

strawberry turns each input value into its class field by field, and for every field of
every request it looks up the field's GraphQL name, resolves its annotation and imports
what it checks against: for ``placeOrder``'s input that was a tenth of the request.
Here each input type gets, when the schema is built, a ``from_input`` (strawberry's hook
for types that build their own values) that does the same with what it worked out once:
the names, which fields hold nested inputs, and the default of the fields left out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from graphql import GraphQLInputObjectType
from strawberry import Schema
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.arguments import InputContext
from strawberry.types.base import (
    StrawberryList,
    StrawberryObjectDefinition,
    StrawberryOptional,
    StrawberryType,
    has_object_definition,
)
from strawberry.types.lazy_type import LazyType

# From a GraphQL input value to its Python value; None where the value is kept as given
# (scalars and enums, which graphql-core has parsed already).
Convert = Callable[[Any], Any] | None


def install(schema: Schema) -> None:
    """Give every input object of ``schema`` its converter."""
    builders: dict[type, Callable[[Mapping[str, Any]], Any]] = {}
    for graphql_type in schema._schema.type_map.values():
        if isinstance(graphql_type, GraphQLInputObjectType):
            definition = graphql_type.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if isinstance(definition, StrawberryObjectDefinition):
                _builder(schema, definition.origin, builders)


def _builder(
    schema: Schema, cls: type, builders: dict[type, Callable[[Mapping[str, Any]], Any]]
) -> Callable[[Mapping[str, Any]], Any]:
    if cls in builders:
        return builders[cls]
    definition: StrawberryObjectDefinition = cls.__strawberry_definition__  # type: ignore[attr-defined]
    fields: list[tuple[str, str, Convert]] = []
    # strawberry's rule: a field with no default of its own is None when left out.
    unset = {
        f.python_name: None
        for f in definition.fields
        if f.default_value is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }

    def build(value: Mapping[str, Any]) -> Any:
        kwargs = dict(unset)
        for graphql_name, python_name, convert in fields:
            if graphql_name in value:
                given = value[graphql_name]
                kwargs[python_name] = given if convert is None else convert(given)
        return cls(**kwargs)

    # Registered before its fields are worked out: an input may nest itself.
    builders[cls] = build
    for f in definition.fields:
        field_type = f.resolve_type(type_definition=definition)
        convert = _converter(schema, field_type, builders)
        fields.append((schema.config.name_converter.from_field(f), f.python_name, convert))

    def from_input(cls_: type, value: Mapping[str, Any], context: InputContext) -> Any:
        return build(value)

    definition.from_input = from_input
    return build


def _converter(
    schema: Schema,
    type_: StrawberryType | type,
    builders: dict[type, Callable[[Mapping[str, Any]], Any]],
) -> Convert:
    if isinstance(type_, StrawberryOptional):
        inner = _converter(schema, type_.of_type, builders)
        if inner is None:
            return None
        return lambda value: None if value is None else inner(value)
    if isinstance(type_, StrawberryList):
        item = _converter(schema, type_.of_type, builders)
        if item is None:
            # A copy: graphql-core hands every request the same default list.
            return lambda value: None if value is None else list(value)
        return lambda value: None if value is None else [item(v) for v in value]
    if isinstance(type_, LazyType):
        return _converter(schema, type_.resolve_type(), builders)
    if has_object_definition(type_) and type_.__strawberry_definition__.is_input:
        build = _builder(schema, type_, builders)
        return lambda value: None if value is None else build(value)
    return None
