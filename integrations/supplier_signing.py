"""HMAC-SHA256 signatures of the supplier protocol, for requests and responses alike.

The signed message is ``f"{timestamp}\\n{METHOD}\\n{path}\\n"`` followed by the body bytes,
where ``path`` is the request target as sent on the wire (percent-encoded path and query).
A response is signed as method ``RESPONSE`` over the path of the request it answers, so a
valid response cannot be replayed as the answer to a different request path or as a request.
The timestamp bounds replays to the allowed clock skew.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping

TIMESTAMP_HEADER = "X-Timestamp"
SIGNATURE_HEADER = "X-Signature"
RESPONSE = "RESPONSE"
MAX_SKEW = 300.0

_TIMESTAMP = re.compile(r"[0-9]{1,12}", re.ASCII)
_SIGNATURE = re.compile(r"[0-9a-f]{64}", re.ASCII)


def sign(secret: bytes, method: str, path: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The headers that sign one request (or, with method ``RESPONSE``, one response)."""
    return {
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: _digest(secret, method, path, body, str(timestamp)),
    }


def verify(
    secret: bytes,
    method: str,
    path: str,
    body: bytes,
    headers: Mapping[str, str],
    now: float,
    *,
    max_skew: float = MAX_SKEW,
) -> bool:
    """Whether ``headers`` carry a valid signature made within ``max_skew`` seconds of now."""
    lowered = {name.lower(): value for name, value in headers.items()}
    timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    signature = lowered.get(SIGNATURE_HEADER.lower(), "")
    # Shape checks first: compare_digest refuses non-ASCII text, and int() would accept
    # forms like "+1_000" that the signer never produces.
    if not _TIMESTAMP.fullmatch(timestamp) or not _SIGNATURE.fullmatch(signature):
        return False
    if abs(now - int(timestamp)) > max_skew:
        return False
    expected = _digest(secret, method, path, body, timestamp)
    return hmac.compare_digest(expected, signature)


def _digest(secret: bytes, method: str, path: str, body: bytes, timestamp: str) -> str:
    message = f"{timestamp}\n{method.upper()}\n{path}\n".encode() + body
    return hmac.new(secret, message, hashlib.sha256).hexdigest()
