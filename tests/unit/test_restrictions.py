"""Channel restrictions: what a channel may narrow, and the check every order runs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.channels import (
    Restrictions,
    SaleRefusal,
    SaleRule,
    check_sale,
    outside_ancestors,
)

ANY: Restrictions = ([], [])


def test_a_path_without_restrictions_sells_to_anyone() -> None:
    assert check_sale([ANY, ANY, ANY], "US-CA", "anyone") is None
    assert check_sale([ANY, ANY], None, None) is None


def test_a_country_covers_its_subdivisions_but_not_the_other_way() -> None:
    # Given the platform sells anywhere, A to China and A1 to Guangdong
    path: list[Restrictions] = [ANY, (["CN"], []), (["CN-GD"], [])]

    # Then a buyer in Guangdong is allowed, in lower case too
    assert check_sale(path, "CN-GD", None) is None
    assert check_sale(path, " cn-gd ", None) is None

    # And a buyer in Shanghai is refused by A1, and one known only to be in China too
    assert check_sale(path, "CN-SH", None) == SaleRefusal(
        SaleRule.REGION_NOT_ALLOWED, "region", "This channel does not sell to CN-SH.", 2
    )
    assert check_sale(path, "CN", None) == SaleRefusal(
        SaleRule.REGION_NOT_ALLOWED, "region", "This channel does not sell to CN.", 2
    )


def test_the_first_refusing_channel_from_the_root_is_named() -> None:
    # Given A sells to Hong Kong only and A1 (wider, as a stale setting) to China
    path: list[Restrictions] = [ANY, (["HK"], []), (["CN"], [])]

    # Then a buyer in Guangdong is refused by A, the first from the root
    refusal = check_sale(path, "CN-GD", None)
    assert refusal is not None
    assert (refusal.rule, refusal.depth) == (SaleRule.REGION_NOT_ALLOWED, 1)

    # And a channel below a restricted one cannot widen it: nobody is allowed
    assert check_sale(path, "HK", None) is not None


def test_a_buyer_without_region_or_group_is_refused_where_they_are_restricted() -> None:
    path: list[Restrictions] = [ANY, (["CN"], ["vip"])]
    assert check_sale(path, None, "vip") == SaleRefusal(
        SaleRule.REGION_NOT_ALLOWED,
        "region",
        "This channel sells to some regions only: give the buyer's region.",
        1,
    )
    assert check_sale(path, "CN-GD", None) == SaleRefusal(
        SaleRule.CUSTOMER_GROUP_NOT_ALLOWED,
        "customerGroup",
        "This channel sells to some customer groups only: give the buyer's group.",
        1,
    )


def test_customer_groups_match_by_exact_name_and_regions_are_checked_first() -> None:
    path: list[Restrictions] = [ANY, ([], ["vip", "retail"]), (["CN"], ["vip"])]

    assert check_sale(path, "CN-GD", " vip ") is None
    assert check_sale(path, "CN-GD", "retail") == SaleRefusal(
        SaleRule.CUSTOMER_GROUP_NOT_ALLOWED,
        "customerGroup",
        "This channel does not sell to customer group retail.",
        2,
    )
    assert check_sale(path, "CN-GD", "VIP") is not None
    # Both wrong: the region is reported
    refusal = check_sale(path, "US", "nobody")
    assert refusal is not None
    assert refusal.rule is SaleRule.REGION_NOT_ALLOWED


def test_rules_are_named_as_the_apis_error_codes() -> None:
    from schema.errors import ErrorCode

    assert {ErrorCode[rule.value].value for rule in SaleRule} == {r.value for r in SaleRule}


# --- narrowing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "ancestors", "outside"),
    [
        (["CN-GD", "CN-SH"], [[], ["CN"], ["CN-GD"]], ["CN-SH"]),
        (["CN"], [["CN-GD"]], ["CN"]),
        (["HK", "CN-GD"], [[], []], []),
        (["CN-GD"], [["CN", "HK"], ["CN-GD", "HK"]], []),
    ],
)
def test_regions_must_be_within_every_restricted_channel_above(
    values: list[str], ancestors: list[list[str]], outside: list[str]
) -> None:
    assert outside_ancestors(values, ancestors, regions=True) == outside


def test_groups_must_be_named_by_every_restricted_channel_above() -> None:
    assert outside_ancestors(["vip", "retail"], [["vip", "retail"], ["vip"]], regions=False) == [
        "retail"
    ]
    assert outside_ancestors(["vip"], [[], []], regions=False) == []


# --- properties -------------------------------------------------------------------------

countries = st.sampled_from(["CN", "HK", "US"])
regions = st.one_of(
    countries, st.tuples(countries, st.sampled_from(["GD", "SH", "11"])).map("-".join)
)
groups = st.sampled_from(["vip", "retail", "staff"])
restriction_sets = st.tuples(
    st.lists(regions, max_size=3, unique=True), st.lists(groups, max_size=2, unique=True)
)
paths = st.lists(restriction_sets, min_size=1, max_size=6)


@given(paths, regions, groups, st.integers(min_value=0, max_value=6), restriction_sets)
def test_a_restricted_channel_added_anywhere_never_allows_a_refused_sale(
    path: list[Restrictions],
    region: str,
    group: str,
    at: int,
    extra: Restrictions,
) -> None:
    # Given a sale checked on a path
    before = check_sale(path, region, group)

    # When a channel with its own restrictions is put into the path
    longer = [*path[:at], extra, *path[at:]]

    # Then a refused sale stays refused, and an allowed one is refused only by that channel
    after = check_sale(longer, region, group)
    if before is not None:
        assert after is not None
    elif after is not None:
        assert check_sale([extra], region, group) is not None


@given(paths, regions, groups)
def test_a_sale_is_allowed_exactly_when_every_level_allows_it(
    path: list[Restrictions], region: str, group: str
) -> None:
    def allows(rs: Restrictions) -> bool:
        regions_ok = not rs[0] or any(region == r or region.startswith(r + "-") for r in rs[0])
        return regions_ok and (not rs[1] or group in rs[1])

    assert (check_sale(path, region, group) is None) == all(allows(rs) for rs in path)
