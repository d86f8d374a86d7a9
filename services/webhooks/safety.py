"""Where webhooks may go. Loopback, private, link-local (cloud metadata at 169.254.169.254), site-local,
multicast and reserved addresses are refused unless a network is allow-listed
(`RELIEFHUB_WEBHOOK_ALLOWED_NETWORKS`). IPv6 addresses that carry an IPv4 address the packets end up at
(IPv4-mapped and -compatible, 6to4, Teredo, NAT64) are judged by that IPv4 address. The check runs when an
endpoint is saved and again on every connection, on the addresses the connection actually uses, so a name that
later resolves elsewhere (DNS rebinding) cannot reach inside."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import ClientSession, ClientTimeout, TCPConnector
from aiohttp.abc import AbstractResolver, ResolveResult

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 address is the last 32 bits
# RFC 8215: the operator chooses the prefix length, and so where the IPv4 address sits: it cannot be judged.
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


class RefusedAddress(Exception):
    """The URL's host is, or resolves to, an address webhooks may not call."""


class AddressPolicy:
    def __init__(self, allowed_networks: Iterable[str]) -> None:
        self.allowed = [ipaddress.ip_network(n, strict=False) for n in allowed_networks]

    def permits(self, address: IPAddress) -> bool:
        if any(address in net for net in self.allowed):
            return True
        if isinstance(address, ipaddress.IPv6Address):
            if address in NAT64_LOCAL or address.is_site_local:
                return False
            carried = embedded_ipv4(address)
            if carried:
                return all(self.permits(a) for a in carried)
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


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses packets to `address` are delivered to or through (none for a plain IPv6 address)."""
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        return list(address.teredo)  # the relay server and the client behind it
    if address in NAT64:
        return [ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)]
    if 1 < int(address) <= 0xFFFF_FFFF:  # IPv4-compatible (::a.b.c.d, deprecated); :: and ::1 are IPv6's own
        return [ipaddress.IPv4Address(int(address))]
    return []


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


def guarded_session(
    policy: AddressPolicy, *, limit: int, limit_per_host: int, timeout: float, ca_bundle: Path | None = None
) -> ClientSession:
    """An HTTP client for webhooks: every new connection's address is checked (no DNS cache, so a changed
    answer is checked too), no redirects are followed (see `Dispatcher`), bounded connections. TLS trusts the
    system's CAs (OpenSSL's defaults, so `SSL_CERT_FILE` too) and those of `ca_bundle`."""
    tls = ssl.create_default_context()
    if ca_bundle is not None:
        tls.load_verify_locations(cafile=ca_bundle)
    connector = TCPConnector(
        resolver=GuardedResolver(policy),
        use_dns_cache=False,
        limit=limit,
        limit_per_host=limit_per_host,
        ssl=tls,
    )
    return ClientSession(
        connector=connector,
        timeout=ClientTimeout(total=timeout),
        headers={"user-agent": "ReliefHub-Webhooks/1"},
        auto_decompress=False,
    )
