"""Lookups against real resolvers, with dnspython's TTL-honouring cache and one bounded lifetime."""

from __future__ import annotations

import dns.exception
import dns.flags
import dns.rdatatype
import dns.resolver

from sealgate.dns.resolver import Answer, DNSTempError


class NetworkResolver:
    def __init__(self, nameservers: list[str], port: int, timeout: float, cache_size: int) -> None:
        self._resolver = dns.resolver.Resolver(configure=not nameservers)
        if nameservers:
            self._resolver.nameservers = list(nameservers)
            self._resolver.port = port
        self._resolver.lifetime = timeout
        self._resolver.timeout = timeout
        self._resolver.cache = dns.resolver.LRUCache(cache_size)
        self._resolver.use_edns(0, dns.flags.DO, 1232)  # ask for the AD bit

    def lookup(self, name: str, rdtype: str) -> Answer:
        try:
            answer = self._resolver.resolve(name, rdtype, search=False)
        except dns.resolver.NXDOMAIN:
            return Answer(nxdomain=True)
        except dns.resolver.NoAnswer:
            return Answer()
        except (dns.exception.Timeout, dns.resolver.LifetimeTimeout) as exc:
            raise DNSTempError(f"DNS timeout looking up {name} {rdtype}") from exc
        except (dns.resolver.NoNameservers, dns.exception.DNSException) as exc:
            raise DNSTempError(f"DNS error looking up {name} {rdtype}: {exc}") from exc
        rrset = answer.rrset
        assert rrset is not None
        return Answer(records=tuple(rrset), ttl=rrset.ttl,
                      authenticated=bool(answer.response.flags & dns.flags.AD))
