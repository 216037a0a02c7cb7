"""Who is calling: the client's address (behind trusted proxies or not) and whether it is internal."""

from __future__ import annotations

import ipaddress
from functools import cache

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest | None) -> str | None:
    """The address of the client, as the outermost trusted proxy (or this server) saw it.

    With `TRUSTED_PROXY_COUNT=0` (the default) X-Forwarded-For is ignored: any
    client can write it. With N trusted proxies, each appends the address it
    saw, so the N-th entry from the right was written by the outermost proxy
    and is the client; everything left of it is the client's own claim. A
    request with fewer entries than proxies did not come through them all, and
    is judged by REMOTE_ADDR.
    """
    if request is None:
        return None
    remote = request.META.get("REMOTE_ADDR") or None
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies == 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    forwarded = [part for part in forwarded if part]
    if len(forwarded) < proxies:
        return remote
    candidate = forwarded[-proxies]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote


@cache
def _internal_networks(
    networks: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(network, strict=False) for network in networks)


def is_internal(request: HttpRequest) -> bool:
    """Whether the client's address is in `INTERNAL_NETWORKS` (probes, scrapers, operators)."""
    address = client_ip(request)
    if address is None:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in _internal_networks(tuple(settings.INTERNAL_NETWORKS)))
