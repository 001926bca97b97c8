"""Rules for staff accounts: e-mail addresses and passwords."""

from __future__ import annotations

import re

from domain.channels import Problem

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 8
# argon2 hashes any length, but a megabyte password is a cheap way to burn our CPU.
MAX_PASSWORD = 256


def clean_email(email: str) -> tuple[str, Problem | None]:
    cleaned = email.strip().lower()
    if len(cleaned) > 254 or not _EMAIL.match(cleaned):
        return cleaned, Problem("email", "Give a valid e-mail address.")
    return cleaned, None


def check_password(password: str) -> Problem | None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        return Problem("password", f"A password has {MIN_PASSWORD} to {MAX_PASSWORD} characters.")
    return None
