"""Where webhooks may go. Loopback, private, link-local (cloud metadata at 169.254.169.254), multicast and
reserved addresses are refused unless a network is allow-listed (`RELIEFHUB_WEBHOOK_ALLOWED_NETWORKS`).
The check runs when an endpoint is saved and again on every connection, on the addresses the connection
actually uses, so a name that later resolves elsewhere (DNS rebinding) cannot reach inside."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

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


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses the policy permits (checked at connect
    time on the resolved address; TLS still verifies the certificate against the URL's host name)."""

    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self.policy.resolve(host, port)
        except RefusedAddress as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        return await self.inner.connect_tcp(str(addresses[0]), port, timeout, local_address, socket_options)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks do not use unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport whose connections go through `GuardedBackend`."""

    def __init__(self, policy: AddressPolicy, *, max_connections: int) -> None:
        self.policy = policy
        self.max_connections = max_connections

    @cached_property
    def _inner(self) -> httpx.AsyncHTTPTransport:
        transport = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=self.max_connections, max_keepalive_connections=self.max_connections)
        )
        # httpx builds its pool without a backend parameter; swap in an identical pool with ours.
        transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=transport._pool._ssl_context,
            max_connections=self.max_connections,
            max_keepalive_connections=self.max_connections,
            keepalive_expiry=5.0,
            network_backend=GuardedBackend(self.policy),
        )
        return transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()
