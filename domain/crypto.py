"""Encryption of code secrets at rest: AES-256-GCM with key ids, HMAC fingerprints.

A blob is ``nonce (12 bytes) || ciphertext+tag``. The associated data binds a blob to
its row (the code's fingerprint and the field's name), so ciphertexts cannot be swapped
between rows or fields unnoticed.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE = 12


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, blob: bytes, aad: bytes) -> bytes:
    """Raises cryptography.exceptions.InvalidTag when the blob or its context was altered."""
    return AESGCM(key).decrypt(blob[:NONCE], blob[NONCE:], aad)


def derive(master_key: bytes, purpose: str) -> bytes:
    """A separate 256-bit key per purpose, so no key is ever used for two jobs."""
    return hmac.new(master_key, b"quanyi:" + purpose.encode(), hashlib.sha256).digest()


def fingerprint(fingerprint_key: bytes, code: str) -> bytes:
    return hmac.new(fingerprint_key, code.encode(), hashlib.sha256).digest()


def mask(code: str) -> str:
    """What listings show of a code: its last four characters."""
    return "•" * min(max(len(code) - 4, 0), 8) + code[-4:]
