"""What every resolver gets in ``info.context``."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import strawberry
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.dataloader import DataLoader

from domain.access import Principal
from schema.errors import unauthenticated

if TYPE_CHECKING:
    from server import Services


@dataclass
class Context:
    services: Services
    request: Request | WebSocket
    response: Response | WebSocket | None
    viewer: Principal | None = None
    # Why the credential given was refused, told to the caller on its first field.
    auth_error: str | None = None
    connection_params: dict[str, Any] | None = field(default=None)
    # The caller's purchase price by product id, batched over one request's products
    # (made on first use by resolvers.commerce; it caches nothing between loads).
    price_loader: DataLoader[int, Decimal] | None = None


Info = strawberry.Info[Context, None]


def require_viewer(info: Info) -> Principal:
    viewer = info.context.viewer
    if viewer is None:
        raise unauthenticated(
            info.context.auth_error
            or "Authentication required: send `Authorization: Bearer <token>`."
        )
    return viewer
