"""The TLS settings of outgoing HTTPS, made once per process.

Making a context reads the whole CA bundle (about 50 ms of the event loop); our clients
differ only in whether the environment may name the bundle.
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def client_context(*, trust_env: bool) -> ssl.SSLContext:
    return httpx.create_ssl_context(trust_env=trust_env)
