"""Where webhooks may go. Loopback, private, link-local (cloud metadata at 169.254.169.254), multicast and
reserved addresses are refused unless a network is allow-listed (`RELIEFHUB_WEBHOOK_ALLOWED_NETWORKS`).
The check runs when an endpoint is saved and again on every connection, on the addresses the connection
actually uses, so a name that later resolves elsewhere (DNS rebinding) cannot reach inside."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from aiohttp import ClientSession, ClientTimeout, TCPConnector
from aiohttp.abc import AbstractResolver, ResolveResult

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class RefusedAddress(Exception):
    """The URL's host is, or resolves to, an address webhooks may not call."""


class AddressPolicy:
    def __init__(self, allowed_networks: Iterable[str]) -> None:
        self.allowed = [ipaddress.ip_network(n, strict=False) for n in allowed_networks]

    def permits(self, address: IPAddress) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in net for net in self.allowed):
            return True
        return address.is_global and not (address.is_multicast or address.is_reserved)

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Every address `host` resolves to, refusing the lot if any one of them is not permitted."""
        try:
            literal: IPAddress | None = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [literal]
        else:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except socket.gaierror as exc:
                raise RefusedAddress(f"{host} does not resolve") from exc
            addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
        refused = [a for a in addresses if not self.permits(a)]
        if refused or not addresses:
            raise RefusedAddress(f"{host} resolves to {refused[0] if refused else 'nothing'}, which is not public")
        return addresses

    async def check_url(self, url: str) -> None:
        parts = urlsplit(url)
        if not parts.hostname:
            raise RefusedAddress("the URL has no host")
        await self.resolve(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, answering only with addresses the policy permits (a name that resolves to any
    other address is refused). aiohttp connects to exactly what it returns, so this holds at connect time;
    TLS still verifies the certificate against the URL's host name."""

    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            addresses = await self.policy.resolve(host, port)
        except RefusedAddress as exc:
            raise OSError(str(exc)) from exc
        return [
            ResolveResult(
                hostname=host,
                host=str(a),
                port=port,
                family=socket.AF_INET6 if a.version == 6 else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for a in addresses
        ]

    async def close(self) -> None:
        return None


def guarded_session(policy: AddressPolicy, *, limit: int, limit_per_host: int, timeout: float) -> ClientSession:
    """An HTTP client for webhooks: every new connection's address is checked (no DNS cache, so a changed
    answer is checked too), no redirects are followed (see `Dispatcher`), bounded connections."""
    connector = TCPConnector(
        resolver=GuardedResolver(policy), use_dns_cache=False, limit=limit, limit_per_host=limit_per_host
    )
    return ClientSession(
        connector=connector,
        timeout=ClientTimeout(total=timeout),
        headers={"user-agent": "ReliefHub-Webhooks/1"},
        auto_decompress=False,
    )
