"""Messages to a PoolActor and what it answers.

Each command carries its reply slot. Commands for one pool travel in a ``Batch``: many
concurrent reservations become one message and one statement.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from actors.bridge import Reply


@dataclass(frozen=True, slots=True)
class Reserved:
    ref: str
    code_ids: tuple[int, ...]
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class OutOfStock:
    requested: int
    available: int


@dataclass(frozen=True, slots=True)
class Committed:
    ref: str
    code_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class NotReserved:
    """Nothing is held under this reference: never reserved, released or expired."""

    ref: str


@dataclass(frozen=True, slots=True)
class Changed:
    code_ids: tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.code_ids)


@dataclass(frozen=True, slots=True)
class PoolSnapshot:
    pool_id: int
    product_id: int
    epoch: int
    available: int
    reserved: int
    sold: int
    frozen: int
    voided: int
    window: int


@dataclass(frozen=True, slots=True)
class Reserve:
    ref: str
    quantity: int
    ttl: timedelta
    reply: Reply[Reserved | OutOfStock]


@dataclass(frozen=True, slots=True)
class Commit:
    ref: str
    reply: Reply[Committed | NotReserved]


@dataclass(frozen=True, slots=True)
class Release:
    ref: str
    reply: Reply[Changed]


@dataclass(frozen=True, slots=True)
class ReleaseExpired:
    reply: Reply[Changed]


@dataclass(frozen=True, slots=True)
class Freeze:
    code_ids: tuple[int, ...]
    reply: Reply[Changed]


@dataclass(frozen=True, slots=True)
class Unfreeze:
    code_ids: tuple[int, ...]
    reply: Reply[Changed]


@dataclass(frozen=True, slots=True)
class Void:
    code_ids: tuple[int, ...]
    reply: Reply[Changed]


@dataclass(frozen=True, slots=True)
class Refresh:
    """Codes were added (an import): re-read the counters."""

    reply: Reply[PoolSnapshot]


@dataclass(frozen=True, slots=True)
class Snapshot:
    reply: Reply[PoolSnapshot]


Command = (
    Reserve | Commit | Release | ReleaseExpired | Freeze | Unfreeze | Void | Refresh | Snapshot
)


@dataclass(frozen=True, slots=True)
class Batch:
    """Commands for one pool, handled in one go.

    ``retry`` marks a batch re-sent to a new actor after its first actor died, so
    reservations that were written but not answered are found, not made twice.
    ``done`` runs on the loop once every reply of the batch is resolved.
    """

    commands: tuple[Command, ...]
    retry: bool
    done: Callable[[], None]
