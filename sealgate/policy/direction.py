"""Outgoing or incoming: decided from the client address and SMTP authentication alone."""

from __future__ import annotations

import ipaddress
from functools import lru_cache


@lru_cache(maxsize=16)
def _networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def is_outgoing(client_ip: str, auth_user: str, internal_hosts: list[str]) -> bool:
    """Submitted by us: an SMTP-authenticated user, or a client inside the internal networks."""
    if auth_user:
        return True
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False  # a client without an IP address (the local pickup) is not trusted by default
    return any(address in net for net in _networks(tuple(internal_hosts)))
