"""Error codes and the two ways errors reach a client.

Domain failures are ``userErrors`` in a mutation's payload. Malformed requests and
failed authentication are GraphQL errors, raised as ``RequestError`` so that they are
shown as they are while every other exception is masked.
"""

from __future__ import annotations

import enum
from typing import Any

import strawberry
from graphql import GraphQLError


@strawberry.enum
class ErrorCode(enum.Enum):
    NOT_FOUND = "NOT_FOUND"
    FORBIDDEN = "FORBIDDEN"
    INVALID_INPUT = "INVALID_INPUT"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    EMAIL_TAKEN = "EMAIL_TAKEN"
    OUT_OF_STOCK = "OUT_OF_STOCK"
    INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"
    PRICE_BELOW_COST = "PRICE_BELOW_COST"
    PRODUCT_NOT_VISIBLE = "PRODUCT_NOT_VISIBLE"
    REGION_NOT_ALLOWED = "REGION_NOT_ALLOWED"
    CUSTOMER_GROUP_NOT_ALLOWED = "CUSTOMER_GROUP_NOT_ALLOWED"
    RISK_BLOCKED = "RISK_BLOCKED"
    RATE_LIMITED = "RATE_LIMITED"
    DUPLICATE_CODE = "DUPLICATE_CODE"
    ORDER_STATE = "ORDER_STATE"
    SUPPLIER_UNAVAILABLE = "SUPPLIER_UNAVAILABLE"
    IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"
    CODE_NOT_FOUND = "CODE_NOT_FOUND"
    WRONG_PASSWORD = "WRONG_PASSWORD"  # noqa: S105 - an error code, not a password
    CODE_FROZEN = "CODE_FROZEN"
    CODE_VOIDED = "CODE_VOIDED"
    CODE_EXPIRED = "CODE_EXPIRED"
    CODE_NOT_YET_VALID = "CODE_NOT_YET_VALID"
    CODE_USED_UP = "CODE_USED_UP"
    CHANNEL_NOT_AUTHORIZED = "CHANNEL_NOT_AUTHORIZED"


@strawberry.type
class UserError:
    field: list[str] | None
    code: ErrorCode
    message: str


def user_error(code: ErrorCode, message: str, field: str | None = None) -> UserError:
    return UserError(field=[field] if field else None, code=code, message=message)


class Refused(Exception):
    """A domain refusal raised deep in a resolver; the mutation answers with its error."""

    def __init__(self, error: UserError) -> None:
        super().__init__(error.message)
        self.error = error


def order_state(message: str) -> Refused:
    return Refused(user_error(ErrorCode.ORDER_STATE, message))


# What a client sees of an unexpected failure (schema.extensions masks it).
MASKED_MESSAGE = "Internal server error."


def code_of_uncoded(message: str) -> str:
    """The ``extensions.code`` of an error raised without one: graphql-core's and
    strawberry's answers to a request (syntax, unknown fields, variables that do not fit,
    the depth and alias limits) are the client's; a masked failure is ours."""
    return "INTERNAL_SERVER_ERROR" if message == MASKED_MESSAGE else "BAD_REQUEST"


def refused_request_body(message: str) -> dict[str, Any]:
    """The JSON body of a request refused before GraphQL could read it (not JSON, too
    large, a method or content type the endpoint does not take): shaped like a GraphQL
    response, so that clients read every refusal one way."""
    return {"errors": [{"message": message, "extensions": {"code": "BAD_REQUEST"}}]}


class RequestError(GraphQLError):
    """A GraphQL error whose message is meant for the client (``extensions.code`` set)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message, extensions={"code": code})


def unauthenticated(message: str) -> RequestError:
    return RequestError(message, "UNAUTHENTICATED")


def bad_request(message: str) -> RequestError:
    return RequestError(message, "BAD_REQUEST")


def forbidden_request(message: str) -> RequestError:
    return RequestError(message, "FORBIDDEN")
