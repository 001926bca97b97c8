"""Rules for channels: names, sales regions and customer groups."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# ISO 3166-2: a country, optionally with a subdivision (CN, CN-GD, CN-11).
_REGION = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")
MAX_NAME = 100
MAX_GROUP = 64


@dataclass(frozen=True, slots=True)
class Problem:
    """A rule a value breaks; ``field`` names the input field."""

    field: str
    message: str


def clean_name(name: str, field: str = "name") -> tuple[str, Problem | None]:
    cleaned = " ".join(name.split())
    if not 1 <= len(cleaned) <= MAX_NAME:
        return cleaned, Problem(field, f"Give a name of 1 to {MAX_NAME} characters.")
    return cleaned, None


def clean_regions(regions: Iterable[str]) -> tuple[list[str], Problem | None]:
    cleaned = sorted({r.strip().upper() for r in regions})
    bad = [r for r in cleaned if not _REGION.match(r)]
    if bad:
        return cleaned, Problem(
            "regions", f"Not ISO 3166-2 region codes (like CN or CN-GD): {', '.join(bad[:5])}."
        )
    return cleaned, None


def clean_customer_groups(groups: Iterable[str]) -> tuple[list[str], Problem | None]:
    cleaned = sorted({" ".join(g.split()) for g in groups})
    if any(not 1 <= len(g) <= MAX_GROUP for g in cleaned):
        return cleaned, Problem(
            "customerGroups", f"Customer group names have 1 to {MAX_GROUP} characters."
        )
    return cleaned, None


def region_within(region: str, allowed: Iterable[str]) -> bool:
    """A region is within a set when the set holds it or its country (CN covers CN-GD)."""
    return any(region == a or region.startswith(a + "-") for a in allowed)


def restriction_outside_parent(child: list[str], parent: list[str], *, regions: bool) -> list[str]:
    """Values of a child's restriction that its parent's does not allow.

    An empty set means "no restriction", so a parent with none allows anything, and a
    child with none under a restricted parent would widen it: it inherits instead.
    """
    if not parent:
        return []
    if regions:
        return [r for r in child if not region_within(r, parent)]
    allowed = set(parent)
    return [g for g in child if g not in allowed]


def outside_ancestors(
    values: Iterable[str], ancestors: Iterable[Sequence[str]], *, regions: bool
) -> list[str]:
    """Values that some restricted channel above does not allow, in the order given.

    ``ancestors`` are the restriction sets of the channels above, any order; empty sets
    restrict nothing.
    """
    sets = [list(s) for s in ancestors if s]
    return [
        v for v in values if any(restriction_outside_parent([v], s, regions=regions) for s in sets)
    ]


# --- selling to a buyer -----------------------------------------------------------------


class SaleRule(enum.StrEnum):
    """The restriction a sale broke; the values are the API's error codes."""

    REGION_NOT_ALLOWED = "REGION_NOT_ALLOWED"
    CUSTOMER_GROUP_NOT_ALLOWED = "CUSTOMER_GROUP_NOT_ALLOWED"


@dataclass(frozen=True, slots=True)
class SaleRefusal:
    """Why a channel may not sell to a buyer.

    ``depth`` is the index in the path (0: the platform) of the first channel whose
    restriction refused; ``field`` names the buyer's field at fault.
    """

    rule: SaleRule
    field: str
    message: str
    depth: int


# A restriction set as stored: regions, or customer groups.
Restrictions = tuple[Sequence[str], Sequence[str]]


def check_sale(
    path_restrictions: Sequence[Restrictions],
    region: str | None,
    customer_group: str | None,
) -> SaleRefusal | None:
    """Whether every channel on a path (root first) may sell to this buyer; None if so.

    Each channel with a non-empty set must allow the buyer: a region is allowed by itself
    or its country (CN allows CN-GD, CN-GD does not allow CN), a customer group by its
    exact name. A buyer without a region (or group) is refused wherever regions (or
    groups) are restricted, since nobody can tell it is allowed. Regions are checked
    first, then customer groups, each from the root down.
    """
    wanted_region = region.strip().upper() if region is not None else None
    for depth, (regions, _) in enumerate(path_restrictions):
        if regions and (not wanted_region or not region_within(wanted_region, regions)):
            return SaleRefusal(
                SaleRule.REGION_NOT_ALLOWED,
                "region",
                f"This channel does not sell to {wanted_region}."
                if wanted_region
                else "This channel sells to some regions only: give the buyer's region.",
                depth,
            )
    wanted_group = " ".join(customer_group.split()) if customer_group is not None else None
    for depth, (_, groups) in enumerate(path_restrictions):
        if groups and (not wanted_group or wanted_group not in groups):
            return SaleRefusal(
                SaleRule.CUSTOMER_GROUP_NOT_ALLOWED,
                "customerGroup",
                f"This channel does not sell to customer group {wanted_group}."
                if wanted_group
                else "This channel sells to some customer groups only: give the buyer's group.",
                depth,
            )
    return None
