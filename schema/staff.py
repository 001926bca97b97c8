"""Who calls the API: staff users, API keys, sessions and the viewer."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from domain.access import Role as DomainRole
from persistence.api_keys import ApiKeyRecord
from persistence.users import UserRecord
from schema import ids
from schema.context import Info
from schema.errors import UserError

if TYPE_CHECKING:
    from schema.channels import Channel

Role = strawberry.enum(DomainRole, description="What a staff user or an API key may do.")

ChannelType = Annotated["Channel", strawberry.lazy("schema.channels")]


@strawberry.type(description="A person who works in a channel's back office.")
class User:
    record: strawberry.Private[UserRecord]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return ids.encode("User", self.record.id)

    @strawberry.field
    def email(self) -> str:
        return self.record.email

    @strawberry.field
    def role(self) -> Role:  # type: ignore[valid-type]
        return self.record.role

    @strawberry.field
    def created_at(self) -> datetime:
        return self.record.created_at

    @strawberry.field
    async def channel(self, info: Info) -> ChannelType:
        from resolvers.channels import resolve_channel_of

        return await resolve_channel_of(info, self.record.channel_id)


@strawberry.type(description="A channel's key for integrations. Its secret is shown once.")
class ApiKey:
    record: strawberry.Private[ApiKeyRecord]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return ids.encode("ApiKey", self.record.id)

    @strawberry.field
    def name(self) -> str:
        return self.record.name

    @strawberry.field
    def role(self) -> Role:  # type: ignore[valid-type]
        return self.record.role

    @strawberry.field(description="The start of the key, to tell keys apart; not a secret.")
    def hint(self) -> str:
        return f"qk_{self.record.id}_…"

    @strawberry.field
    def created_at(self) -> datetime:
        return self.record.created_at

    @strawberry.field
    def revoked_at(self) -> datetime | None:
        return self.record.revoked_at

    @strawberry.field
    async def channel(self, info: Info) -> ChannelType:
        from resolvers.channels import resolve_channel_of

        return await resolve_channel_of(info, self.record.channel_id)


@strawberry.type(description="The caller: the channel it acts for and with which role.")
class Viewer:
    role: Role  # type: ignore[valid-type]

    # Each read only when asked for: `viewer { role }` is what clients send most.
    @strawberry.field
    async def channel(self, info: Info) -> ChannelType:
        from resolvers.staff import viewer_channel

        return await viewer_channel(info)

    @strawberry.field
    async def user(self, info: Info) -> User | None:
        from resolvers.staff import viewer_user

        return await viewer_user(info)

    @strawberry.field
    async def api_key(self, info: Info) -> ApiKey | None:
        from resolvers.staff import viewer_api_key

        return await viewer_api_key(info)


@strawberry.input
class LoginInput:
    email: str
    password: str


@strawberry.type
class LoginPayload:
    token: str | None = None
    expires_at: datetime | None = None
    user: User | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class CreateUserInput:
    email: str
    password: str
    role: Role  # type: ignore[valid-type]
    channel_id: strawberry.ID | None = strawberry.field(
        default=None, description="Defaults to the caller's own channel."
    )
    merchant_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="For a VERIFIER: the merchant it redeems for, managed by the channel.",
    )


@strawberry.type
class CreateUserPayload:
    user: User | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class IssueApiKeyInput:
    name: str
    channel_id: strawberry.ID | None = strawberry.field(
        default=None, description="Defaults to the caller's own channel."
    )
    role: Role = strawberry.field(  # type: ignore[valid-type]
        default=DomainRole.OPERATOR, description="Granted by owners only."
    )
    merchant_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="For a VERIFIER: the merchant it redeems for, managed by the channel.",
    )


@strawberry.type
class IssueApiKeyPayload:
    secret: str | None = strawberry.field(
        default=None, description="The key itself. Shown only in this response; store it."
    )
    api_key: ApiKey | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class RevokeApiKeyInput:
    api_key_id: strawberry.ID


@strawberry.type
class RevokeApiKeyPayload:
    api_key: ApiKey | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)
