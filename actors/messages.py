"""Messages to a PoolActor and what it answers.

Each command carries its reply slot. Commands for one pool travel in a ``Batch``: many
concurrent reservations become one message and one statement.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from actors.bridge import Reply
from persistence.code_states import MoveEvent, SaleWork


@dataclass(frozen=True, slots=True)
class Reserved:
    ref: str
    code_ids: tuple[int, ...]
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Sold:
    """Codes sold, and what the sale's work returned (written in the same transaction)."""

    ref: str
    code_ids: tuple[int, ...]
    result: Any


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
class Sell:
    """Take ``quantity`` free codes and sell them at once, with ``work``, atomically.

    ``work`` runs on the event loop inside the transaction that marks the codes sold, in a
    savepoint of its own: given the connection and the code ids, it writes what goes with
    the sale (the order, the ledger postings, the events). When it raises, that sale alone
    is undone and the exception is the caller's answer.
    """

    ref: str
    quantity: int
    work: SaleWork
    reply: Reply[Sold | OutOfStock]


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
    event: MoveEvent | None = None


@dataclass(frozen=True, slots=True)
class Unfreeze:
    code_ids: tuple[int, ...]
    reply: Reply[Changed]
    event: MoveEvent | None = None


@dataclass(frozen=True, slots=True)
class Void:
    code_ids: tuple[int, ...]
    reply: Reply[Changed]
    event: MoveEvent | None = None


@dataclass(frozen=True, slots=True)
class Refresh:
    """Codes were added (an import): re-read the counters."""

    reply: Reply[PoolSnapshot]


@dataclass(frozen=True, slots=True)
class Snapshot:
    reply: Reply[PoolSnapshot]


Command = (
    Reserve
    | Sell
    | Commit
    | Release
    | ReleaseExpired
    | Freeze
    | Unfreeze
    | Void
    | Refresh
    | Snapshot
)


@dataclass(frozen=True, slots=True)
class Batch:
    """Commands for one pool, handled in one go.

    ``retry`` marks a batch re-sent to a new actor after its first actor died, so
    reservations that were written but not answered are found, not made twice.
    ``following`` is called in the actor's thread once the batch is answered: it hands
    over the commands that arrived meanwhile as the next batch (None when none did), so
    the actor goes on at once instead of waiting for the event loop to send them.
    """

    commands: tuple[Command, ...]
    retry: bool
    following: Callable[[], Batch | None]
