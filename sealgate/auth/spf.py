"""SPF (RFC 7208) for the HELO name and MAIL FROM, evaluated by pyspf over our DNS module."""

from __future__ import annotations

import contextvars
import ipaddress
from typing import Any, Iterator

import dns.rdatatype
import spf

from sealgate.dns import DNSTempError, Resolver
from sealgate.dns.cache import remembered
from sealgate.pipeline import AuthResult, Services, Transaction

# pyspf looks DNS up through its module-level DNSLookup; we route that through
# whichever resolver the current evaluation set, so no global state leaks
# between threads or tests.
_current: contextvars.ContextVar[Resolver] = contextvars.ContextVar("sealgate_spf_resolver")


def _lookup(name: str, qtype: str, strict: bool = True, timeout: float = 20) -> Iterator[Any]:
    """pyspf's DNSLookup contract: ((name, type), value) pairs, TempError on a temporary failure."""
    try:
        answer = _current.get().lookup(name, qtype)
    except DNSTempError as exc:
        raise spf.TempError(f"DNS {exc}") from None
    for record in answer.records:
        rdata: Any = record
        rtype = dns.rdatatype.to_text(rdata.rdtype)
        if rtype in ("A", "AAAA"):
            value: Any = rdata.address
        elif rtype == "MX":
            value = (rdata.preference, rdata.exchange.to_text(omit_final_dot=True))
        elif rtype == "PTR":
            value = rdata.target.to_text(omit_final_dot=True)
        elif rtype in ("TXT", "SPF"):
            value = rdata.strings
        else:
            continue
        yield ((name, rtype), value)


spf.DNSLookup = _lookup


def check(resolver: Resolver, client_ip: str, sender: str, helo: str,
          lookup_time: float) -> tuple[str, str]:
    """(result, explanation) for one identity; `sender` is the MAIL FROM or postmaster@HELO.

    The result is a function of these arguments and the DNS answers alone, so it is remembered
    until the first of those answers expires: the next message from the same sender and
    address is not evaluated again (a bulk sender's thousands, a mailing list's). Only an
    explanation using the %{t} macro (the time) keeps the time of the first evaluation."""
    def evaluate() -> tuple[str, str]:
        token = _current.set(resolver)
        try:
            query = spf.query(i=client_ip, s=sender, h=helo, querytime=lookup_time)
            result, _code, explanation = query.check()
        finally:
            _current.reset(token)
        return result, explanation

    # temperror is never kept: pyspf also gives it when its lookup time runs out, with every
    # answer it did get cached and valid.
    return remembered(resolver, ("spf", client_ip, sender, helo, lookup_time), evaluate,
                      keep=lambda outcome: outcome[0] != "temperror")


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower()


def stage(txn: Transaction, services: Services) -> None:
    """Both identities: DMARC aligns on MAIL FROM, or on HELO when the sender is null (bounces)."""
    session, msg = txn.session, txn.message
    try:
        ipaddress.ip_address(session.client_ip)
    except ValueError:
        txn.results.append(AuthResult("spf", "none", reason="no client IP address"))
        return
    lookup_time = services.config.verify.spf_lookup_time
    helo = session.helo
    if helo:
        result, explanation = check(services.resolver, session.client_ip,
                                    f"postmaster@{helo}", helo, lookup_time)
        txn.results.append(AuthResult("spf", result, [("smtp", "helo", helo)],
                                      reason=explanation if result != "pass" else ""))
    if msg.mail_from:
        result, explanation = check(services.resolver, session.client_ip, msg.mail_from,
                                    helo, lookup_time)
        txn.results.append(AuthResult("spf", result,
                                      [("smtp", "mailfrom", _domain(msg.mail_from))],
                                      reason=explanation if result != "pass" else ""))
