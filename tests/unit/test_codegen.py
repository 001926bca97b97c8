"""Generated codes: format, check character, randomness and uniqueness."""

from __future__ import annotations

import math
import re
from collections import Counter

import pytest

from domain import codegen
from domain.codegen import ALPHABET, CODE_CHARS

SHAPE = re.compile(r"^[23456789A-HJ-NP-Z]{4}(-[23456789A-HJ-NP-Z]{4}){4}$")


def _chars(code: str) -> str:
    return code.replace("-", "")


def test_a_code_is_five_groups_of_four_with_at_least_80_random_bits() -> None:
    code = codegen.new_code()
    assert SHAPE.match(code), code
    assert codegen.RANDOM_BITS >= 80
    assert codegen.valid(code)
    assert codegen.normalize(code) == code


def test_typing_variations_are_accepted_and_normalised() -> None:
    code = codegen.new_code()
    typed = " " + _chars(code).lower()[:7] + " " + _chars(code).lower()[7:] + "\n"
    assert codegen.normalize(typed) == code


@pytest.mark.parametrize(
    "text", ["", "ABCD", "0000-0000-0000-0000-0000", "IIII-OOOO-1111-0000-LLLL", "é" * 20]
)
def test_malformed_texts_are_not_codes(text: str) -> None:
    assert not codegen.valid(text)


def test_every_single_substitution_is_caught() -> None:
    for _ in range(200):
        chars = _chars(codegen.new_code())
        for position in range(CODE_CHARS):
            for replacement in ALPHABET:
                if replacement == chars[position]:
                    continue
                typo = chars[:position] + replacement + chars[position + 1 :]
                assert not codegen.valid(typo), (chars, position, replacement)


def test_every_adjacent_transposition_is_caught() -> None:
    swapped = 0
    for _ in range(2000):
        chars = _chars(codegen.new_code())
        for position in range(CODE_CHARS - 1):
            a, b = chars[position], chars[position + 1]
            if a == b:
                continue
            typo = chars[:position] + b + a + chars[position + 2 :]
            assert not codegen.valid(typo), (chars, position)
            swapped += 1
    assert swapped > 30_000


def test_the_check_table_is_a_totally_anti_symmetric_latin_square() -> None:
    # Exhaustively, over every interim value and every pair of characters.
    step = codegen._step
    for x in range(32):
        assert sorted(step(x, y) for y in range(32)) == list(range(32))
        assert sorted(step(y, x) for y in range(32)) == list(range(32))
        for a in range(32):
            for b in range(32):
                if a != b:
                    assert step(step(x, a), b) != step(step(x, b), a)


def test_one_hundred_thousand_codes_are_distinct_and_evenly_spread() -> None:
    codes = [codegen.new_code() for _ in range(100_000)]
    assert len(set(codes)) == len(codes)
    assert all(codegen.valid(c) for c in codes[:1000])

    # Each position (the check character too) uses the 32 characters evenly: a
    # chi-square test with 31 degrees of freedom, at a bound a fair source exceeds
    # with a probability far below one in a million.
    bound = 31 + 8 * math.sqrt(2 * 31)
    for position in range(CODE_CHARS):
        counts = Counter(_chars(c)[position] for c in codes)
        assert set(counts) <= set(ALPHABET)
        expected = len(codes) / 32
        chi2 = sum((counts.get(ch, 0) - expected) ** 2 / expected for ch in ALPHABET)
        assert chi2 < bound, (position, chi2)


def test_passwords_are_random_and_secrets_are_not_printed() -> None:
    made = [codegen.generate(with_password=True) for _ in range(1000)]
    passwords = [m.password for m in made]
    assert all(p is not None and len(p) == codegen.PASSWORD_CHARS for p in passwords)
    assert len(set(passwords)) == len(passwords)
    assert codegen.generate(with_password=False).password is None
    assert made[0].code not in repr(made[0])
