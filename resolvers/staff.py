"""Staff users, API keys, login and the viewer."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime

from domain.access import Action, Principal, Role
from domain.channels import clean_name
from domain.credentials import (
    dummy_password_check,
    format_api_key,
    hash_password,
    new_api_key_secret,
    session_expiry,
    sign_session,
    verify_password,
)
from domain.staff import check_password, clean_email
from persistence import api_keys, channels, merchants, users
from persistence.channels import ChannelRecord
from resolvers.authentication import principal_for_user
from resolvers.channels import channel_not_found, find_channel, forbidden, invalid
from schema import ids
from schema.channels import Channel
from schema.context import Info, require_viewer
from schema.errors import ErrorCode, UserError, forbidden_request, user_error
from schema.pagination import Connection, connection, window
from schema.staff import (
    ApiKey,
    CreateUserInput,
    CreateUserPayload,
    IssueApiKeyInput,
    IssueApiKeyPayload,
    LoginInput,
    LoginPayload,
    RevokeApiKeyInput,
    RevokeApiKeyPayload,
    User,
    Viewer,
)


async def viewer(info: Info) -> Viewer:
    return Viewer(role=require_viewer(info).role)


async def viewer_channel(info: Info) -> Channel:
    principal = require_viewer(info)
    record = await channels.get_in_subtree(
        info.context.services.db, principal.channel_id, principal.channel_path
    )
    assert record is not None, "a principal's channel is never deleted"
    return Channel(record=record)


async def viewer_user(info: Info) -> User | None:
    principal = require_viewer(info)
    if principal.user_id is None:
        return None
    record = await users.get_in_subtree(
        info.context.services.db, principal.user_id, principal.channel_path
    )
    return User(record=record) if record else None


async def viewer_api_key(info: Info) -> ApiKey | None:
    principal = require_viewer(info)
    if principal.api_key_id is None:
        return None
    record = await api_keys.get_in_subtree(
        info.context.services.db, principal.api_key_id, principal.channel_path
    )
    return ApiKey(record=record) if record else None


async def login(info: Info, input: LoginInput) -> LoginPayload:
    services = info.context.services
    settings = services.settings
    email = input.email.strip().lower()
    throttle_key = "quanyi:login-attempts:" + hashlib.sha256(email.encode()).hexdigest()
    # Count the attempt before checking it, so that parallel guesses cannot all slip in
    # under the limit; a success clears the count.
    async with services.redis.pipeline(transaction=True) as pipe:
        pipe.incr(throttle_key)
        pipe.expire(throttle_key, settings.login_window_seconds, nx=True)
        attempts, _ = await pipe.execute()
    if int(attempts) > settings.login_attempts:
        return LoginPayload(
            user_errors=[
                user_error(ErrorCode.RATE_LIMITED, "Too many failed logins; try again later.")
            ]
        )

    found = await users.for_login(services.db, email)
    if found is None:
        await asyncio.to_thread(dummy_password_check, input.password)
        ok = False
    else:
        ok = await asyncio.to_thread(verify_password, found[1], input.password)
    if found is None or not ok:
        return LoginPayload(
            user_errors=[
                user_error(ErrorCode.INVALID_CREDENTIALS, "Wrong e-mail address or password.")
            ]
        )

    await services.redis.delete(throttle_key)
    user_id = found[0]
    expires_at = session_expiry(datetime.now(UTC), settings.session_ttl)
    # The rest of this response is read as the user who just logged in.
    principal = await principal_for_user(services.db, user_id)
    assert principal is not None
    info.context.viewer = principal
    user = await users.get_in_subtree(services.db, user_id, principal.channel_path)
    assert user is not None
    return LoginPayload(
        token=sign_session(user_id, expires_at, services.session_key),
        expires_at=expires_at,
        user=User(record=user),
    )


async def create_user(info: Info, input: CreateUserInput) -> CreateUserPayload:
    viewer = require_viewer(info)
    target = await find_channel(info, viewer, input.channel_id)
    if target is None:
        return CreateUserPayload(user_errors=[channel_not_found("channelId")])
    if not viewer.may(Action.MANAGE_STAFF):
        return CreateUserPayload(user_errors=[forbidden("create users")])
    role = Role(input.role)
    if not viewer.may_grant(role):
        return CreateUserPayload(user_errors=[forbidden(f"grant the role {role.value}")])

    email, email_problem = clean_email(input.email)
    problems = [p for p in (email_problem, check_password(input.password)) if p]
    if problems:
        return CreateUserPayload(user_errors=[invalid(p) for p in problems])
    merchant_id, wrong = await _merchant_of(info, viewer, target, role, input.merchant_id)
    if wrong:
        return CreateUserPayload(user_errors=[wrong])

    password_hash = await asyncio.to_thread(hash_password, input.password)
    record = await users.insert(
        info.context.services.db, target.id, email, password_hash, role, merchant_id
    )
    if record is None:
        return CreateUserPayload(
            user_errors=[
                user_error(ErrorCode.EMAIL_TAKEN, "A user with this e-mail exists.", "email")
            ]
        )
    return CreateUserPayload(user=User(record=record))


async def _merchant_of(
    info: Info,
    viewer: Principal,
    target: ChannelRecord,
    role: Role,
    merchant_id: str | None,
) -> tuple[int | None, UserError | None]:
    """The merchant a new verifier redeems for: one the target channel manages."""
    if merchant_id is None:
        return None, None
    if role is not Role.VERIFIER:
        return None, user_error(
            ErrorCode.INVALID_INPUT, "Only a VERIFIER redeems for a merchant.", "merchantId"
        )
    key = ids.decode("Merchant", merchant_id)
    found = (
        await merchants.get_in_subtree(info.context.services.db, key, viewer.channel_path)
        if key
        else None
    )
    if found is None or found.channel_id != target.id:
        return None, user_error(
            ErrorCode.NOT_FOUND, "No such merchant managed by this channel.", "merchantId"
        )
    return found.id, None


async def issue_api_key(info: Info, input: IssueApiKeyInput) -> IssueApiKeyPayload:
    viewer = require_viewer(info)
    target = await find_channel(info, viewer, input.channel_id)
    if target is None:
        return IssueApiKeyPayload(user_errors=[channel_not_found("channelId")])
    if not viewer.may(Action.MANAGE_STAFF):
        return IssueApiKeyPayload(user_errors=[forbidden("issue API keys")])
    role = Role(input.role)
    if not viewer.may_grant(role):
        return IssueApiKeyPayload(user_errors=[forbidden(f"grant the role {role.value}")])
    name, problem = clean_name(input.name)
    if problem:
        return IssueApiKeyPayload(user_errors=[invalid(problem)])
    merchant_id, wrong = await _merchant_of(info, viewer, target, role, input.merchant_id)
    if wrong:
        return IssueApiKeyPayload(user_errors=[wrong])

    secret, secret_hash = new_api_key_secret()
    record = await api_keys.insert(
        info.context.services.db, target.id, name, role, secret_hash, merchant_id
    )
    return IssueApiKeyPayload(
        secret=format_api_key(record.id, secret), api_key=ApiKey(record=record)
    )


async def revoke_api_key(info: Info, input: RevokeApiKeyInput) -> RevokeApiKeyPayload:
    viewer = require_viewer(info)
    db = info.context.services.db
    key_id = ids.decode("ApiKey", input.api_key_id)
    record = await api_keys.get_in_subtree(db, key_id, viewer.channel_path) if key_id else None
    if record is None:
        return RevokeApiKeyPayload(
            user_errors=[user_error(ErrorCode.NOT_FOUND, "No such API key.", "apiKeyId")]
        )
    if not viewer.may(Action.MANAGE_STAFF):
        return RevokeApiKeyPayload(user_errors=[forbidden("revoke API keys")])
    return RevokeApiKeyPayload(api_key=ApiKey(record=await api_keys.revoke(db, record.id)))


def _require_staff_reader(info: Info) -> None:
    if not require_viewer(info).may(Action.MANAGE_STAFF):
        raise forbidden_request("Only owners may list a channel's users and API keys.")


async def resolve_channel_users(
    info: Info, record: ChannelRecord, first: int | None, after: str | None
) -> Connection[User]:
    _require_staff_reader(info)
    win = window(first, after, info.context.services.settings.max_page_size)
    rows = await users.page_of_channel(
        info.context.services.db, record.id, win.after_key, win.limit
    )
    return connection(rows, win, key=lambda r: r.id, node=lambda r: User(record=r))


async def resolve_channel_api_keys(
    info: Info, record: ChannelRecord, first: int | None, after: str | None
) -> Connection[ApiKey]:
    _require_staff_reader(info)
    win = window(first, after, info.context.services.settings.max_page_size)
    rows = await api_keys.page_of_channel(
        info.context.services.db, record.id, win.after_key, win.limit
    )
    return connection(rows, win, key=lambda r: r.id, node=lambda r: ApiKey(record=r))
