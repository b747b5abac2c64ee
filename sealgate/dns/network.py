"""Lookups against real resolvers, with one bounded lifetime; answers carry the TTL the cache
(sealgate.dns.cache) keeps them for, negative ones the SOA's negative TTL (RFC 2308)."""

from __future__ import annotations

import time

import dns.exception
import dns.flags
import dns.resolver

from sealgate.dns.resolver import Answer, DNSTempError


class NetworkResolver:
    def __init__(self, nameservers: list[str], port: int, timeout: float) -> None:
        self._resolver = dns.resolver.Resolver(configure=not nameservers)
        if nameservers:
            self._resolver.nameservers = list(nameservers)
            self._resolver.port = port
        self._resolver.lifetime = timeout
        self._resolver.timeout = timeout
        self._resolver.use_edns(0, dns.flags.DO, 1232)  # ask for the AD bit

    def lookup(self, name: str, rdtype: str) -> Answer:
        try:
            answer = self._resolver.resolve(name, rdtype, search=False, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN as exc:
            return Answer(nxdomain=True, ttl=_negative_ttl(exc))
        except (dns.exception.Timeout, dns.resolver.LifetimeTimeout) as exc:
            raise DNSTempError(f"DNS timeout looking up {name} {rdtype}") from exc
        except (dns.resolver.NoNameservers, dns.exception.DNSException) as exc:
            raise DNSTempError(f"DNS error looking up {name} {rdtype}: {exc}") from exc
        records = tuple(answer.rrset) if answer.rrset is not None else ()
        return Answer(records=records, ttl=max(0, int(answer.expiration - time.time())),
                      authenticated=bool(answer.response.flags & dns.flags.AD))


def _negative_ttl(exc: dns.resolver.NXDOMAIN) -> int:
    """The SOA's negative TTL from the NXDOMAIN response; 0 (not cached) when it has none."""
    try:
        response = next(iter(exc.responses().values()))
        return int(response.resolve_chaining().minimum_ttl)
    except (StopIteration, dns.exception.DNSException, AttributeError):
        return 0
