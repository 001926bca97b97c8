"""Schema extensions: request limits, caches, error masking and operation metrics."""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    StringValueNode,
    ValidationRule,
)
from starlette.websockets import WebSocket
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.schema.schema import validate_document
from strawberry.types import ExecutionContext
from strawberry.types.graphql import OperationType

from schema.errors import MASKED_MESSAGE, bad_request
from settings import Settings


def _must_mask(error: GraphQLError) -> bool:
    """Show syntax, validation and our own request errors; hide everything unexpected."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


class CachedParser(ParserCache):
    """strawberry's parser cache, but a document that does not parse is left to
    strawberry's own parse, which answers its syntax error as the request's error.
    Raised from this hook, the error escaped the operation: over HTTP no extension saw
    it, and over a WebSocket the client got no answer but ``complete``."""

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        with contextlib.suppress(GraphQLError):
            context.graphql_document = self.cached_parse_document(
                context.query, **context.parse_options
            )
        yield


class SubscriptionsOverWebSocket(SchemaExtension):
    """Refuses subscriptions sent over plain HTTP (a 400) instead of failing inside them.

    Over HTTP strawberry would execute a subscription like a query, and the field's
    async generator would surface as a masked "Internal server error".
    """

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        request = getattr(context.context, "request", None)
        if context.operation_type is OperationType.SUBSCRIPTION and not isinstance(
            request, WebSocket
        ):
            raise InvalidOperationTypeError(OperationType.SUBSCRIPTION)
        yield


class _NoNulInLiterals(ValidationRule):
    def enter_string_value(self, node: StringValueNode, *_: object) -> None:
        if "\x00" in node.value:
            self.report_error(GraphQLError(NUL_MESSAGE, node))


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


NUL_MESSAGE = "Text must not contain NUL characters (\\u0000)."


class NoNulCharacters(SchemaExtension):
    """PostgreSQL cannot store the NUL character in text: refuse it up front, in the
    document's literals (a validation rule, cached with the document) and in variables."""

    def on_operation(self) -> Iterator[None]:
        self.execution_context.validation_rules = (
            *self.execution_context.validation_rules,
            _NoNulInLiterals,
        )
        yield

    def on_validate(self) -> Iterator[None]:
        if _has_nul(self.execution_context.variables):
            _refuse_request(self.execution_context, NUL_MESSAGE)
        yield


class OneOperationOrItsName(SchemaExtension):
    """A document of several operations needs ``operationName`` (the GraphQL spec's
    GetOperation). Without one, strawberry runs the first operation (it hands graphql-core
    the first operation's name): an ambiguous request could place an order nobody chose.
    """

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        # ``operation_name`` falls back to the first operation's name; what the request gave
        # is kept apart, under this name.
        given = getattr(context, "_provided_operation_name", None)
        if given is None and document is not None:
            operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
            if len(operations) > 1:
                _refuse_request(
                    context,
                    "This document holds several operations: give `operationName` to choose one.",
                )
        yield


def _refuse_request(context: ExecutionContext, message: str) -> None:
    """Refuse the request as a validation error (BAD_REQUEST), from an ``on_validate``
    listed after DocumentValidationCache, which sets the document's own errors. Raised
    from a hook instead, the error escapes the operation: over a WebSocket the client got
    no answer but ``complete``."""
    context.pre_execution_errors = [*(context.pre_execution_errors or ()), bad_request(message)]


class WebSocketReauthentication(SchemaExtension):
    """Checks a WebSocket's credential again before each operation sent over it."""

    async def on_operation(self) -> AsyncIterator[None]:
        context = self.execution_context.context
        if getattr(context, "reauthenticate", None) is not None:
            await context.reauthenticate()
        yield


class OperationMetrics(SchemaExtension):
    """Counts and times operations by type and first root field (bounded label values)."""

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        context = self.execution_context.context
        metrics = getattr(getattr(context, "services", None), "metrics", None)
        if metrics is None:
            return
        kind, field = "unknown", "unknown"
        operation = _operation(self.execution_context)
        if operation is not None:
            kind = operation.operation.value
            selection = operation.selection_set.selections[0]
            field = getattr(getattr(selection, "name", None), "value", "fragment")
            # Only names of the schema's root fields become labels: anything a client
            # invents would grow the metrics without bound.
            if field not in self._root_fields(kind):
                field = "invalid"
        result = self.execution_context.result
        outcome = "error" if result is not None and result.errors else "ok"
        metrics.observe_operation(kind, field, outcome, time.perf_counter() - started)

    def _root_fields(self, kind: str) -> Mapping[str, object]:
        schema = self.execution_context.schema._schema
        root = {
            "query": schema.query_type,
            "mutation": schema.mutation_type,
            "subscription": schema.subscription_type,
        }.get(kind)
        return root.fields if root is not None else {}


# Root mutations that change nothing services.reads holds (credentials, catalog,
# visibility, prices, restrictions, split rules, pools): the integrators' hot path.
_KEEPS_READS = frozenset({"placeOrder", "revealCodes"})


class InvalidateReads(SchemaExtension):
    """Drops the cached reads of every process after a mutation that may have changed
    them, before its answer leaves: the caller's next request sees the change."""

    def on_execute(self) -> Iterator[None]:
        yield
        context = self.execution_context
        if context.operation_type is not OperationType.MUTATION:
            return
        operation = _operation(context)
        if operation is not None and all(
            isinstance(selection, FieldNode) and selection.name.value in _KEEPS_READS
            for selection in operation.selection_set.selections
        ):
            return
        context.context.services.invalidation.invalidate()


# The validation of a document, under the schema and rules it was validated with.
_Validated = tuple[
    GraphQLSchema, DocumentNode, tuple[type[ASTValidationRule], ...], list[GraphQLError]
]


_VALIDATED: OrderedDict[int, _Validated] = OrderedDict()
_VALIDATED_MAX = 1024


class DocumentValidationCache(SchemaExtension):
    """Validates each parsed document once.

    strawberry's ValidationCache keys its LRU by the document itself, and a document's
    hash and equality walk every node of it: for an order's mutation that was a tenth of
    a millisecond on every request. ParserCache hands out the same document object for
    the same query text, so this cache keys by the object; an entry keeps its document
    alive, so no other document can take its id while the entry lasts.
    """

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        schema, document, rules = (
            context.schema._schema,
            context.graphql_document,
            context.validation_rules,
        )
        assert document is not None, "parsed before it is validated"
        key = id(document)
        entry = _VALIDATED.get(key)
        if entry is not None and entry[0] is schema and entry[1] is document and entry[2] == rules:
            _VALIDATED.move_to_end(key)
        else:
            entry = (schema, document, rules, validate_document(schema, document, rules))
            _VALIDATED[key] = entry
            if len(_VALIDATED) > _VALIDATED_MAX:
                _VALIDATED.popitem(last=False)
        context.pre_execution_errors = entry[3]
        yield


def _operation(context: ExecutionContext) -> OperationDefinitionNode | None:
    document = context.graphql_document
    if document is None:
        return None
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode) and (
            context.operation_name is None
            or (definition.name and definition.name.value == context.operation_name)
        ):
            return definition
    return None


def _fixed_rules(extension: AddValidationRules) -> Callable[[], SchemaExtension]:
    """The extension's validation rules, made once.

    QueryDepthLimiter and MaxAliasesLimiter build a new rule class each time they are
    created; the rule classes are part of ValidationCache's key, so one set per request
    would make every request miss the cache (and fill it with dead entries).
    """
    return partial(AddValidationRules, list(extension.validation_rules))


@dataclass(frozen=True, slots=True)
class Limits:
    """What one document may ask for: the settings the schema is built with."""

    max_tokens: int
    max_query_depth: int
    max_aliases: int

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(settings.max_tokens, settings.max_query_depth, settings.max_aliases)


def extensions(limits: Limits) -> list[Callable[[], SchemaExtension]]:
    """Factories, one extension set per request; the caches live at module level."""
    return [
        partial(MaxTokensLimiter, max_token_count=limits.max_tokens),
        partial(CachedParser, maxsize=1024),
        SubscriptionsOverWebSocket,
        WebSocketReauthentication,
        _fixed_rules(QueryDepthLimiter(max_depth=limits.max_query_depth)),
        _fixed_rules(MaxAliasesLimiter(max_alias_count=limits.max_aliases)),
        DocumentValidationCache,
        # These two refuse requests after the cache set the document's errors.
        NoNulCharacters,
        OneOperationOrItsName,
        partial(MaskErrors, should_mask_error=_must_mask, error_message=MASKED_MESSAGE),
        InvalidateReads,
        OperationMetrics,
    ]
