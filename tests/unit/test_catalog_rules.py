"""Pure rules of the catalog: money, products, suppliers, search and who may change it."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.access import Principal, Role
from domain.catalog import (
    MONEY_MESSAGE,
    MONEY_TOO_LARGE,
    Fulfilment,
    ProductCategory,
    ProductDraft,
    apply_changes,
    check_secret,
    clean_base_url,
    clean_money,
    clean_product,
    may_change_catalog,
    price_below_cost,
    search_pattern,
    sees_off_shelf,
    sees_product,
    sees_sourcing,
    visibility_path,
)
from domain.channels import Problem

DRAFT = ProductDraft(
    name="Video VIP month",
    category=ProductCategory.VIDEO,
    face_value=Decimal("30.00"),
    cost_price=Decimal("20.00"),
    base_price=Decimal("25.00"),
    fulfilment=Fulfilment.POOL,
    supplier_id=None,
    supplier_sku=None,
    validity_days=None,
    max_uses=1,
    on_shelf=True,
)

# --- money ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_value", "cleaned"),
    [
        ("0", "0.00"),
        ("12.5", "12.50"),
        ("12.50", "12.50"),
        ("12.500", "12.50"),
        ("1E+2", "100.00"),
        ("-0", "0.00"),
        ("999999999999.99", "999999999999.99"),
    ],
)
def test_money_is_whole_cents(given_value: str, cleaned: str) -> None:
    # Given an amount with at most two significant decimal places
    # When it is cleaned
    value, problem = clean_money(Decimal(given_value), "faceValue")

    # Then it comes back with exactly two places, and no problem
    assert (str(value), problem) == (cleaned, None)


@pytest.mark.parametrize(
    "bad", ["-0.01", "-5", "0.001", "12.345", "NaN", "sNaN", "Infinity", "-Infinity", "1E-30"]
)
def test_negative_fractional_cent_and_non_finite_amounts_are_refused(bad: str) -> None:
    _, problem = clean_money(Decimal(bad), "costPrice")
    assert problem == Problem("costPrice", MONEY_MESSAGE)


@pytest.mark.parametrize("huge", ["1000000000000", "1E+30", "1E+999999"])
def test_amounts_beyond_the_column_are_refused(huge: str) -> None:
    _, problem = clean_money(Decimal(huge), "basePrice")
    assert problem == Problem("basePrice", MONEY_TOO_LARGE)


@given(st.decimals(allow_nan=True, allow_infinity=True))
def test_clean_money_never_raises_and_accepts_only_cents(value: Decimal) -> None:
    # Whatever the Decimal scalar lets through, the rule answers and never crashes
    cleaned, problem = clean_money(value, "faceValue")
    if problem is None:
        assert cleaned == value
        assert cleaned.as_tuple().exponent == -2
        assert Decimal(0) <= cleaned < Decimal("1000000000000")


# --- products ---------------------------------------------------------------------------


def test_a_valid_draft_is_made_canonical() -> None:
    # Given a draft with loose spacing and a SKU with surrounding spaces
    draft = replace(
        DRAFT,
        name="  Video   VIP  month ",
        face_value=Decimal("30"),
        supplier_id=7,
        supplier_sku=" vip-1m ",
    )

    # When it is cleaned
    cleaned, problems = clean_product(draft)

    # Then it is canonical and has no problems
    assert problems == []
    assert cleaned == replace(
        DRAFT, face_value=Decimal("30.00"), supplier_id=7, supplier_sku="vip-1m"
    )


def test_every_field_problem_is_reported_at_once() -> None:
    # Given a draft wrong in every field that has a rule
    draft = replace(
        DRAFT,
        name=" ",
        face_value=Decimal("-1"),
        cost_price=Decimal("0.001"),
        base_price=Decimal("NaN"),
        supplier_id=3,
        supplier_sku="has space",
        validity_days=0,
        max_uses=0,
    )

    # When it is cleaned
    _, problems = clean_product(draft)

    # Then each field is named once, in input order
    assert problems == [
        Problem("name", "Give a name of 1 to 200 characters."),
        Problem("faceValue", MONEY_MESSAGE),
        Problem("costPrice", MONEY_MESSAGE),
        Problem("basePrice", MONEY_MESSAGE),
        Problem("supplierSku", "Give a SKU of 1 to 100 characters without spaces."),
        Problem("validityDays", "Give a validity of 1 to 3650 days, or none."),
        Problem("maxUses", "Give a number of uses from 1 to 1000000."),
    ]


def test_realtime_needs_a_supplier_and_its_sku() -> None:
    _, problems = clean_product(replace(DRAFT, fulfilment=Fulfilment.REALTIME))
    assert problems == [
        Problem("supplierId", "A REALTIME product needs a supplier."),
        Problem("supplierSku", "A REALTIME product needs the supplier's SKU."),
    ]
    _, problems = clean_product(
        replace(DRAFT, fulfilment=Fulfilment.REALTIME, supplier_id=1, supplier_sku="x")
    )
    assert problems == []


def test_a_sku_needs_a_supplier() -> None:
    _, problems = clean_product(replace(DRAFT, supplier_sku="vip-1m"))
    assert problems == [Problem("supplierSku", "A supplier SKU needs a supplier.")]


@pytest.mark.parametrize(
    ("cost", "base", "below"),
    [("20.00", "19.99", True), ("20.00", "20.00", False), ("0.00", "0.00", False)],
)
def test_base_price_must_cover_cost(cost: str, base: str, below: bool) -> None:
    draft = replace(DRAFT, cost_price=Decimal(cost), base_price=Decimal(base))
    problem = price_below_cost(draft)
    expected = Problem("basePrice", f"The base price {base} is below the cost price {cost}.")
    assert problem == (expected if below else None)


def test_changes_replace_only_the_fields_given() -> None:
    # Given a product with a supplier and validity
    current = replace(DRAFT, supplier_id=1, supplier_sku="a", validity_days=30)

    # When an update names a new price and clears the validity
    changed, problems = apply_changes(
        current, {"base_price": Decimal("26.00"), "validity_days": None}
    )

    # Then only those change
    assert problems == []
    assert changed == replace(current, base_price=Decimal("26.00"), validity_days=None)


def test_null_for_a_required_field_is_refused_and_keeps_the_value() -> None:
    changed, problems = apply_changes(DRAFT, {"name": None, "max_uses": None, "on_shelf": False})
    assert problems == [
        Problem("name", "name cannot be null; leave it out to keep it."),
        Problem("maxUses", "maxUses cannot be null; leave it out to keep it."),
    ]
    assert changed == replace(DRAFT, on_shelf=False)


# --- suppliers --------------------------------------------------------------------------

URL_PROBLEM = Problem("baseUrl", "Give an http:// or https:// URL of at most 500 characters.")


@pytest.mark.parametrize(
    ("url", "cleaned"),
    [
        ("https://supplier.example/api/", "https://supplier.example/api"),
        (" http://127.0.0.1:8081 ", "http://127.0.0.1:8081"),
        ("HTTPS://Supplier.Example", "HTTPS://Supplier.Example"),
    ],
)
def test_base_urls_lose_the_trailing_slash(url: str, cleaned: str) -> None:
    assert clean_base_url(url) == (cleaned, None)


@pytest.mark.parametrize(
    "bad",
    [
        "ftp://supplier.example",
        "supplier.example",
        "https://",
        "https://sup plier.example",
        "https://supplier.example:99999",
        "https://supplier.example/?a=1",
        "https://supplier.example/#x",
        "https://" + "a" * 500 + ".example",
        "",
    ],
)
def test_bad_base_urls_are_refused(bad: str) -> None:
    assert clean_base_url(bad)[1] == URL_PROBLEM


def test_credentials_in_a_base_url_are_refused() -> None:
    assert clean_base_url("https://user:pw@supplier.example")[1] == Problem(
        "baseUrl", "Give the URL without credentials in it."
    )


@pytest.mark.parametrize("bad", ["short", " padded-secret ", "x" * 513, ""])
def test_bad_secrets_are_refused(bad: str) -> None:
    assert check_secret(bad) == Problem(
        "secret", "Give a secret of 16 to 512 characters without surrounding spaces."
    )


def test_a_good_secret_passes() -> None:
    assert check_secret("s3cret-shared-with-supplier") is None


# --- search -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("search", "pattern"),
    [
        (None, None),
        ("   ", None),
        (" vip  month ", "%vip month%"),
        ("100%", "%100\\%%"),
        ("a_b", "%a\\_b%"),
        ("back\\slash", "%back\\\\slash%"),
    ],
)
def test_search_becomes_an_escaped_contains_pattern(search: str | None, pattern: str) -> None:
    assert search_pattern(search) == pattern


# --- who may ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "role", "may"),
    [
        ("1", Role.OWNER, True),
        ("1", Role.OPERATOR, True),
        ("1", Role.FINANCE, False),
        ("1", Role.VERIFIER, False),
        ("1.2", Role.OWNER, False),
        ("1.2.3", Role.OPERATOR, False),
    ],
)
def test_only_platform_owners_and_operators_change_the_catalog(
    path: str, role: Role, may: bool
) -> None:
    viewer = Principal(channel_id=int(path.split(".")[-1]), channel_path=path, role=role)
    assert may_change_catalog(viewer) is may
    assert sees_off_shelf(viewer) is (path == "1")
    assert sees_sourcing(viewer) is (path == "1")


@pytest.mark.parametrize(
    ("path", "on_shelf", "hidden", "sees"),
    [
        ("1", False, True, True),  # the platform sees every product
        ("1.2", True, False, True),
        ("1.2", False, False, False),
        ("1.2.3", True, True, False),  # hidden by a channel on the path
        ("1.2.3", False, True, False),
    ],
)
def test_a_channel_sees_products_on_shelf_that_nobody_on_its_path_hides(
    path: str, on_shelf: bool, hidden: bool, sees: bool
) -> None:
    viewer = Principal(channel_id=int(path.split(".")[-1]), channel_path=path, role=Role.OWNER)
    assert sees_product(viewer, on_shelf=on_shelf, hidden_on_path=hidden) is sees
    assert visibility_path(viewer) == (None if path == "1" else path)
