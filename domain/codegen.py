"""Codes the platform issues itself: random, checkable, easy to read aloud and type.

A code is 19 random characters and one check character from a 32-letter alphabet without
look-alikes (no 0/O, 1/I), shown in five groups of four: ``K7QX-M2PA-9ZRT-HC4W-NB3E``.
19 characters of 5 bits each carry 95 bits from ``secrets``, so guessing one live code is
hopeless and a collision between two is astronomically rare (the store still checks).

The check character is Damm's algorithm over the quasigroup ``x * y = 2x + y`` of the
field GF(32): its table is a Latin square (every single-character substitution changes
the result) and totally anti-symmetric (every swap of two adjacent different characters
does too), so ``valid`` catches all of those typos.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
RANDOM_CHARS = 19
GROUP = 4
SEPARATOR = "-"
PASSWORD_CHARS = 8
CODE_CHARS = RANDOM_CHARS + 1
RANDOM_BITS = RANDOM_CHARS * 5

_VALUE = {c: i for i, c in enumerate(ALPHABET)}
# x^5 + x^2 + 1, a primitive polynomial of GF(32).
_REDUCE = 0b100101

assert len(ALPHABET) == 32
assert len(set(ALPHABET)) == 32


def _times_two(x: int) -> int:
    x <<= 1
    return x ^ _REDUCE if x & 0b100000 else x


def _step(interim: int, digit: int) -> int:
    """Damm's operation ``interim * digit``: 2 * interim + digit in GF(32)."""
    return _times_two(interim) ^ digit


def check_char(body: str) -> str:
    """The check character that makes ``body`` + it fold to 0. ``body`` must be clean."""
    interim = 0
    for char in body:
        interim = _step(interim, _VALUE[char])
    # interim * c = 0  <=>  2 * interim + c = 0  <=>  c = 2 * interim (characteristic 2).
    return ALPHABET[_times_two(interim)]


def _folds_to_zero(chars: str) -> bool:
    interim = 0
    for char in chars:
        interim = _step(interim, _VALUE[char])
    return interim == 0


def group(chars: str) -> str:
    """``chars`` in groups of four joined by dashes."""
    return SEPARATOR.join(chars[i : i + GROUP] for i in range(0, len(chars), GROUP))


def normalize(text: str) -> str | None:
    """The canonical (grouped, upper-case) form of a typed code; None if it is not one.

    Spaces and dashes may be anywhere and letters in any case; the characters, their
    count and the check character must be right. Store and fingerprint the canonical
    form, so a code typed differently still finds its row.
    """
    chars = "".join(text.split()).replace(SEPARATOR, "").upper()
    if len(chars) != CODE_CHARS or any(c not in _VALUE for c in chars):
        return None
    if not _folds_to_zero(chars):
        return None
    return group(chars)


def valid(code: str) -> bool:
    """Whether ``code`` is a well-formed code with a correct check character."""
    return normalize(code) is not None


def _random_chars(count: int) -> str:
    value = secrets.randbits(count * 5)
    chars = []
    for _ in range(count):
        value, digit = divmod(value, 32)
        chars.append(ALPHABET[digit])
    return "".join(chars)


def new_code() -> str:
    """A fresh code in canonical form: 95 random bits and a check character."""
    body = _random_chars(RANDOM_CHARS)
    return group(body + check_char(body))


def new_password() -> str:
    """A password to go with a code: 8 characters of the same alphabet (40 bits)."""
    return _random_chars(PASSWORD_CHARS)


@dataclass(frozen=True, slots=True)
class GeneratedCode:
    code: str
    password: str | None

    def __repr__(self) -> str:
        return "GeneratedCode(code=<secret>, password=<secret>)"


def generate(with_password: bool) -> GeneratedCode:
    return GeneratedCode(new_code(), new_password() if with_password else None)
