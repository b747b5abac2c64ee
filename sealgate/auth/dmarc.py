"""DMARC: the policy record found by the RFC 9989 tree walk (or RFC 7489 with a public suffix
list), SPF and DKIM alignment with the From domain, and which of p, sp, np applies.

authheaders has a DMARC evaluator, but it reads its public suffix list from
disk on every call, cannot tell a DNS timeout from a missing record, and
checks domain existence for `np` with a TXT lookup; so this module does the
small part of DMARC that is policy and leaves DNS to sealgate.dns.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from sealgate.dns import DNSTempError, Resolver
from sealgate.pipeline import AuthResult, Services, Transaction

MAX_WALK_LABELS = 8  # RFC 9989 4.10: names longer than this jump straight to 7 labels


@dataclass(frozen=True)
class Record:
    domain: str
    tags: dict[str, str]

    @property
    def psd(self) -> str:
        return self.tags.get("psd", "u")


def parse_record(text: str) -> dict[str, str] | None:
    """Tags of a DMARC record, or None when it is not one (v=DMARC1 must come first)."""
    parts = [p.strip() for p in text.split(";")]
    if not parts or parts[0].replace(" ", "") != "v=DMARC1":
        return None
    tags: dict[str, str] = {}
    for part in parts[1:]:
        name, sep, value = part.partition("=")
        if sep:
            tags.setdefault(name.strip().lower(), value.strip().lower())
    return tags


def fetch_record(resolver: Resolver, domain: str) -> Record | None:
    """The single DMARC record at _dmarc.domain; several records count as none (RFC 7489 6.6.3)."""
    found = [t for t in (parse_record(txt.decode("utf-8", "replace"))
                         for txt in resolver.lookup(f"_dmarc.{domain}", "TXT").texts()) if t is not None]
    return Record(domain, found[0]) if len(found) == 1 else None


def walk_targets(domain: str) -> list[str]:
    """Names queried by the tree walk, longest first, ending at the top-level label."""
    labels = domain.split(".")
    targets = [domain]
    if len(labels) > MAX_WALK_LABELS:
        labels = labels[-(MAX_WALK_LABELS - 1):]
        targets.append(".".join(labels))
    while len(labels) > 1:
        labels = labels[1:]
        targets.append(".".join(labels))
    return targets


def tree_walk(resolver: Resolver, domain: str) -> list[Record]:
    return [r for r in (fetch_record(resolver, t) for t in walk_targets(domain)) if r is not None]


def organizational_domain(domain: str, records: list[Record]) -> str:
    """RFC 9989 4.10.2: psd=n marks the org domain, psd=y marks the level above it, else the shortest."""
    for record in records:
        if record.psd == "n":
            return record.domain
        if record.psd == "y":
            if record.domain == domain:
                return domain
            labels = domain.split(".")
            return ".".join(labels[-(record.domain.count(".") + 2):])
    return records[-1].domain if records else domain


@lru_cache(maxsize=4)
def _public_suffix_list(path: str):  # type: ignore[no-untyped-def]
    from publicsuffix2 import PublicSuffixList
    return PublicSuffixList(path or None)


def psl_org_domain(domain: str, psl_file: str) -> str:
    return _public_suffix_list(psl_file).get_sld(domain, strict=False) or domain


@dataclass(frozen=True)
class Discovery:
    """Where the policy came from and how the From domain's organizational domain was found."""

    record: Record | None
    org_domain: str


def org_domain_of(resolver: Resolver, domain: str, mode: str, psl_file: str) -> str:
    """The organizational domain of an SPF or DKIM identifier, for relaxed alignment."""
    if mode == "psl":
        return psl_org_domain(domain, psl_file)
    return organizational_domain(domain, tree_walk(resolver, domain))


def discover(resolver: Resolver, from_domain: str, mode: str, psl_file: str) -> Discovery:
    if mode == "psl":
        org = psl_org_domain(from_domain, psl_file)
        record = fetch_record(resolver, from_domain) or (
            fetch_record(resolver, org) if org != from_domain else None)
        return Discovery(record, org)
    records = tree_walk(resolver, from_domain)
    return Discovery(records[0] if records else None, organizational_domain(from_domain, records))


def domain_exists(resolver: Resolver, domain: str) -> bool:
    """RFC 9989: a non-existent domain has no A, AAAA or MX record (an NXDOMAIN answers all three)."""
    for rdtype in ("A", "AAAA", "MX"):
        answer = resolver.lookup(domain, rdtype)
        if answer.nxdomain:
            return False
        if answer.records:
            return True
    return False


def applicable_policy(resolver: Resolver, from_domain: str, record: Record) -> tuple[str, str]:
    """(tag, value): p on the policy domain itself; below it sp, or np for a non-existent domain."""
    tags = record.tags
    if record.domain == from_domain and record.psd != "y":
        return "p", tags.get("p", "none")
    if "np" in tags and not domain_exists(resolver, from_domain):
        return "np", tags["np"]
    if "sp" in tags:
        return "sp", tags["sp"]
    return "p", tags.get("p", "none")


def aligned(identifier: str, from_domain: str, from_org: str, mode: str,
            org_of: Callable[[str], str]) -> bool:
    identifier = identifier.lower().rstrip(".")
    if identifier == from_domain:
        return True
    return mode != "s" and bool(identifier) and org_of(identifier) == from_org


def evaluate(txn: Transaction, services: Services) -> AuthResult:
    cfg = services.config.verify
    resolver = services.resolver
    domains = txn.message.from_domains()
    if len(set(domains)) != 1 or not domains[0]:
        reason = "no From address" if not domains or not any(domains) else \
            "several From domains" if len(set(domains)) > 1 else "From address without a domain"
        return AuthResult("dmarc", "permerror", reason=reason)
    from_domain = domains[0]
    props = [("header", "from", from_domain)]
    try:
        found = discover(resolver, from_domain, cfg.dmarc_discovery, cfg.psl_file)
        if found.record is None or "p" not in found.record.tags:
            return AuthResult("dmarc", "none", props, reason="no DMARC record")
        tag, policy = applicable_policy(resolver, from_domain, found.record)
        props.append(("policy", "dmarc", policy))

        known: dict[str, str] = {}  # per message: lru_cache's wrapper costs more to build

        def org_of(domain: str) -> str:
            if domain not in known:
                known[domain] = org_domain_of(resolver, domain, cfg.dmarc_discovery, cfg.psl_file)
            return known[domain]

        tags = found.record.tags
        spf_domain = _spf_identity_passed(txn)
        dkim_domains = [r.prop("header", "d") for r in txn.results
                        if r.method == "dkim" and r.result == "pass"]
        spf_ok = spf_domain is not None and aligned(spf_domain, from_domain, found.org_domain,
                                                    tags.get("aspf", "r"), org_of)
        dkim_ok = any(aligned(d, from_domain, found.org_domain, tags.get("adkim", "r"), org_of)
                      for d in dkim_domains)
    except DNSTempError as exc:
        return AuthResult("dmarc", "temperror", props, reason=str(exc))
    result = "pass" if spf_ok or dkim_ok else "fail"
    return AuthResult("dmarc", result, props, comment=f"{tag}={policy}")


def _spf_identity_passed(txn: Transaction) -> str | None:
    """The SPF-authenticated domain DMARC uses: MAIL FROM, or the HELO name for a null sender."""
    wanted = "mailfrom" if txn.message.mail_from else "helo"
    for r in txn.results:
        if r.method == "spf" and r.prop("smtp", wanted):
            value = r.prop("smtp", wanted)
            return value if r.result == "pass" else None
    return None


def stage(txn: Transaction, services: Services) -> None:
    txn.results.append(evaluate(txn, services))
