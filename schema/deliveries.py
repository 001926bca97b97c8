"""Delivery: channels' webhook endpoints and their root fields.

An order's deliveries themselves are ``Order.deliveries`` (``schema.orders.Delivery``).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from persistence.webhook_endpoints import EndpointRecord
from schema import ids
from schema.context import Info
from schema.errors import UserError

if TYPE_CHECKING:
    from schema.channels import Channel


@strawberry.enum(description="The message format an endpoint receives.")
class WebhookKind(enum.Enum):
    GENERIC = strawberry.enum_value(
        "GENERIC",
        description="The event as JSON, signed per the Standard Webhooks spec "
        "(webhook-id, webhook-timestamp, webhook-signature).",
    )
    WECOM = strawberry.enum_value(
        "WECOM", description="A WeCom (企业微信) group robot: markdown; the key is in the URL."
    )
    DINGTALK = strawberry.enum_value(
        "DINGTALK",
        description="A DingTalk (钉钉) group robot: markdown, signed with the robot's SEC... "
        "secret when one is given.",
    )


@strawberry.type(
    description="Where a channel's events are posted. Its signing secret is never shown, "
    "and its URL only with the query's values masked (robots' keys live there)."
)
class WebhookEndpoint:
    record: strawberry.Private[EndpointRecord]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return ids.encode("WebhookEndpoint", self.record.id)

    @strawberry.field
    def url(self) -> str:
        return self.record.display_url

    @strawberry.field
    def kind(self) -> WebhookKind:
        return WebhookKind(self.record.kind)

    @strawberry.field(description="The events it receives, such as `order.paid`.")
    def events(self) -> list[str]:
        return self.record.events

    @strawberry.field(description="False once disabled, by a person or by an HTTP 410 answer.")
    def active(self) -> bool:
        return self.record.disabled_at is None

    @strawberry.field
    def disabled_at(self) -> datetime | None:
        return self.record.disabled_at

    @strawberry.field
    def disabled_reason(self) -> str | None:
        return self.record.disabled_reason

    @strawberry.field
    def created_at(self) -> datetime:
        return self.record.created_at

    @strawberry.field
    async def channel(self, info: Info) -> Annotated[Channel, strawberry.lazy("schema.channels")]:
        from resolvers.channels import resolve_channel_of

        return await resolve_channel_of(info, self.record.channel_id)


@strawberry.input
class CreateWebhookEndpointInput:
    url: str = strawberry.field(description="http or https; a public address.")
    kind: WebhookKind = WebhookKind.GENERIC
    events: list[str] | None = strawberry.field(
        default=None,
        description="Defaults to `order.paid`; `code.frozen` tells of codes frozen at a"
        " redemption outside their channel's territory.",
    )
    secret: str | None = strawberry.field(
        default=None,
        description="GENERIC: a `whsec_` secret, or omitted to have one made. DINGTALK: the "
        "robot's `SEC...` secret, if it signs. WECOM: none.",
    )
    channel_id: strawberry.ID | None = strawberry.field(
        default=None, description="The caller's own channel when omitted."
    )


@strawberry.type
class CreateWebhookEndpointPayload:
    webhook_endpoint: WebhookEndpoint | None = None
    secret: str | None = strawberry.field(
        default=None,
        description="The signing secret made for a GENERIC endpoint, shown in this response "
        "only; null when the input gave one.",
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class DisableWebhookEndpointInput:
    webhook_endpoint_id: strawberry.ID
    reason: str | None = None


@strawberry.type
class DisableWebhookEndpointPayload:
    webhook_endpoint: WebhookEndpoint | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class DeliveriesQuery:
    @strawberry.field(
        description="Owners and operators: the webhook endpoints of a channel of their "
        "subtree (their own when `channelId` is omitted)."
    )
    async def webhook_endpoints(
        self, info: Info, channel_id: strawberry.ID | None = None
    ) -> list[WebhookEndpoint]:
        from resolvers.deliveries import webhook_endpoints

        return await webhook_endpoints(info, channel_id)


@strawberry.type
class DeliveriesMutation:
    @strawberry.mutation(
        description="Register an endpoint that receives the channel's events (its paid "
        "orders' codes) by webhook."
    )
    async def create_webhook_endpoint(
        self, info: Info, input: CreateWebhookEndpointInput
    ) -> CreateWebhookEndpointPayload:
        from resolvers.deliveries import create_webhook_endpoint

        return await create_webhook_endpoint(info, input)

    @strawberry.mutation(
        description="Stop posting to an endpoint; deliveries queued for it go DEAD. "
        "Disabling it again changes nothing."
    )
    async def disable_webhook_endpoint(
        self, info: Info, input: DisableWebhookEndpointInput
    ) -> DisableWebhookEndpointPayload:
        from resolvers.deliveries import disable_webhook_endpoint

        return await disable_webhook_endpoint(info, input)
