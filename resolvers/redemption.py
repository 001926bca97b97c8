"""Redemption (核销): merchants, their verifiers' redemptions, and the anti-窜货 freeze.

``redeemCode`` in order: the caller is a merchant's verifier; a retried key gets its first
answer; the code by its fingerprint (or a scanned link's token) and the checks of
``domain.redemption``; the guessing defence (wrong codes and passwords counted in the
verifier's and the device's windows); then one use, written with the redemption and its
REDEEMED event. A code sold through a channel the merchant is
not authorised for is frozen through its pool's actor, and its channel and the platform
are told by webhook.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from datetime import UTC, datetime

from domain.access import Action, Principal, Role
from domain.catalog import may_change_catalog
from domain.channels import clean_name, clean_regions, region_within
from domain.codes import password_aad
from domain.orders import MAX_KEY
from domain.redemption import GUESSES, MESSAGES, Candidate, Refusal, check
from domain.risk import NewRiskEvent, Outcome, Subject, SubjectKind
from integrations.webhooks import CODE_FROZEN
from persistence import catalog, channels, deliveries, merchants, redemptions
from persistence.code_states import MoveEvent
from persistence.merchants import MerchantRecord
from persistence.redemptions import CodeForRedemption, KeyTaken, RedemptionRecord
from resolvers.catalog import catalog_forbidden
from resolvers.channels import channel_not_found, find_channel, forbidden, invalid
from resolvers.links import delivery_of
from schema import ids
from schema.catalog import Product
from schema.channels import Channel
from schema.context import Info, require_viewer
from schema.errors import ErrorCode, UserError, bad_request, user_error
from schema.pagination import Connection, connection, window
from schema.redemption import (
    CreateMerchantInput,
    CreateMerchantPayload,
    Merchant,
    RedeemCodeInput,
    RedeemCodePayload,
    Redemption,
    RedemptionFilter,
    SetMerchantChannelsInput,
    SetMerchantChannelsPayload,
    SetProductRedeemableInput,
    SetProductRedeemablePayload,
)

_NEWEST = 2**62
# Stands in for a missing code's password, so a wrong code costs what a wrong password does.
_NOBODY = b"\x00" * 32


def _refused(refusal: Refusal, field: str | None = None) -> RedeemCodePayload:
    return RedeemCodePayload(
        user_errors=[user_error(ErrorCode(refusal.value), MESSAGES[refusal], field)]
    )


# --- redeemCode -------------------------------------------------------------------------


async def redeem_code(info: Info, input: RedeemCodeInput) -> RedeemCodePayload:
    viewer = require_viewer(info)
    services = info.context.services
    db = services.db
    merchant_id = viewer.merchant_id
    if viewer.role is not Role.VERIFIER or merchant_id is None:
        return RedeemCodePayload(
            user_errors=[user_error(ErrorCode.FORBIDDEN, "Only a merchant's verifiers redeem.")]
        )
    if input.merchant_id is not None and ids.decode("Merchant", input.merchant_id) != merchant_id:
        return RedeemCodePayload(
            user_errors=[
                user_error(
                    ErrorCode.FORBIDDEN, "A verifier redeems for its merchant.", "merchantId"
                )
            ]
        )
    key = input.idempotency_key.strip()
    if not 1 <= len(key) <= MAX_KEY:
        return RedeemCodePayload(
            user_errors=[
                user_error(
                    ErrorCode.INVALID_INPUT,
                    f"Give a key of 1 to {MAX_KEY} characters.",
                    "idempotencyKey",
                )
            ]
        )
    if (input.code is None) == (input.token is None):
        return RedeemCodePayload(
            user_errors=[
                user_error(ErrorCode.INVALID_INPUT, "Give either a code or a link's token.")
            ]
        )
    earlier = await redemptions.by_key(db, merchant_id, key)
    if earlier is not None:
        return _replay(earlier, None)

    actor = viewer.actor
    windows = _guess_windows(actor, input.device_id)
    code, password_ok = await _find(info, input)
    merchant = await merchants.get(db, merchant_id)
    assert merchant is not None, "a verifier's merchant is never deleted"
    refusal = check(await _candidate(info, code, password_ok, merchant, input.region), _now())
    # A wrong guess is counted before it is answered, so that guesses sent at once (as
    # aliases of one request) are counted one by one; once the window is full nothing is
    # answered, not even a right code, so the answers stop telling anything.
    full = await _full_window(info, windows, counting=refusal in GUESSES)
    if full is not None:
        await services.risk.record(
            NewRiskEvent(
                full,
                Outcome.BLOCK,
                "Too many wrong codes or passwords: redemptions refused for a while.",
                merchant.channel_id,
                context={"merchantId": ids.encode("Merchant", merchant_id)},
            )
        )
        return RedeemCodePayload(
            user_errors=[
                user_error(
                    ErrorCode.RATE_LIMITED,
                    "Too many wrong codes from this verifier or device; try again later.",
                )
            ]
        )
    if refusal is Refusal.CHANNEL_NOT_AUTHORIZED:
        assert code is not None
        await _freeze_out_of_territory(info, code, merchant_id, actor)
    if refusal is not None:
        return _refused(refusal, "code" if refusal in GUESSES and input.code else None)
    assert code is not None
    return await _use(info, code, merchant_id, key, actor, input.region)


def _replay(earlier: RedemptionRecord, code_id: int | None) -> RedeemCodePayload:
    if code_id is not None and earlier.code_id != code_id:
        return RedeemCodePayload(
            user_errors=[
                user_error(
                    ErrorCode.IDEMPOTENCY_CONFLICT,
                    "This idempotency key redeemed another code.",
                    "idempotencyKey",
                )
            ]
        )
    return RedeemCodePayload(redemption=Redemption(record=earlier))


def _guess_windows(actor: str, device_id: str | None) -> list[Subject]:
    subjects = [Subject(SubjectKind.VERIFIER, actor)]
    if device_id:
        subjects.append(Subject(SubjectKind.DEVICE, device_id[:200]))
    return subjects


async def _full_window(info: Info, subjects: list[Subject], *, counting: bool) -> Subject | None:
    """The subject whose guessing window is full (counting this guess first, when it is
    one), or None."""
    services = info.context.services
    limit = services.settings.redemption_guess_limit
    seconds = services.settings.redemption_guess_seconds
    for subject in subjects:
        key = f"guess:{subject.kind.value}:{subject.value}"
        if counting:
            if not await services.risk.hit(key, limit, seconds):
                return subject
        elif await services.risk.full(key, limit, seconds):
            return subject
    return None


async def _find(info: Info, input: RedeemCodeInput) -> tuple[CodeForRedemption | None, bool]:
    """The code and whether its password matches. A scanned link proves possession: the
    page shows the password."""
    services = info.context.services
    if input.token is not None:
        delivery = delivery_of(services.session_key, input.token)
        found = await redemptions.find_for_link(services.db, delivery) if delivery else None
        return found, True
    assert input.code is not None
    found = await redemptions.find(services.db, services.keyring.fingerprint(input.code.strip()))
    given = (input.password or "").strip().encode()
    if found is None or found.password_ciphertext is None:
        # The same comparison either way: an unknown code answers as fast as a known one.
        hmac.compare_digest(given, _NOBODY)
        return found, True
    stored = await services.keyring.decrypt(
        services.db,
        found.key_id,
        found.password_ciphertext,
        password_aad(found.fingerprint),
    )
    return found, hmac.compare_digest(given, stored.encode())


async def _candidate(
    info: Info,
    code: CodeForRedemption | None,
    password_ok: bool,
    merchant: MerchantRecord | None,
    region: str | None,
) -> Candidate | None:
    if code is None or merchant is None:
        return None
    sold = code.channel_path is not None
    authorised = sold and await merchants.authorises(
        info.context.services.db, merchant.id, code.channel_path or ""
    )
    region_ok = region is None or not merchant.regions or region_within(region, merchant.regions)
    return Candidate(
        status=code.status,
        frozen_from=code.frozen_from,
        redeemable=code.redeemable,
        sold=sold,
        password_ok=password_ok,
        valid_from=code.valid_from,
        expires_at=code.expires_at,
        region_ok=region_ok,
        authorised=authorised,
        uses_left=code.max_uses - code.uses,
    )


async def _use(
    info: Info,
    code: CodeForRedemption,
    merchant_id: int,
    key: str,
    actor: str,
    region: str | None,
) -> RedeemCodePayload:
    db = info.context.services.db
    try:
        async with db.acquire() as conn, conn.transaction():
            record = await redemptions.use(
                conn, code, merchant_id=merchant_id, key=key, actor=actor, region=region
            )
    except KeyTaken:
        twin = await redemptions.by_key(db, merchant_id, key)
        assert twin is not None, "a taken key has its redemption"
        return _replay(twin, code.id)
    if record is None:
        # Frozen, voided or used up by someone else since it was read.
        now = await redemptions.state(db, code.id)
        refusal = {"frozen": Refusal.CODE_FROZEN, "voided": Refusal.CODE_VOIDED}.get(
            now.status, Refusal.CODE_USED_UP
        )
        return _refused(refusal)
    return RedeemCodePayload(redemption=Redemption(record=record))


async def _freeze_out_of_territory(
    info: Info, code: CodeForRedemption, merchant_id: int, actor: str
) -> None:
    """窜货: the code is frozen where it stands (with its FROZEN event), and its seller and
    the platform are told. Only the platform lifts such a freeze (no channel made it)."""
    services = info.context.services
    reason = "redeemed by a merchant not authorised for its channel"
    assert code.channel_id is not None, "a sold code has its channel"
    await services.risk.record(
        NewRiskEvent(
            Subject(SubjectKind.MERCHANT, ids.encode("Merchant", merchant_id)),
            Outcome.BLOCK,
            f"Code {ids.encode('Code', code.id)} {reason} (窜货): frozen.",
            code.channel_id,
            order_id=code.order_id,
            context={"verifier": actor},
        )
    )
    await services.pools.freeze(
        code.pool_id,
        [code.id],
        MoveEvent("FROZEN", actor, {"reason": reason, "merchant_id": merchant_id}),
    )
    assert code.order_id is not None, "an authorisation is checked for sold codes only"
    assert code.channel_path is not None, "a sold code has its channel"
    root = int(code.channel_path.split(".")[0])
    seller = code.channel_id
    async with services.db.acquire() as conn, conn.transaction():
        await deliveries.notify(
            conn,
            order_id=code.order_id,
            event=CODE_FROZEN,
            event_key=str(code.id),
            channel_ids=list(dict.fromkeys([seller, root])),
            payload={
                "codeId": ids.encode("Code", code.id),
                "orderId": ids.encode("Order", code.order_id),
                "channelId": ids.encode("Channel", seller),
                "merchantId": ids.encode("Merchant", merchant_id),
                "reason": reason,
            },
        )
    services.outbox.wake()


def _now() -> datetime:
    return datetime.now(UTC)


# --- merchants --------------------------------------------------------------------------


async def create_merchant(info: Info, input: CreateMerchantInput) -> CreateMerchantPayload:
    viewer = require_viewer(info)
    owner = await find_channel(info, viewer, input.channel_id)
    if owner is None:
        return CreateMerchantPayload(user_errors=[channel_not_found("channelId")])
    if not viewer.may(Action.MANAGE_CHANNELS):
        return CreateMerchantPayload(user_errors=[forbidden("create merchants")])
    name, name_problem = clean_name(input.name)
    regions, region_problem = clean_regions(input.regions or [])
    errors = [invalid(p) for p in (name_problem, region_problem) if p]
    authorised, wrong = await _channels(info, viewer, input.authorized_channel_ids or [])
    if wrong:
        errors.append(wrong)
    if errors:
        return CreateMerchantPayload(user_errors=errors)
    async with info.context.services.db.acquire() as conn, conn.transaction():
        record = await merchants.insert(conn, owner.id, name, regions)
        await merchants.set_channels(conn, record.id, authorised)
    return CreateMerchantPayload(merchant=Merchant(record=record))


async def set_merchant_channels(
    info: Info, input: SetMerchantChannelsInput
) -> SetMerchantChannelsPayload:
    viewer = require_viewer(info)
    db = info.context.services.db
    key = ids.decode("Merchant", input.merchant_id)
    record = await merchants.get_in_subtree(db, key, viewer.channel_path) if key else None
    if record is None:
        return SetMerchantChannelsPayload(
            user_errors=[user_error(ErrorCode.NOT_FOUND, "No such merchant.", "merchantId")]
        )
    if not viewer.may(Action.MANAGE_CHANNELS):
        return SetMerchantChannelsPayload(user_errors=[forbidden("change merchants")])
    authorised, wrong = await _channels(info, viewer, input.channel_ids)
    if wrong:
        return SetMerchantChannelsPayload(user_errors=[wrong])
    async with db.acquire() as conn, conn.transaction():
        await merchants.set_channels(conn, record.id, authorised)
    return SetMerchantChannelsPayload(merchant=Merchant(record=record))


async def _channels(
    info: Info, viewer: Principal, channel_ids: Sequence[str]
) -> tuple[list[int], UserError | None]:
    """The channels an input names, all in the caller's subtree."""
    found: list[int] = []
    for i, channel_id in enumerate(channel_ids):
        record = await find_channel(info, viewer, channel_id)
        if record is None:
            return [], channel_not_found(f"channelIds.{i}")
        found.append(record.id)
    return found, None


async def merchant_channel(info: Info, record: MerchantRecord) -> Channel:
    viewer = require_viewer(info)
    found = await channels.get_in_subtree(
        info.context.services.db, record.channel_id, viewer.channel_path
    )
    assert found is not None, "a merchant is seen from its channel's subtree only"
    return Channel(record=found)


async def authorized_channels(info: Info, record: MerchantRecord) -> list[Channel]:
    """Those of the caller's subtree: an agent does not learn of its siblings."""
    viewer = require_viewer(info)
    db = info.context.services.db
    channel_ids = (await merchants.channels_of(db, [record.id]))[record.id]
    found = [await channels.get_in_subtree(db, c, viewer.channel_path) for c in channel_ids]
    return [Channel(record=c) for c in found if c is not None]


async def merchants_page(info: Info, first: int | None, after: str | None) -> Connection[Merchant]:
    viewer = require_viewer(info)
    services = info.context.services
    win = window(first, after, services.settings.max_page_size)
    rows = await merchants.page(services.db, viewer.channel_path, win.after_key, win.limit)
    return connection(rows, win, key=lambda r: r.id, node=lambda r: Merchant(record=r))


async def redemptions_page(
    info: Info, filter: RedemptionFilter | None, first: int | None, after: str | None
) -> Connection[Redemption]:
    viewer = require_viewer(info)
    services = info.context.services
    win = window(first, after, services.settings.max_page_size)
    merchant_id = code_id = None
    if filter is not None and filter.merchant_id is not None:
        merchant_id = ids.decode("Merchant", filter.merchant_id)
        if merchant_id is None:
            raise bad_request("`filter.merchantId` is not a merchant id.")
    if filter is not None and filter.code_id is not None:
        code_id = ids.decode("Code", filter.code_id)
        if code_id is None:
            raise bad_request("`filter.codeId` is not a code id.")
    rows = await redemptions.page(
        services.db,
        viewer.channel_path,
        win.after_key or _NEWEST,
        win.limit,
        merchant_id=merchant_id,
        code_id=code_id,
    )
    return connection(rows, win, key=lambda r: r.id, node=lambda r: Redemption(record=r))


async def set_product_redeemable(
    info: Info, input: SetProductRedeemableInput
) -> SetProductRedeemablePayload:
    viewer = require_viewer(info)
    if not may_change_catalog(viewer):
        return SetProductRedeemablePayload(user_errors=[catalog_forbidden()])
    key = ids.decode("Product", input.product_id)
    record = (
        await catalog.set_redeemable(info.context.services.db, key, input.redeemable)
        if key
        else None
    )
    if record is None:
        return SetProductRedeemablePayload(
            user_errors=[user_error(ErrorCode.NOT_FOUND, "No such product.", "productId")]
        )
    return SetProductRedeemablePayload(product=Product(record=record))
