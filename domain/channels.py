"""Rules for channels: names, sales regions and customer groups."""

from __future__ import annotations

import re
from collections.abc import Iterable
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
