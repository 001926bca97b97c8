"""Which deliveries an order queues, and where they go."""

from __future__ import annotations

from domain.channels import Problem
from domain.orders import DeliveryMethod, QueuedDelivery, delivery_plan

API, LINK, WEBHOOK, EMAIL, SMS = (
    DeliveryMethod.API,
    DeliveryMethod.LINK,
    DeliveryMethod.WEBHOOK,
    DeliveryMethod.EMAIL,
    DeliveryMethod.SMS,
)


def test_api_delivery_is_the_answer_itself_and_queues_nothing() -> None:
    assert delivery_plan([(API, None)], None, None) == ([], None)
    assert delivery_plan([], None, None) == ([], None)


def test_email_and_sms_go_to_the_target_or_else_to_the_buyer() -> None:
    planned, problem = delivery_plan(
        [(EMAIL, None), (SMS, "+8613800138000"), (EMAIL, " Other@Example.COM ")],
        "Buyer@Example.com",
        "13900139000",
    )
    assert problem is None
    assert planned == [
        QueuedDelivery(EMAIL, "buyer@example.com"),
        QueuedDelivery(SMS, "+8613800138000"),
        QueuedDelivery(EMAIL, "other@example.com"),
    ]


def test_a_delivery_asked_for_twice_is_queued_once() -> None:
    planned, _ = delivery_plan([(LINK, None), (LINK, None), (WEBHOOK, None)], None, None)
    assert planned == [QueuedDelivery(LINK, None), QueuedDelivery(WEBHOOK, None)]


def test_email_without_an_address_is_refused() -> None:
    assert delivery_plan([(LINK, None), (EMAIL, None)], None, None) == (
        [],
        Problem("delivery.1.target", "Give an e-mail address here or as buyer.email."),
    )
    assert delivery_plan([(EMAIL, "not an address")], None, None)[1] is not None


def test_sms_needs_a_mobile_number() -> None:
    assert delivery_plan([(SMS, None)], None, "12345")[1] == Problem(
        "delivery.0.target", "Give a mobile number here or as buyer.phone."
    )
    assert delivery_plan([(SMS, "138 0013 8000")], None, None)[0] == [
        QueuedDelivery(SMS, "13800138000")
    ]


def test_link_and_webhook_take_no_target() -> None:
    assert delivery_plan([(WEBHOOK, "https://example.com")], None, None)[1] == Problem(
        "delivery.0.target", "Delivery by WEBHOOK takes no target."
    )


def test_at_most_five_deliveries() -> None:
    assert delivery_plan([(LINK, None)] * 6, None, None)[1] == Problem(
        "delivery", "Ask for at most 5 deliveries."
    )


def test_a_queued_delivery_survives_its_json_form() -> None:
    queued = QueuedDelivery(SMS, "13800138000")
    assert QueuedDelivery.from_json(queued.as_json()) == queued
