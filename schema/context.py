"""What every resolver gets in ``info.context``."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
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


# How stale a subscription's check of its credential may grow before it is made again.
RECHECK_SECONDS = 5.0


@dataclass
class Context:
    services: Services
    request: Request | WebSocket
    response: Response | WebSocket | None
    viewer: Principal | None = None
    # Why the credential given was refused, told to the caller on its first field.
    auth_error: str | None = None
    connection_params: dict[str, Any] | None = field(default=None)
    # Set on WebSockets: checks the connection's credential again.
    reauthenticate: Callable[[], Awaitable[None]] | None = None
    checked_at: float = field(default_factory=time.monotonic)

    async def recheck(self, max_age: float = 0.0) -> Principal:
        """The viewer, after checking a long-lived connection's credential again when the
        last check is older than ``max_age`` seconds; raises once it is revoked."""
        if self.reauthenticate is not None and time.monotonic() - self.checked_at >= max_age:
            await self.reauthenticate()
            self.checked_at = time.monotonic()
        if self.viewer is None:
            raise unauthenticated(self.auth_error or "Authentication required.")
        return self.viewer

    # The caller's purchase price by product id, batched over one request's products
    # (made on first use by resolvers.commerce; it caches nothing between loads).
    price_loader: DataLoader[int, Decimal] | None = None
    # Product.delistedAt and Supplier.syncedAt by id, batched the same way (made on first
    # use by resolvers.supplier_sync).
    delisted_loader: DataLoader[int, datetime | None] | None = None
    synced_loader: DataLoader[int, datetime | None] | None = None


Info = strawberry.Info[Context, None]


def require_viewer(info: Info) -> Principal:
    viewer = info.context.viewer
    if viewer is None:
        raise unauthenticated(
            info.context.auth_error
            or "Authentication required: send `Authorization: Bearer <token>`."
        )
    return viewer
