"""Pure rules of a supplier catalog sync: categories, item cleaning, and the sync's plan."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import pytest

from domain.catalog import ProductCategory
from domain.supplier_catalog import (
    Change,
    Item,
    NewProduct,
    Skipped,
    Stored,
    clean_item,
    map_category,
    plan_sync,
)


@dataclass(frozen=True)
class Listed:
    sku: str
    name: str = "Video VIP, 1 month"
    category: str = "video_membership"
    face_value: Decimal = Decimal("30.00")
    cost: Decimal = Decimal("25.50")
    available: bool = True


BAD_SKU = "The SKU is empty, has spaces or is too long."
BAD_MONEY = "The face value or cost is negative or too large."
STORED = Stored(
    id=7,
    sku="VIDEO-1M",
    realtime=True,
    name="Video VIP, 1 month",
    face_value=Decimal("30.00"),
    cost_price=Decimal("25.50"),
    base_price=Decimal("27.00"),
    on_shelf=True,
    delisted=False,
)


def change_of(product: Stored, **fields: Any) -> Change:
    return replace(
        Change(
            id=product.id,
            name=product.name,
            face_value=product.face_value,
            cost_price=product.cost_price,
            base_price=product.base_price,
            on_shelf=product.on_shelf,
            delisted=product.delisted,
        ),
        **fields,
    )


# --- categories -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        # ours, in any case
        ("VIDEO", ProductCategory.VIDEO),
        (" telecom ", ProductCategory.TELECOM),
        # the simulator's
        ("video_membership", ProductCategory.VIDEO),
        ("music_membership", ProductCategory.MUSIC),
        ("game_card", ProductCategory.GAME),
        ("gift_card", ProductCategory.SHOPPING),
        ("coupon", ProductCategory.OTHER),
        # the last keyword names the thing
        ("video_game", ProductCategory.GAME),
        ("Mobile Game Top-Up", ProductCategory.GAME),
        ("视频会员", ProductCategory.VIDEO),
        ("视频游戏点卡", ProductCategory.GAME),
        ("话费充值", ProductCategory.TELECOM),
        # whole English words only
        ("videogame", ProductCategory.OTHER),
        ("stv", ProductCategory.OTHER),
        ("", ProductCategory.OTHER),
        ("something new", ProductCategory.OTHER),
    ],
)
def test_supplier_categories_map_to_ours(given: str, expected: ProductCategory) -> None:
    assert map_category(given) is expected


# --- one item ---------------------------------------------------------------------------


def test_a_clean_item_is_taken_as_it_is() -> None:
    assert clean_item(Listed("VIDEO-1M")) == Item(
        "VIDEO-1M",
        "Video VIP, 1 month",
        ProductCategory.VIDEO,
        Decimal("30.00"),
        Decimal("25.50"),
        True,
    )


def test_sub_cent_amounts_round_the_cost_up_and_the_face_value_to_nearest() -> None:
    item = clean_item(Listed("X", face_value=Decimal("30.005"), cost=Decimal("25.5001")))
    assert isinstance(item, Item)
    assert (item.face_value, item.cost) == (Decimal("30.01"), Decimal("25.51"))
    item = clean_item(Listed("X", face_value=Decimal("30.0049"), cost=Decimal("0.0000")))
    assert isinstance(item, Item)
    assert (item.face_value, item.cost) == (Decimal("30.00"), Decimal("0.00"))


def test_names_are_tidied_and_cut_to_our_limit() -> None:
    item = clean_item(Listed("X", name="  Video \n VIP  "))
    assert isinstance(item, Item)
    assert item.name == "Video VIP"
    item = clean_item(Listed("X", name="a" * 199 + " b" + "c" * 50))
    assert isinstance(item, Item)
    assert item.name == "a" * 199


@pytest.mark.parametrize(
    ("listed", "reason"),
    [
        (Listed(" VIDEO-1M"), BAD_SKU),
        (Listed("VIDEO 1M"), BAD_SKU),
        (Listed("V" * 101), BAD_SKU),
        (Listed(""), BAD_SKU),
        (Listed("X", name=" \t "), "The name is empty."),
        (Listed("X", cost=Decimal(-1)), BAD_MONEY),
        (Listed("X", cost=Decimal("999999999999.9999")), BAD_MONEY),
        (Listed("X", face_value=Decimal("NaN")), BAD_MONEY),
    ],
)
def test_items_we_cannot_store_are_skipped_with_the_reason(listed: Listed, reason: str) -> None:
    assert clean_item(listed) == Skipped(listed.sku, reason)


# --- the plan ---------------------------------------------------------------------------


def test_new_skus_become_products_at_cost() -> None:
    plan = plan_sync(
        [Listed("NEW", category="gift_card", cost=Decimal("196.00")), Listed("VIDEO-1M")], [STORED]
    )
    assert plan.create == (
        NewProduct(
            "NEW",
            "Video VIP, 1 month",
            ProductCategory.SHOPPING,
            Decimal("30.00"),
            Decimal("196.00"),
            Decimal("196.00"),
        ),
    )
    assert (plan.change, plan.updated, plan.delisted, plan.repriced) == ((), 0, 0, 0)


def test_an_unchanged_catalog_changes_nothing() -> None:
    plan = plan_sync([Listed("VIDEO-1M")], [STORED])
    assert (plan.create, plan.change, plan.skipped) == ((), (), ())


def test_known_skus_take_the_suppliers_name_face_value_and_cost() -> None:
    listed = Listed("VIDEO-1M", name="Video VIP 30 days", face_value=Decimal(31), cost=Decimal(26))
    plan = plan_sync([listed], [STORED])
    assert plan.change == (
        change_of(
            STORED,
            name="Video VIP 30 days",
            face_value=Decimal("31.00"),
            cost_price=Decimal("26.00"),
        ),
    )
    assert (plan.updated, plan.delisted, plan.repriced) == (1, 0, 0)


def test_a_category_change_upstream_leaves_ours() -> None:
    assert plan_sync([Listed("VIDEO-1M", category="music")], [STORED]).change == ()


def test_a_cost_above_the_base_price_raises_it_and_takes_the_product_off_shelf() -> None:
    plan = plan_sync([Listed("VIDEO-1M", cost=Decimal("28.00"))], [STORED])
    assert plan.change == (
        change_of(STORED, cost_price=Decimal("28.00"), base_price=Decimal("28.00"), on_shelf=False),
    )
    assert (plan.updated, plan.repriced) == (1, 1)


def test_a_cost_up_to_the_base_price_keeps_it_and_the_shelf() -> None:
    plan = plan_sync([Listed("VIDEO-1M", cost=Decimal("27.00"))], [STORED])
    assert plan.change == (change_of(STORED, cost_price=Decimal("27.00")),)
    assert plan.repriced == 0


def test_an_unavailable_sku_goes_off_shelf_and_stays_off_when_back() -> None:
    plan = plan_sync([Listed("VIDEO-1M", available=False)], [STORED])
    assert plan.change == (change_of(STORED, on_shelf=False),)
    off = replace(STORED, on_shelf=False)
    assert plan_sync([Listed("VIDEO-1M", available=False)], [off]).change == ()
    assert plan_sync([Listed("VIDEO-1M")], [off]).change == ()


def test_a_sku_no_longer_listed_is_delisted_once() -> None:
    plan = plan_sync([], [STORED])
    assert plan.change == (change_of(STORED, on_shelf=False, delisted=True),)
    assert (plan.updated, plan.delisted) == (0, 1)
    gone = replace(STORED, on_shelf=False, delisted=True)
    assert plan_sync([], [gone]).change == ()


def test_a_delisted_product_put_back_on_shelf_is_taken_off_as_an_update() -> None:
    shelved = replace(STORED, delisted=True)
    plan = plan_sync([], [shelved])
    assert plan.change == (change_of(shelved, on_shelf=False),)
    assert (plan.updated, plan.delisted) == (1, 0)


def test_a_sku_listed_again_is_relisted_and_stays_off_shelf() -> None:
    gone = replace(STORED, on_shelf=False, delisted=True)
    plan = plan_sync([Listed("VIDEO-1M")], [gone])
    assert plan.change == (change_of(gone, delisted=False),)
    assert (plan.updated, plan.delisted) == (1, 0)


def test_products_that_are_not_realtime_are_left_alone() -> None:
    pool = replace(STORED, realtime=False)
    plan = plan_sync([Listed("VIDEO-1M", cost=Decimal(99), available=False)], [pool])
    assert (plan.create, plan.change) == ((), ())
    assert plan_sync([], [pool]).change == ()


def test_skipped_and_duplicated_skus_are_reported_and_their_products_left_alone() -> None:
    other = replace(STORED, id=8, sku="MUSIC-1M")
    plan = plan_sync(
        [
            Listed("VIDEO-1M", cost=Decimal(1)),
            Listed("VIDEO-1M", cost=Decimal(2)),
            Listed("MUSIC-1M", name=" "),
            Listed("BAD SKU"),
        ],
        [STORED, other],
    )
    assert plan.skipped == (
        Skipped("VIDEO-1M", "The SKU is listed more than once."),
        Skipped("MUSIC-1M", "The name is empty."),
        Skipped("BAD SKU", BAD_SKU),
    )
    assert (plan.create, plan.change) == ((), ())


def test_counts_add_up_over_a_mixed_catalog() -> None:
    stored = [
        STORED,
        replace(STORED, id=8, sku="GONE"),
        replace(STORED, id=9, sku="OUT"),
        replace(STORED, id=10, sku="SAME"),
    ]
    plan = plan_sync(
        [
            Listed("VIDEO-1M", cost=Decimal("30.00")),
            Listed("OUT", available=False),
            Listed("SAME"),
            Listed("NEW-1"),
            Listed("NEW-2"),
        ],
        stored,
    )
    assert [p.sku for p in plan.create] == ["NEW-1", "NEW-2"]
    assert [c.id for c in plan.change] == [7, 8, 9]
    assert (plan.updated, plan.delisted, plan.repriced) == (2, 1, 1)
