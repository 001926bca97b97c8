"""What a channel sets for the channels below it: hidden products and restrictions."""

from __future__ import annotations

from collections.abc import Sequence

from persistence.channels import ChannelRecord
from persistence.queries import queries
from persistence.types import Db

Q = queries("commerce")


async def hide_products(
    db: Db, channel_id: int, product_ids: Sequence[int], hidden_by: int
) -> None:
    """Hide the products for the channel and, through it, for its whole subtree."""
    await db.execute(Q["hide_products"], channel_id, list(product_ids), hidden_by)


async def show_products(
    db: Db, channel_id: int, product_ids: Sequence[int], shown_by_path: str
) -> None:
    """Undo the hiding done by the channel at ``shown_by_path`` or below it; what a
    channel above it hid stays hidden."""
    await db.execute(Q["show_products"], channel_id, list(product_ids), shown_by_path)


async def set_restrictions(
    db: Db, channel_id: int, regions: list[str], customer_groups: list[str]
) -> ChannelRecord | None:
    row = await db.fetchrow(Q["set_restrictions"], channel_id, regions, customer_groups)
    return ChannelRecord.from_row(row) if row else None


async def path_restrictions(db: Db, channel_path: str) -> list[tuple[list[str], list[str]]]:
    """(regions, customer groups) of each channel from the root down to the one at
    ``channel_path``, in one query: the input of ``domain.channels.check_sale``."""
    rows = await db.fetch(Q["path_restrictions"], channel_path)
    return [(list(r["regions"]), list(r["customer_groups"])) for r in rows]
