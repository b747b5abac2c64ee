"""The inbound TLS requirement: find out whether a peer must use TLS, and refuse it if it did not.

`check` is what the milter calls at MAIL FROM (the earliest point where the sender domain is
known, and before any DATA is sent); `stage` runs in the incoming pipeline at end of message,
records the session's TLS in Authentication-Results and applies the same check, so `sealgate
verify` and an MTA that skips the MAIL FROM call reach the same answer.

Which DNS names are asked: the peer's HELO name and its MAIL FROM domain, each with its parents
down to two labels (closest first, the first record found decides). A host name such as
mx1.example.org and a bounce domain such as bounces.example.org thus find example.org's record
without a public suffix list.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from functools import lru_cache

from sealgate.dns import DNSTempError, Resolver
from sealgate.dns.cache import remembered
from sealgate.keystore import dnsrecord
from sealgate.pipeline import Services, Session, Transaction, Verdict
from sealgate.policy.tls import Requirement, TlsFacts, auth_result, configured_reason, decide, meets

log = logging.getLogger("sealgate")

MAX_PARENT_LABELS = 4  # parents longer than this are skipped: at most 4 lookups per name
_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")


class RequiredMemory:
    """Domains whose record said t=req, and when: `dns_error_action = tempfail-if-known` uses it to
    tempfail a plaintext peer whose record DNS cannot deliver now, rather than let it in.

    Kept per process and bounded; a restart forgets, which only makes the fallback more lenient.
    """

    def __init__(self, limit: int = 10000) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def remember(self, domain: str, now: float) -> None:
        with self._lock:
            self._seen[domain] = now
            self._seen.move_to_end(domain)
            while len(self._seen) > self._limit:
                self._seen.popitem(last=False)

    def forget(self, domain: str) -> None:
        with self._lock:
            self._seen.pop(domain, None)

    def knows(self, domain: str, now: float, max_age: float) -> bool:
        with self._lock:
            seen = self._seen.get(domain)
        return seen is not None and now - seen <= max_age


REMEMBERED = RequiredMemory()


@lru_cache(maxsize=4096)  # the same few HELO names and sender domains, message after message
def domain_name(text: str) -> str:
    """`text` as a lower-case domain name with at least two labels, or "" (address literals,
    bare host names and junk from the client are no names to look up)."""
    name = text.strip().lower().rstrip(".")
    labels = name.split(".")
    if len(labels) < 2 or len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        return ""
    return name


def peer_names(helo: str, mail_from: str) -> list[str]:
    """The HELO name and the MAIL FROM domain (none for the null sender), each once."""
    sender_domain = mail_from.strip("<>").rpartition("@")[2] if "@" in mail_from else ""
    names = (domain_name(helo), domain_name(sender_domain))
    return list(dict.fromkeys(name for name in names if name))


def walk(name: str) -> list[str]:
    """`name`, then its parents of at most MAX_PARENT_LABELS labels down to two labels."""
    labels = name.split(".")
    parents = [".".join(labels[-n:]) for n in range(min(len(labels) - 1, MAX_PARENT_LABELS), 1, -1)]
    return [name, *parents]


def published_requirement(resolver: Resolver, name: str, memory: RequiredMemory,
                          now: float) -> str:
    """The domain whose sealgate record, closest to `name`, says t=req; "" if the closest record
    does not, or there is none. Raises DNSTempError when DNS cannot tell."""
    for candidate in walk(name):
        try:
            record = dnsrecord.lookup(resolver, candidate)
        except dnsrecord.RecordError as exc:
            log.warning("sealgate record of %s unusable, treated as absent: %s", candidate, exc)
            continue
        if record is None:
            memory.forget(candidate)
            continue
        if record.tls_required:
            memory.remember(candidate, now)
            return candidate
        memory.forget(candidate)
        return ""
    return ""


def _published(resolver: Resolver, name: str, memory: RequiredMemory, now: float) -> str:
    """published_requirement, kept until the first record it read expires: DNS would answer
    the same until then."""
    return remembered(resolver, ("tls-requirement", name),
                      lambda: published_requirement(resolver, name, memory, now))


def requirement_of(session: Session, mail_from: str, services: Services,
                   memory: RequiredMemory) -> Requirement:
    """The config lists first (no DNS needed), then the peer's published records."""
    tls = services.config.tls
    names = peer_names(session.helo, mail_from)
    reason = configured_reason(session.client_ip, names, tls.required_networks,
                               tls.required_domains)
    if reason or not tls.use_dns_record:
        return Requirement(reason)
    now = services.clock()
    unresolved = []
    for name in names:
        try:
            domain = _published(services.resolver, name, memory, now)
        except DNSTempError as exc:
            log.warning("client=%s[%s] cannot look up the sealgate record for %s: %s",
                        session.client_name, session.client_ip, name, exc)
            unresolved.append(name)
            continue
        if domain:
            memory.remember(domain, now)  # seen now, whether read from DNS or kept
            return Requirement(f"{domain} publishes t=req")
    known = any(memory.knows(candidate, now, tls.known_required_seconds)
                for name in unresolved for candidate in walk(name))
    return Requirement("", tuple(unresolved), known)


def check(session: Session, mail_from: str, services: Services,
          memory: RequiredMemory = REMEMBERED) -> Verdict | None:
    """None to go on, or the refusal for a peer that must use TLS and did not (enough).

    Sessions we submit (outgoing) and those without a client address (local pickup) are never
    refused: our own domain's t=req record must not block our own mail. A session already good
    enough for any peer needs no DNS at all.
    """
    tls = services.config.tls
    facts = TlsFacts.from_macros(session.tls)
    if session.outgoing or not session.client_ip or meets(facts, tls.min_version):
        return None
    need = requirement_of(session, mail_from, services, memory)
    verdict = decide(facts, need, tls)
    if verdict is not None:
        log.info("client=%s[%s] helo=%s from=<%s> tls=%s: %s %s %s (%s)", session.client_name,
                 session.client_ip, session.helo, mail_from, facts.version or "none",
                 verdict.code, verdict.dsn, verdict.text,
                 need.reason or "record lookup failed for " + ", ".join(need.unresolved))
    return verdict


def stage(txn: Transaction, services: Services) -> Verdict | None:
    """Every session's TLS into Authentication-Results, then the same check as at MAIL FROM,
    unless the milter already made it there (the answer would be the same, at the same cost)."""
    txn.results.append(auth_result(TlsFacts.from_macros(txn.session.tls)))
    if txn.message.tls_checked:
        return None
    return check(txn.session, txn.message.mail_from, services)
