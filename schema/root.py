"""The root types and the Schema object."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncGenerator

import strawberry
from graphql import GraphQLError
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from resolvers import channels, staff
from schema import input_conversion
from schema.audit import AuditQuery
from schema.catalog import CatalogMutation, CatalogQuery
from schema.channels import Channel, CreateChannelInput, CreateChannelPayload
from schema.code_changes import CodeChangesMutation
from schema.commerce import CommerceMutation, CommerceQuery
from schema.context import Info
from schema.deliveries import DeliveriesMutation, DeliveriesQuery
from schema.extensions import Limits, extensions
from schema.ledger import LedgerMutation, LedgerQuery
from schema.orders import OrdersMutation, OrdersQuery, OrdersSubscription
from schema.pools import PoolsMutation, PoolsQuery
from schema.redemption import RedemptionMutation, RedemptionQuery
from schema.risk import RiskMutation, RiskQuery
from schema.settlement import SettlementMutation, SettlementQuery
from schema.staff import (
    CreateUserInput,
    CreateUserPayload,
    IssueApiKeyInput,
    IssueApiKeyPayload,
    LoginInput,
    LoginPayload,
    RevokeApiKeyInput,
    RevokeApiKeyPayload,
    Viewer,
)
from schema.stock import StockSubscription
from settings import Settings


@strawberry.type
class AccessQuery:
    @strawberry.field(description="The caller: its channel and role.")
    async def viewer(self, info: Info) -> Viewer:
        return await staff.viewer(info)

    @strawberry.field(
        description="A channel of the caller's subtree; the caller's own when `id` is omitted."
    )
    async def channel(self, info: Info, id: strawberry.ID | None = None) -> Channel | None:
        return await channels.channel(info, id)


@strawberry.type
class AccessMutation:
    @strawberry.mutation(description="Exchange e-mail and password for a session token.")
    async def login(self, info: Info, input: LoginInput) -> LoginPayload:
        return await staff.login(info, input)

    @strawberry.mutation(description="Add a channel below one of the caller's subtree.")
    async def create_channel(self, info: Info, input: CreateChannelInput) -> CreateChannelPayload:
        return await channels.create_channel(info, input)

    @strawberry.mutation(description="Add a staff user to a channel of the caller's subtree.")
    async def create_user(self, info: Info, input: CreateUserInput) -> CreateUserPayload:
        return await staff.create_user(info, input)

    @strawberry.mutation(description="Create an API key; its secret is in this response only.")
    async def issue_api_key(self, info: Info, input: IssueApiKeyInput) -> IssueApiKeyPayload:
        return await staff.issue_api_key(info, input)

    @strawberry.mutation(description="Revoke an API key; it fails from the next request on.")
    async def revoke_api_key(self, info: Info, input: RevokeApiKeyInput) -> RevokeApiKeyPayload:
        return await staff.revoke_api_key(info, input)


@strawberry.type
class AccessSubscription:
    @strawberry.subscription(description="Channels created in the caller's subtree.")
    async def channel_created(self, info: Info) -> AsyncGenerator[Channel, None]:
        async for channel in channels.channel_created(info):
            yield channel


log = logging.getLogger("quanyi.graphql")

# Each domain contributes its own root classes; the schema merges them.
Query = merge_types(
    "Query",
    (
        AccessQuery,
        CatalogQuery,
        PoolsQuery,
        SettlementQuery,
        CommerceQuery,
        LedgerQuery,
        OrdersQuery,
        RiskQuery,
        DeliveriesQuery,
        AuditQuery,
        RedemptionQuery,
    ),
)
Mutation = merge_types(
    "Mutation",
    (
        AccessMutation,
        CatalogMutation,
        PoolsMutation,
        SettlementMutation,
        CommerceMutation,
        LedgerMutation,
        OrdersMutation,
        RiskMutation,
        DeliveriesMutation,
        CodeChangesMutation,
        RedemptionMutation,
    ),
)
Subscription = merge_types(
    "Subscription", (AccessSubscription, StockSubscription, OrdersSubscription)
)


class QuanyiSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log what went wrong on our side, never what the client sent.

        strawberry's default logs each error with the lines of the document around it,
        and input errors quote the values given: codes, passwords. Errors that are the
        client's (syntax, validation, our request errors) are its answer, not our log.
        """
        for error in errors:
            original = error.original_error
            if original is None or isinstance(original, GraphQLError):
                continue
            log.error(
                "unexpected %s at %s",
                type(original).__name__,
                ".".join(map(str, error.path or [])),
                exc_info=(type(original), original, original.__traceback__),
            )


def make_schema(settings: Settings) -> strawberry.Schema:
    """The schema under these settings' limits. It holds nothing of an app, so the apps
    of one process share it (the tests make hundreds; each build takes a fifth of a
    second)."""
    return _schema(Limits.of(settings))


@functools.cache
def _schema(limits: Limits) -> strawberry.Schema:
    schema = QuanyiSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions(limits),
    )
    input_conversion.install(schema)
    return schema
