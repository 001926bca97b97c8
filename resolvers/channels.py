"""The channel tree: reading within the caller's subtree and growing it."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable, Sequence

from domain.access import Action, Principal, in_subtree
from domain.channels import (
    Problem,
    clean_customer_groups,
    clean_name,
    clean_regions,
    outside_ancestors,
)
from persistence import channels, commerce
from persistence.channels import ChannelRecord
from schema import ids
from schema.channels import Channel, CreateChannelInput, CreateChannelPayload
from schema.context import RECHECK_SECONDS, Info, require_viewer
from schema.errors import ErrorCode, UserError, user_error
from schema.pagination import Connection, connection, window

TOPIC_CHANNEL_CREATED = "channel-created"


async def find_channel(
    info: Info, viewer: Principal, channel_id: str | None
) -> ChannelRecord | None:
    """The channel an input names, or the caller's own; None outside the caller's subtree.

    Out-of-subtree and non-existent channels look the same, so nobody learns that a
    sibling or a parent exists.
    """
    key = viewer.channel_id if channel_id is None else ids.decode("Channel", channel_id)
    if key is None:
        return None
    return await channels.get_in_subtree(info.context.services.db, key, viewer.channel_path)


def channel_not_found(field: str) -> UserError:
    return user_error(ErrorCode.NOT_FOUND, "No such channel.", field)


def forbidden(what: str) -> UserError:
    return user_error(ErrorCode.FORBIDDEN, f"Your role may not {what}.")


def invalid(problem: Problem) -> UserError:
    return user_error(ErrorCode.INVALID_INPUT, problem.message, problem.field)


async def channel(info: Info, id: str | None) -> Channel | None:
    viewer = require_viewer(info)
    record = await find_channel(info, viewer, id)
    return Channel(record=record) if record else None


async def create_channel(info: Info, input: CreateChannelInput) -> CreateChannelPayload:
    viewer = require_viewer(info)
    parent = await find_channel(info, viewer, input.parent_id)
    if parent is None:
        return CreateChannelPayload(user_errors=[channel_not_found("parentId")])
    if not viewer.may(Action.MANAGE_CHANNELS):
        return CreateChannelPayload(user_errors=[forbidden("create channels")])

    name, name_problem = clean_name(input.name)
    above = await commerce.path_restrictions(info.context.services.db, parent.path)
    regions, groups, errors = restrictions_within(
        input.regions or parent.regions, input.customer_groups or parent.customer_groups, above
    )
    if name_problem:
        errors.insert(0, invalid(name_problem))
    if errors:
        return CreateChannelPayload(user_errors=errors)

    services = info.context.services
    record = await channels.insert_child(services.db, parent.id, name, regions, groups)
    await services.events.publish(TOPIC_CHANNEL_CREATED, {"id": record.id, "path": record.path})
    return CreateChannelPayload(channel=Channel(record=record))


def restrictions_within(
    regions: Iterable[str], groups: Iterable[str], above: Sequence[tuple[list[str], list[str]]]
) -> tuple[list[str], list[str], list[UserError]]:
    """A channel's sales regions and customer groups, cleaned and checked against every
    restricted channel above it (``above``: their sets, root first)."""
    regions, regions_problem = clean_regions(regions)
    groups, groups_problem = clean_customer_groups(groups)
    errors = [invalid(p) for p in (regions_problem, groups_problem) if p]
    wider_regions = outside_ancestors(regions, (r for r, _ in above), regions=True)
    if wider_regions and not regions_problem:
        errors.append(
            user_error(
                ErrorCode.REGION_NOT_ALLOWED,
                f"The parent does not sell to {', '.join(wider_regions)}.",
                "regions",
            )
        )
    wider_groups = outside_ancestors(groups, (g for _, g in above), regions=False)
    if wider_groups and not groups_problem:
        errors.append(
            user_error(
                ErrorCode.INVALID_INPUT,
                f"The parent does not sell to customer groups {', '.join(wider_groups)}.",
                "customerGroups",
            )
        )
    return regions, groups, errors


async def resolve_channel_of(info: Info, channel_id: int) -> Channel:
    """The channel a user or key of the caller's subtree belongs to."""
    viewer = require_viewer(info)
    record = await channels.get_in_subtree(
        info.context.services.db, channel_id, viewer.channel_path
    )
    assert record is not None, "users and keys are only shown within the caller's subtree"
    return Channel(record=record)


async def resolve_parent(info: Info, record: ChannelRecord) -> Channel | None:
    viewer = require_viewer(info)
    if record.parent_id is None or record.id == viewer.channel_id:
        return None
    parent = await channels.get_in_subtree(
        info.context.services.db, record.parent_id, viewer.channel_path
    )
    return Channel(record=parent) if parent else None


async def resolve_path(info: Info, record: ChannelRecord) -> list[Channel]:
    viewer = require_viewer(info)
    chain = await channels.chain_between(info.context.services.db, record.path, viewer.channel_path)
    return [Channel(record=r) for r in chain]


async def resolve_children(
    info: Info, record: ChannelRecord, first: int | None, after: str | None
) -> Connection[Channel]:
    win = window(first, after, info.context.services.settings.max_page_size)
    rows = await channels.children_page(
        info.context.services.db, record.id, win.after_key, win.limit
    )
    return connection(rows, win, key=lambda r: r.id, node=lambda r: Channel(record=r))


async def channel_created(info: Info) -> AsyncGenerator[Channel, None]:
    """Channels created below the caller's channel, as they are created (any process)."""
    viewer = require_viewer(info)
    db = info.context.services.db
    async with info.context.services.events.subscribe(TOPIC_CHANNEL_CREATED) as queue:
        while True:
            event = await queue.get()
            if event["id"] == viewer.channel_id or not in_subtree(
                event["path"], viewer.channel_path
            ):
                continue
            record = await channels.get_in_subtree(db, event["id"], viewer.channel_path)
            if record is not None:
                await info.context.recheck(max_age=RECHECK_SECONDS)
                yield Channel(record=record)
