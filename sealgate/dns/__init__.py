"""All DNS lookups go through here: one interface, a cached network backend and a zone-file backend."""

from sealgate.dns.resolver import Answer, DNSTempError, Resolver, make_resolver

__all__ = ["Answer", "DNSTempError", "Resolver", "make_resolver"]
