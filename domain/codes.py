"""Rules for imported codes: what a valid row is, what listings show, who manages pools.

No I/O here. The persistence layer fingerprints and encrypts the rows these rules accept.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from domain import crypto
from domain.access import Principal, Role
from domain.moments import as_utc

MAX_CODE_LENGTH = 256
MAX_PASSWORD_LENGTH = 256
# What listings put before the visible tail, so a masked code never reads as a whole one.
MASK_PREFIX = "••••"

_MANAGERS = frozenset({Role.OWNER, Role.OPERATOR})


class RowFault(enum.StrEnum):
    """Why a row of an import was not imported (the names are API error codes)."""

    INVALID_INPUT = "INVALID_INPUT"
    CODE_EXPIRED = "CODE_EXPIRED"
    DUPLICATE_CODE = "DUPLICATE_CODE"


@dataclass(frozen=True, slots=True)
class RowError:
    """One row of an upload that was not imported; ``row`` counts from 1."""

    row: int
    fault: RowFault
    message: str


@dataclass(frozen=True, slots=True)
class CodeRow:
    """A row that passed the rules: cleaned code and password, expiry in UTC."""

    row: int
    code: str
    password: str | None
    expires_at: datetime | None


DUPLICATE_IN_UPLOAD = "The code appears earlier in this upload."
DUPLICATE_STORED = "The code is already stored on the platform."


def may_manage_pools(principal: Principal) -> bool:
    """Pools, imports and code listings belong to the platform's owners and operators."""
    return principal.is_platform and principal.role in _MANAGERS


def parse_expiry(text: str) -> datetime | None:
    """An ISO-8601 date or time from a CSV cell; None for an empty cell.

    Raises ValueError for anything else. A date alone means midnight UTC of that day.
    """
    text = text.strip()
    if not text:
        return None
    return as_utc(datetime.fromisoformat(text))


def check_row(
    row: int, code: str, password: str | None, expires_at: datetime | None, now: datetime
) -> CodeRow | RowError:
    """The cleaned row, or why it is refused. Messages never quote the code."""
    code = code.strip()
    if not code:
        return RowError(row, RowFault.INVALID_INPUT, "The code is empty.")
    if len(code) > MAX_CODE_LENGTH:
        return RowError(
            row, RowFault.INVALID_INPUT, f"The code is longer than {MAX_CODE_LENGTH} characters."
        )
    if not code.isprintable():
        return RowError(row, RowFault.INVALID_INPUT, "The code contains control characters.")
    cleaned_password = (password or "").strip() or None
    if cleaned_password is not None:
        if len(cleaned_password) > MAX_PASSWORD_LENGTH:
            return RowError(
                row,
                RowFault.INVALID_INPUT,
                f"The password is longer than {MAX_PASSWORD_LENGTH} characters.",
            )
        if not cleaned_password.isprintable():
            return RowError(
                row, RowFault.INVALID_INPUT, "The password contains control characters."
            )
    try:
        expiry = as_utc(expires_at) if expires_at is not None else None
    except ValueError:
        return RowError(row, RowFault.INVALID_INPUT, "The expiry is not a possible time.")
    if expiry is not None and expiry <= now:
        return RowError(row, RowFault.CODE_EXPIRED, "The code has already expired.")
    return CodeRow(row, code, cleaned_password, expiry)


def tail(code: str) -> str:
    """The stored visible tail: the last 4 characters, never more than half the code."""
    visible = min(4, len(code) // 2)
    return code[len(code) - visible :]


def masked(stored_tail: str) -> str:
    """What listings show of a code, from its stored tail."""
    return MASK_PREFIX + crypto.mask(stored_tail)


def code_aad(fingerprint: bytes) -> bytes:
    """Associated data of a code's ciphertext: bound to its row and field."""
    return b"code:" + fingerprint


def password_aad(fingerprint: bytes) -> bytes:
    return b"password:" + fingerprint


# The CSV upload's columns; `code` is required, the others may be left out.
CSV_COLUMNS = ("code", "password", "expiresAt")


@dataclass(frozen=True, slots=True)
class CsvLayout:
    """Where each column is in a CSV's rows (None: column absent)."""

    code: int
    password: int | None
    expires_at: int | None
    width: int


def parse_header(cells: list[str]) -> CsvLayout | str:
    """The layout a header row names, or what is wrong with it."""
    expected = ",".join(CSV_COLUMNS)
    names = [c.strip() for c in cells]
    by_lower = {c.lower(): c for c in CSV_COLUMNS}
    positions: dict[str, int] = {}
    for index, name in enumerate(names):
        column = by_lower.get(name.lower())
        if column is None:
            # Never quote the cell: in a file without a header it is a code.
            return (
                f"The first row must be the header {expected}: its cell {index + 1}"
                " names none of them."
            )
        if column in positions:
            return f"The column {column} appears twice in the header."
        positions[column] = index
    if "code" not in positions:
        return f"The first row must be the header {expected}: it has no code column."
    return CsvLayout(
        code=positions["code"],
        password=positions.get("password"),
        expires_at=positions.get("expiresAt"),
        width=len(names),
    )
