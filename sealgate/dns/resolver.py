"""The resolver interface every stage takes as a parameter, and the factory that picks a backend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import dns.rdata


class DNSTempError(Exception):
    """A lookup that may succeed later (timeout, SERVFAIL, unreachable server)."""


@dataclass(frozen=True)
class Answer:
    """The records of one name and type; `nxdomain` tells a missing name from missing data."""

    records: tuple[dns.rdata.Rdata, ...] = ()
    ttl: int = 0
    nxdomain: bool = False
    authenticated: bool = False  # the resolver set the AD bit (DNSSEC-validated)

    def texts(self) -> list[bytes]:
        """TXT records with their character-strings joined, as RFC 7208/6376/7489 read them."""
        return [b"".join(r.strings) for r in self.records if hasattr(r, "strings")]


class Resolver(Protocol):
    def lookup(self, name: str, rdtype: str) -> Answer:
        """Records of `rdtype` at `name` (CNAMEs followed); raises DNSTempError within the timeout."""
        ...


def make_resolver(dns_config: Any) -> Resolver:
    """The backend the [dns] section asks for, behind the answer cache."""
    from sealgate.dns.cache import CachingResolver
    backend: Resolver
    if dns_config.backend == "zone":
        from sealgate.dns.zonefile import ZoneFileResolver
        backend = ZoneFileResolver(dns_config.zone_files)
    else:
        from sealgate.dns.network import NetworkResolver
        backend = NetworkResolver(dns_config.nameservers, dns_config.port, dns_config.timeout)
    return CachingResolver(backend, dns_config.cache_size)
