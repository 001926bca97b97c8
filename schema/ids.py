"""Opaque global ids: base64 of ``<Type>:<number>``.

Clients must treat them as opaque strings; the type inside lets a wrong kind of id be
refused as not found instead of hitting another table's row.
"""

from __future__ import annotations

import base64
import binascii

import strawberry


def encode(type_name: str, key: int) -> strawberry.ID:
    return strawberry.ID(base64.b64encode(f"{type_name}:{key}".encode()).decode())


def decode(type_name: str, value: str) -> int | None:
    """The number inside an id of ``type_name``; None for anything else."""
    try:
        kind, _, key = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if kind != type_name or not (key.isascii() and key.isdigit()) or len(key) > 18:
        return None
    return int(key)
