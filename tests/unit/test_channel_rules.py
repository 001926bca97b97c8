"""Pure rules of the channel tree, staff accounts and roles."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.access import Action, Principal, Role, in_subtree
from domain.channels import (
    MAX_GROUP,
    MAX_NAME,
    Problem,
    clean_customer_groups,
    clean_name,
    clean_regions,
    region_within,
    restriction_outside_parent,
)
from domain.staff import MAX_PASSWORD, MIN_PASSWORD, check_password, clean_email

NAME_PROBLEM = Problem("name", "Give a name of 1 to 100 characters.")
EMAIL_PROBLEM = Problem("email", "Give a valid e-mail address.")
PASSWORD_PROBLEM = Problem("password", "A password has 8 to 256 characters.")

# --- regions --------------------------------------------------------------------------


def test_regions_are_trimmed_upper_cased_deduplicated_and_sorted() -> None:
    # Given regions as a person types them
    # When they are cleaned
    cleaned, problem = clean_regions([" cn-gd", "CN", "cn", "HK ", "cn-11"])

    # Then they are canonical ISO 3166-2 codes, once each, in order
    assert (cleaned, problem) == (["CN", "CN-11", "CN-GD", "HK"], None)


def test_no_regions_is_no_restriction() -> None:
    assert clean_regions([]) == ([], None)


@pytest.mark.parametrize(
    "bad", ["C", "CHN", "CN-", "CN-GDXX", "CN_GD", "12", "CN-G D", "中国", "CN-GD-SZ", ""]
)
def test_non_iso_regions_are_refused(bad: str) -> None:
    # Given one valid region and one that is not ISO 3166-2
    # When they are cleaned
    cleaned, problem = clean_regions(["CN", bad])

    # Then the problem names the field and the bad code
    assert problem == Problem(
        "regions",
        f"Not ISO 3166-2 region codes (like CN or CN-GD): {bad.strip().upper()}.",
    )
    assert "CN" in cleaned


def test_region_problem_lists_at_most_five_bad_codes() -> None:
    # Given seven bad codes
    _, problem = clean_regions(["A1", "B1", "C1", "D1", "E1", "F1", "G1"])

    # Then the message names the first five, sorted
    assert problem == Problem(
        "regions", "Not ISO 3166-2 region codes (like CN or CN-GD): A1, B1, C1, D1, E1."
    )


@pytest.mark.parametrize(
    ("region", "allowed", "within"),
    [
        ("CN-GD", ["CN"], True),
        ("CN", ["CN"], True),
        ("CN-GD", ["CN-GD"], True),
        ("CN-GD", ["HK", "CN"], True),
        ("CN", ["CN-GD"], False),
        ("CN-SH", ["CN-GD"], False),
        ("HK", ["CN"], False),
        ("CNX", ["CN"], False),
        ("CN-GD", ["CN-G"], False),
        ("CN-GD", [], False),
    ],
)
def test_region_within(region: str, allowed: list[str], within: bool) -> None:
    # A country covers its subdivisions, never the other way round or a lookalike
    assert region_within(region, allowed) is within


@pytest.mark.parametrize(
    ("child", "parent", "outside"),
    [
        (["CN-GD", "HK"], [], []),
        (["CN-GD", "CN-SH"], ["CN"], []),
        (["CN-GD", "CN-SH"], ["CN-GD"], ["CN-SH"]),
        (["CN"], ["CN-GD"], ["CN"]),
        (["US", "CN-11"], ["CN", "HK"], ["US"]),
        ([], ["CN"], []),
    ],
)
def test_region_restriction_outside_parent(
    child: list[str], parent: list[str], outside: list[str]
) -> None:
    # An empty parent allows anything; otherwise every child region must lie within it
    assert restriction_outside_parent(child, parent, regions=True) == outside


@pytest.mark.parametrize(
    ("child", "parent", "outside"),
    [
        (["vip", "staff"], [], []),
        (["vip"], ["vip", "staff"], []),
        (["vip", "public"], ["vip"], ["public"]),
        # groups are names, not a hierarchy: "vip" does not cover "vip-gold"
        (["vip-gold"], ["vip"], ["vip-gold"]),
    ],
)
def test_group_restriction_outside_parent(
    child: list[str], parent: list[str], outside: list[str]
) -> None:
    assert restriction_outside_parent(child, parent, regions=False) == outside


@given(child=st.lists(st.sampled_from(["CN", "CN-GD", "CN-SH", "HK", "US", "US-CA"]), max_size=6))
def test_any_child_fits_under_an_unrestricted_parent(child: list[str]) -> None:
    assert restriction_outside_parent(child, [], regions=True) == []
    assert restriction_outside_parent(child, [], regions=False) == []


# --- names and customer groups --------------------------------------------------------


@pytest.mark.parametrize(
    ("given_name", "cleaned"),
    [
        ("  Shenzhen   agent ", "Shenzhen agent"),
        ("A", "A"),
        ("深圳\t代理", "深圳 代理"),
        ("x" * MAX_NAME, "x" * MAX_NAME),
    ],
)
def test_names_are_cleaned(given_name: str, cleaned: str) -> None:
    assert clean_name(given_name) == (cleaned, None)


@pytest.mark.parametrize("bad", ["", "   ", "\n\t", "x" * (MAX_NAME + 1)])
def test_blank_or_long_names_are_refused(bad: str) -> None:
    _, problem = clean_name(bad)
    assert problem == NAME_PROBLEM


def test_name_problem_names_the_given_field() -> None:
    assert clean_name(" ", field="title") == (
        "",
        Problem("title", "Give a name of 1 to 100 characters."),
    )


def test_customer_groups_are_cleaned() -> None:
    assert clean_customer_groups([" vip ", "vip", "big   buyers"]) == (["big buyers", "vip"], None)
    assert clean_customer_groups(["g" * MAX_GROUP]) == (["g" * MAX_GROUP], None)


@pytest.mark.parametrize("bad", ["  ", "g" * (MAX_GROUP + 1)])
def test_blank_or_long_customer_groups_are_refused(bad: str) -> None:
    _, problem = clean_customer_groups(["vip", bad])
    assert problem == Problem("customerGroups", "Customer group names have 1 to 64 characters.")


# --- staff accounts -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_email", "cleaned"),
    [
        ("  Li.Wei@Example.COM ", "li.wei@example.com"),
        ("a@b.cn", "a@b.cn"),
        ("ops+tag@sub.example.com.cn", "ops+tag@sub.example.com.cn"),
    ],
)
def test_valid_emails_are_cleaned(given_email: str, cleaned: str) -> None:
    assert clean_email(given_email) == (cleaned, None)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "no-at-sign.example.com",
        "@example.com",
        "li@",
        "li@localhost",
        "li@@example.com",
        "li wei@example.com",
        "li@exa mple.com",
        "x" * 65 + "@example.com",
        "li@" + "d" * 250 + ".com",
    ],
)
def test_invalid_emails_are_refused(bad: str) -> None:
    _, problem = clean_email(bad)
    assert problem == EMAIL_PROBLEM


@pytest.mark.parametrize("length", [MIN_PASSWORD, MIN_PASSWORD + 1, MAX_PASSWORD])
def test_passwords_of_allowed_length_pass(length: int) -> None:
    assert check_password("p" * length) is None


@pytest.mark.parametrize("length", [0, 1, MIN_PASSWORD - 1, MAX_PASSWORD + 1, 1_000_000])
def test_passwords_too_short_or_long_are_refused(length: int) -> None:
    assert check_password("p" * length) == PASSWORD_PROBLEM


# --- roles ----------------------------------------------------------------------------


def _principal(role: Role, path: str = "1.2") -> Principal:
    return Principal(channel_id=int(path.rsplit(".", 1)[-1]), channel_path=path, role=role)


@pytest.mark.parametrize(
    ("role", "channels", "staff"),
    [
        (Role.OWNER, True, True),
        (Role.OPERATOR, True, False),
        (Role.FINANCE, False, False),
        (Role.VERIFIER, False, False),
    ],
)
def test_what_each_role_may_do(role: Role, channels: bool, staff: bool) -> None:
    principal = _principal(role)
    assert principal.may(Action.MANAGE_CHANNELS) is channels
    assert principal.may(Action.MANAGE_STAFF) is staff


def test_every_action_has_a_rule() -> None:
    # An action added without saying who may do it must not slip through (or crash)
    owner = _principal(Role.OWNER)
    for action in Action:
        assert owner.may(action)


@pytest.mark.parametrize("role", list(Role))
def test_an_owner_may_grant_any_role(role: Role) -> None:
    assert _principal(Role.OWNER).may_grant(role)


@pytest.mark.parametrize("granter", [Role.OPERATOR, Role.FINANCE, Role.VERIFIER])
def test_nobody_but_an_owner_grants_any_role(granter: Role) -> None:
    principal = _principal(granter)
    for role in Role:
        assert not principal.may_grant(role), role


def test_platform_is_the_root_path() -> None:
    assert _principal(Role.OWNER, "1").is_platform
    assert not _principal(Role.OWNER, "1.2").is_platform
    assert not _principal(Role.OWNER, "1.2.3").is_platform


@pytest.mark.parametrize(
    ("path", "ancestor", "inside"),
    [
        ("1", "1", True),
        ("1.2", "1", True),
        ("1.2.3.4", "1.2", True),
        ("1.2", "1.2", True),
        ("1", "1.2", False),
        ("1.3", "1.2", False),
        # prefixes of labels are not ancestors
        ("1.22", "1.2", False),
        ("1.2", "1.22", False),
        ("1.22.5", "1.2", False),
        ("11.2", "1", False),
        ("1.2", "2", False),
    ],
)
def test_in_subtree(path: str, ancestor: str, inside: bool) -> None:
    assert in_subtree(path, ancestor) is inside
