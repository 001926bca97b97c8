"""Outbound address guard: which URLs the server may call.

Name resolution is replaced by a table on the running loop, so these tests need no DNS and
can make a public-looking name resolve to whatever a hostile DNS server would answer.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from integrations.targets import TargetRefused, TargetUnresolved, check_target

AddrInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[Any, ...]]


class Resolver:
    def __init__(self) -> None:
        self.answers: dict[str, list[str]] = {}
        self.asked: list[str] = []

    async def getaddrinfo(self, host: str, port: int, **_: Any) -> list[AddrInfo]:
        self.asked.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                socket.IPPROTO_TCP,
                "",
                (address, port),
            )
            for address in self.answers[host]
        ]


@pytest.fixture
async def resolver(monkeypatch: pytest.MonkeyPatch) -> Resolver:
    table = Resolver()
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", table.getaddrinfo)
    return table


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/file",
        "file:///etc/passwd",
        "gopher://example.com/",
        "javascript:alert(1)",
        "example.com/no-scheme",
    ],
)
async def test_schemes_other_than_http_and_https_are_refused(url: str, resolver: Resolver) -> None:
    with pytest.raises(TargetRefused, match="scheme"):
        await check_target(url, allow_private=False)
    with pytest.raises(TargetRefused, match="scheme"):
        await check_target(url, allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/",
        "http://LOCALHOST.:8080/",
        "https://admin.localhost/",
        "http://127.0.0.1/",
        "http://127.0.0.1.:9000/",
        "http://user:pw@127.0.0.1/",
        "http://10.0.0.5/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://255.255.255.255/",
        "http://240.0.0.1/",
        "http://[::1]/",
        "http://[::]/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://[ff02::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[::127.0.0.1]/",
        "http://[2002:7f00:1::]/",
        "http://[2002:c0a8:101::1]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://0x7f000001/",
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://0x7f.1/",
    ],
)
async def test_internal_addresses_in_any_spelling_are_refused_without_resolving(
    url: str, resolver: Resolver
) -> None:
    with pytest.raises(TargetRefused) as refused:
        await check_target(url, allow_private=False)
    assert not isinstance(refused.value, TargetUnresolved)
    assert resolver.asked == []


@pytest.mark.parametrize(
    "url", ["https://93.184.215.14/", "http://8.8.8.8:8080/x", "https://[2606:4700::1111]/"]
)
async def test_public_literal_addresses_pass_without_resolving(
    url: str, resolver: Resolver
) -> None:
    await check_target(url, allow_private=False)
    assert resolver.asked == []


async def test_a_name_with_only_public_addresses_passes(resolver: Resolver) -> None:
    resolver.answers["supplier.example"] = [
        "93.184.215.14",
        "2606:2800:21f:cb07:6820:80da:af6b:8b2c",
    ]
    await check_target("https://supplier.example/api", allow_private=False)
    assert resolver.asked == ["supplier.example"]


@pytest.mark.parametrize(
    "answers",
    [
        ["93.184.215.14", "10.1.2.3"],
        ["127.0.0.1"],
        ["2606:4700::1111", "::1"],
        ["::ffff:169.254.169.254"],
        ["fe80::1%eth0"],
    ],
)
async def test_a_name_with_any_internal_address_is_refused(
    answers: list[str], resolver: Resolver
) -> None:
    # Given a public-looking name whose DNS answers include an internal address
    resolver.answers["rebind.example"] = answers

    # Then it is refused: the client might connect to any one of them
    with pytest.raises(TargetRefused, match=r"rebind\.example"):
        await check_target("https://rebind.example/", allow_private=False)


async def test_a_name_that_does_not_resolve_is_an_unresolved_refusal(resolver: Resolver) -> None:
    with pytest.raises(TargetUnresolved, match="does not resolve"):
        await check_target("https://nowhere.invalid/", allow_private=False)


@pytest.mark.parametrize(
    "url", ["http://", "https:///path", "http://example.com:99999/", "http://[::1/"]
)
async def test_urls_without_a_usable_host_or_port_are_refused(url: str, resolver: Resolver) -> None:
    with pytest.raises(TargetRefused):
        await check_target(url, allow_private=True)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8000/", "http://localhost:9000/", "http://[::1]:80/", "http://10.0.0.5/"],
)
async def test_allow_private_lets_local_suppliers_through(url: str, resolver: Resolver) -> None:
    await check_target(url, allow_private=True)
