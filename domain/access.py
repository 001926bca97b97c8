"""Who may do what: staff roles, the principal behind a request, and role checks."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Role(enum.StrEnum):
    OWNER = "OWNER"
    OPERATOR = "OPERATOR"
    FINANCE = "FINANCE"
    VERIFIER = "VERIFIER"


class Action(enum.Enum):
    MANAGE_CHANNELS = enum.auto()
    MANAGE_STAFF = enum.auto()
    # Place orders, read them and see their codes: a merchant's verifiers redeem codes,
    # they neither spend the channel's money nor learn the codes it sells.
    HANDLE_ORDERS = enum.auto()


_ALLOWED: dict[Action, frozenset[Role]] = {
    Action.MANAGE_CHANNELS: frozenset({Role.OWNER, Role.OPERATOR}),
    Action.MANAGE_STAFF: frozenset({Role.OWNER}),
    Action.HANDLE_ORDERS: frozenset({Role.OWNER, Role.OPERATOR, Role.FINANCE}),
}


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: a staff user or an API key, always acting for one channel."""

    channel_id: int
    channel_path: str
    role: Role
    user_id: int | None = None
    api_key_id: int | None = None
    # The merchant a VERIFIER redeems for.
    merchant_id: int | None = None

    @property
    def is_platform(self) -> bool:
        return "." not in self.channel_path

    @property
    def actor(self) -> str:
        """Who did it, as events and records name them."""
        if self.user_id is not None:
            return f"user:{self.user_id}"
        return f"api-key:{self.api_key_id}"

    def may(self, action: Action) -> bool:
        return self.role in _ALLOWED[action]

    def may_grant(self, role: Role) -> bool:
        """Only an owner hands out roles, and an owner may hand out any role."""
        return self.role is Role.OWNER


def in_subtree(path: str, ancestor_path: str) -> bool:
    """Whether the channel at ``path`` is the channel at ``ancestor_path`` or below it."""
    return path == ancestor_path or path.startswith(ancestor_path + ".")
