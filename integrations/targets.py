"""Outbound address guard: URLs configured by users must not reach into our own network.

Supplier base URLs and webhook URLs come from tenants. Without this check such a URL could
make the server call its own admin ports, the cloud metadata service or anything else on
the private network (server-side request forgery). A URL passes only when it is http(s) and
every address its host resolves to is a public unicast address.

The check resolves the name itself; the HTTP client resolves it again when it connects, so
a name whose answers change between the two (DNS rebinding) is not caught here.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_SCHEMES = {"http": 80, "https": 443}
# Labels that inet_aton reads as numbers (decimal, octal, hex): "0x7f000001", "2130706433",
# "127.1", "0177.0.0.1" all mean 127.0.0.1 to the resolver though they are no IP literal.
_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)", re.ASCII)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class TargetRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TargetUnresolved(TargetRefused):
    """The host name did not resolve, so it could not be checked; that may pass."""


async def check_target(url: str, *, allow_private: bool) -> None:
    """Raise ``TargetRefused`` unless ``url`` may be called from the server.

    ``allow_private`` lifts the address rules (local suppliers in development and tests) but
    not the scheme rule. A name that does not resolve raises ``TargetUnresolved``, the one
    refusal that a later attempt may not meet.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise TargetRefused(f"not a valid URL: {error}") from None
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise TargetRefused(f"scheme {scheme or '(none)'!r} is not http or https")
    host = parts.hostname
    if not host:
        raise TargetRefused("the URL names no host")
    if allow_private:
        return
    name = host.rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        raise TargetRefused(f"{host} is a loopback name")
    literal = _literal(name)
    if literal is not None:
        _check_address(host, literal)
        return
    if all(_NUMERIC_LABEL.fullmatch(label) for label in name.split(".")):
        raise TargetRefused(f"{host} is a numeric address in a non-standard form")
    loop = asyncio.get_running_loop()
    try:
        answers = await loop.getaddrinfo(
            host, port or _SCHEMES[scheme], type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except UnicodeError:
        raise TargetRefused(f"{host!r} is not a valid host name") from None
    except OSError as error:
        raise TargetUnresolved(f"{host} does not resolve: {error}") from None
    if not answers:
        raise TargetRefused(f"{host} resolves to no address")
    for _family, _type, _proto, _canon, sockaddr in answers:
        _check_address(host, ipaddress.ip_address(sockaddr[0]))


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _check_address(host: str, address: IPAddress) -> None:
    problem = _problem(address)
    if problem:
        shown = host if host == str(address) else f"{host} ({address})"
        raise TargetRefused(f"{shown} is a {problem} address")


def _problem(address: IPAddress) -> str | None:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner = _problem(embedded)
            return f"{inner} (embedded IPv4)" if inner else None
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "non-public"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries, which is where the packets really go."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None
