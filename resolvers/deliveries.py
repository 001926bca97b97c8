"""Deliveries as the API shows them, and channels' webhook endpoints."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from domain.access import Action
from domain.orders import DeliveryMethod, OrderStatus
from integrations import webhooks
from integrations.targets import TargetRefused, check_target
from persistence import deliveries
from persistence import webhook_endpoints as endpoints
from persistence.catalog import RetiredKey
from persistence.deliveries import DeliveryRecord
from persistence.orders import OrderRecord
from persistence.webhook_endpoints import EndpointTarget
from resolvers.catalog import SEAL_ATTEMPTS
from resolvers.channels import channel_not_found, find_channel, forbidden
from resolvers.links import link_url
from schema import ids
from schema.context import Info, require_viewer
from schema.deliveries import (
    CreateWebhookEndpointInput,
    CreateWebhookEndpointPayload,
    DisableWebhookEndpointInput,
    DisableWebhookEndpointPayload,
    WebhookEndpoint,
    WebhookKind,
)
from schema.errors import ErrorCode, UserError, forbidden_request, user_error
from schema.orders import Delivery, DeliveryStatus

MAX_URL = 2048
MAX_SECRET = 200
MAX_REASON = 500
# Every active endpoint gets a message per paid order: a bound on the fan-out.
ENDPOINT_LIMIT = 20
EVENTS = frozenset({webhooks.ORDER_PAID, webhooks.CODE_FROZEN})
_MASK = "***"


# --- an order's deliveries ----------------------------------------------------------------


async def deliveries_of(info: Info, record: OrderRecord) -> list[Delivery]:
    """The order's deliveries, first the API answer (PAID and REFUNDED orders gave their
    codes in placeOrder's payload), then the queued ones in the order they were made."""
    viewer = require_viewer(info)
    services = info.context.services
    shown: list[Delivery] = []
    if record.status in (OrderStatus.PAID, OrderStatus.REFUNDED):
        shown.append(
            Delivery(method=DeliveryMethod.API, status=DeliveryStatus.DELIVERED, attempts=1)
        )
    # Only the buyer gets the link: it shows the codes.
    owner = viewer.channel_id == record.channel_id
    for row in await deliveries.of_order(services.db, record.id):
        url = None
        if row.method == DeliveryMethod.LINK and owner:
            url = link_url(services.settings.public_url, services.session_key, row.id)
        shown.append(_delivery(row, url))
    return shown


def _delivery(row: DeliveryRecord, url: str | None) -> Delivery:
    waiting = row.status in ("PENDING", "SENDING")
    if row.status == "DELIVERED":
        status = DeliveryStatus.DELIVERED
    elif row.status == "DEAD":
        status = DeliveryStatus.DEAD
    elif row.last_error is not None:
        status = DeliveryStatus.FAILED
    else:
        status = DeliveryStatus.PENDING
    return Delivery(
        method=DeliveryMethod(row.method),
        status=status,
        attempts=row.attempts,
        last_error=row.last_error,
        url=url,
        target=_masked_target(row.target),
        delivered_at=row.delivered_at,
        next_attempt_at=row.next_attempt_at if waiting else None,
    )


def _masked_target(target: str | None) -> str | None:
    """Enough of an address or number to tell which one it was."""
    if target is None:
        return None
    local, at, domain = target.rpartition("@")
    if at:
        return f"{local[:1]}{_MASK}@{domain}"
    return _MASK + target[-4:]


# --- webhook endpoints ------------------------------------------------------------------


async def webhook_endpoints(info: Info, channel_id: str | None) -> list[WebhookEndpoint]:
    viewer = require_viewer(info)
    if not viewer.may(Action.MANAGE_CHANNELS):
        raise forbidden_request("Your role may not manage webhook endpoints.")
    channel = await find_channel(info, viewer, channel_id)
    if channel is None:
        return []
    rows = await endpoints.of_channel(info.context.services.db, channel.id)
    return [WebhookEndpoint(record=r) for r in rows]


async def create_webhook_endpoint(
    info: Info, input: CreateWebhookEndpointInput
) -> CreateWebhookEndpointPayload:
    viewer = require_viewer(info)
    channel = await find_channel(info, viewer, input.channel_id)
    if channel is None:
        return CreateWebhookEndpointPayload(user_errors=[channel_not_found("channelId")])
    if not viewer.may(Action.MANAGE_CHANNELS):
        return CreateWebhookEndpointPayload(user_errors=[forbidden("manage webhook endpoints")])

    url = input.url.strip()
    kind = WebhookKind(input.kind)
    events = list(dict.fromkeys(input.events or [webhooks.ORDER_PAID]))
    errors = [
        e
        for e in (_url_problem(url), _events_problem(events), _secret_problem(kind, input.secret))
        if e
    ]
    services = info.context.services
    if not errors:
        try:
            await check_target(url, allow_private=services.settings.allow_private_targets)
        except TargetRefused as refused:
            errors.append(_invalid(f"This URL may not be called: {refused.reason}.", "url"))
    if errors:
        return CreateWebhookEndpointPayload(user_errors=errors)

    made = webhooks.new_secret() if kind is WebhookKind.GENERIC and not input.secret else None
    target = EndpointTarget(url=url, secret=made or input.secret or None)
    for attempt in range(1, SEAL_ATTEMPTS + 1):
        # Another process may have rotated the keys: seal with the key active now.
        await services.keyring.reload(services.db)
        try:
            record = await endpoints.insert(
                services.db,
                channel.id,
                kind.name,
                _display_url(url),
                events,
                endpoints.seal(services.keyring, target),
                ENDPOINT_LIMIT,
            )
        except RetiredKey:
            if attempt == SEAL_ATTEMPTS:
                raise
            continue
        if record is None:
            return CreateWebhookEndpointPayload(
                user_errors=[
                    _invalid(
                        f"A channel has at most {ENDPOINT_LIMIT} active webhook endpoints; "
                        "disable one first."
                    )
                ]
            )
        return CreateWebhookEndpointPayload(
            webhook_endpoint=WebhookEndpoint(record=record), secret=made
        )
    raise AssertionError("unreachable")


async def disable_webhook_endpoint(
    info: Info, input: DisableWebhookEndpointInput
) -> DisableWebhookEndpointPayload:
    viewer = require_viewer(info)
    db = info.context.services.db
    key = ids.decode("WebhookEndpoint", input.webhook_endpoint_id)
    found = await endpoints.get_in_subtree(db, key, viewer.channel_path) if key else None
    if found is None:
        return DisableWebhookEndpointPayload(
            user_errors=[
                user_error(ErrorCode.NOT_FOUND, "No such webhook endpoint.", "webhookEndpointId")
            ]
        )
    if not viewer.may(Action.MANAGE_CHANNELS):
        return DisableWebhookEndpointPayload(user_errors=[forbidden("manage webhook endpoints")])
    reason = (input.reason or "").strip() or "Disabled by the channel."
    if len(reason) > MAX_REASON:
        return DisableWebhookEndpointPayload(
            user_errors=[_invalid(f"Give a reason of at most {MAX_REASON} characters.", "reason")]
        )
    record = await endpoints.disable(db, found.id, reason)
    return DisableWebhookEndpointPayload(webhook_endpoint=WebhookEndpoint(record=record))


def _invalid(message: str, field: str | None = None) -> UserError:
    return user_error(ErrorCode.INVALID_INPUT, message, field)


def _url_problem(url: str) -> UserError | None:
    if not url:
        return _invalid("Give the endpoint's URL.", "url")
    if len(url) > MAX_URL:
        return _invalid(f"Give a URL of at most {MAX_URL} characters.", "url")
    if any(ch.isspace() for ch in url):
        return _invalid("A URL has no spaces or line breaks.", "url")
    return None


def _events_problem(events: list[str]) -> UserError | None:
    unknown = [e for e in events if e not in EVENTS]
    if unknown:
        return _invalid(
            f"Unknown events: {', '.join(unknown[:5])}. Known: {', '.join(sorted(EVENTS))}.",
            "events",
        )
    return None


def _secret_problem(kind: WebhookKind, secret: str | None) -> UserError | None:
    if secret is None:
        return None
    if kind is WebhookKind.WECOM:
        return _invalid("A WeCom robot takes no secret: its key is in the URL.", "secret")
    if not secret or len(secret) > MAX_SECRET or any(ch.isspace() for ch in secret):
        return _invalid(
            f"Give a secret of 1 to {MAX_SECRET} characters without spaces, or none.", "secret"
        )
    if kind is WebhookKind.DINGTALK:
        if not secret.startswith("SEC"):
            return _invalid("A DingTalk robot's secret starts with SEC.", "secret")
        return None
    try:
        webhooks.sign_generic(secret, "check", 0, b"")
    except ValueError as problem:
        return _invalid(f"{str(problem).capitalize()}.", "secret")
    return None


def _display_url(url: str) -> str:
    """The URL without what may be a credential: user info and the query's values."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    user = f"{_MASK}@" if "@" in parts.netloc else ""
    query = "&".join(
        f"{name}={_MASK}" for name, _ in parse_qsl(parts.query, keep_blank_values=True)
    )
    shown = f"{parts.scheme}://{user}{host}{parts.path}"
    return f"{shown}?{query}" if query else shown
