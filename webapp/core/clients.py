"""Who is calling: the client's address (behind trusted proxies or not), its throttle key, if internal."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import cache
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

type Network = ipaddress.IPv4Network | ipaddress.IPv6Network
type Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@cache
def _networks(networks: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(network, strict=False) for network in networks)


def _parse(address: str | None) -> Address | None:
    if not address:
        return None
    try:
        parsed = ipaddress.ip_address(address.strip())
    except ValueError:
        return None
    # An IPv4 client seen through an IPv6 socket is that IPv4 client.
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped
    return parsed


def _in(address: Address, networks: tuple[Network, ...]) -> bool:
    return any(address in network for network in networks)


def is_trusted_proxy(address: str | None) -> bool:
    """Whether a peer with this address is one of `TRUSTED_PROXIES`, whose forwarding headers count."""
    parsed = _parse(address)
    return parsed is not None and _in(parsed, _networks(tuple(settings.TRUSTED_PROXIES)))


def client_ip(request: HttpRequest | None) -> str | None:
    """The client's address: the nearest one, walking back from this server, that is no trusted proxy.

    X-Forwarded-For is read only when the peer (REMOTE_ADDR) is in
    `TRUSTED_PROXIES`: each proxy appends the address it saw, so from the right,
    every entry that is itself a trusted proxy is skipped and the first that is
    not is the client. Anything further left is the client's own claim. With no
    trusted proxy (the default), or from any other peer, REMOTE_ADDR is the client.
    """
    if request is None:
        return None
    remote = _parse(request.META.get("REMOTE_ADDR"))
    if remote is None:
        return None
    trusted = _networks(tuple(settings.TRUSTED_PROXIES))
    client = remote
    if _in(client, trusted):
        hops = [part for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        for hop in reversed(hops):
            parsed = _parse(hop)
            if parsed is None:
                # A malformed entry: what lies beyond it cannot be trusted either.
                break
            client = parsed
            if not _in(client, trusted):
                break
    return str(client)


def throttle_key(address: str | None) -> str:
    """What throttles count a client address under: an IPv4 address, or the IPv6 network it sits in.

    One IPv6 subscriber gets a whole /64 (`THROTTLE_IPV6_PREFIX`) and picks any
    address in it at will: counting each address apart would give them an
    unlimited budget.
    """
    parsed = _parse(address)
    if parsed is None:
        return address or ""
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{parsed}/{settings.THROTTLE_IPV6_PREFIX}", strict=False))
    return str(parsed)


def client_key(request: HttpRequest | None) -> str:
    """The key every throttle counts this request's client under (`throttle_key` of `client_ip`)."""
    return throttle_key(client_ip(request))


def is_internal(request: HttpRequest) -> bool:
    """Whether the client's address is in `INTERNAL_NETWORKS` (probes, scrapers, operators)."""
    address = _parse(client_ip(request))
    return address is not None and _in(address, _networks(tuple(settings.INTERNAL_NETWORKS)))


class TrustedProxyMiddleware:
    """Drop the forwarding headers of peers that are not trusted proxies, before anything reads them.

    Django honours X-Forwarded-Proto (`SECURE_PROXY_SSL_HEADER`) from whoever
    sends it; removed here, a client talking to the server directly cannot
    claim HTTPS, nor a forwarded address.
    """

    FORWARDING_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST")

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        if not is_trusted_proxy(request.META.get("REMOTE_ADDR")):
            for header in self.FORWARDING_HEADERS:
                request.META.pop(header, None)
        return self.get_response(request)
