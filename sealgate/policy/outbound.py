"""Encryption policy toward destination domains: which recipients may go out, and how."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sealgate.pipeline import Verdict


@dataclass(frozen=True)
class DomainKeys:
    """What discovery found for one destination domain (from the keystore's bundle answer)."""

    domain: str
    status: str  # found | none | temporary | refused | local
    reason: str = ""
    encryption_required: bool = False


def destination_policy(keys: DomainKeys, outbound: Any) -> str:
    """require, opportunistic or never; the domain's own e=req record overrides our config."""
    if keys.encryption_required or keys.domain in outbound.require_domains:
        return "require"
    if keys.domain in outbound.never_domains:
        return "never"
    return str(outbound.default_policy)


def encrypts(keys: DomainKeys, outbound: Any) -> bool:
    return keys.status == "found" and destination_policy(keys, outbound) != "never"


def recipient_verdict(keys: DomainKeys, outbound: Any) -> Verdict | None:
    """At RCPT: refuse a recipient that policy says must get ciphertext and cannot; else None."""
    if keys.status in ("found", "local") or destination_policy(keys, outbound) != "require":
        return None
    if keys.status == "temporary":
        return Verdict("tempfail", f"Encryption to {keys.domain} is required but its sealgate key "
                       f"could not be looked up now ({keys.reason}); try again later", "451", "4.7.5")
    why = keys.reason or "it publishes no sealgate key"
    return Verdict.reject(f"Encryption to {keys.domain} is required but no valid key was found "
                          f"({why}); not sent in plaintext", "550", "5.7.5")


@dataclass(frozen=True)
class Plan:
    """How one outgoing message leaves: who gets the envelope, who gets plaintext."""

    encrypted: tuple[str, ...]  # recipients whose domain gets the envelope
    plaintext: tuple[str, ...]  # recipients who get the (signed) original
    split: bool                 # both kinds: the plaintext copy is re-injected separately


def plan(recipients: list[str], keys: dict[str, DomainKeys], outbound: Any) -> Plan:
    """Recipients reaching here passed recipient_verdict, so none of the plaintext ones is `require`."""
    keyed = [r for r in recipients if encrypts(keys[domain_of(r)], outbound)]
    plain = [r for r in recipients if r not in keyed]
    if keyed and plain and outbound.mixed == "plaintext" and not any(
            destination_policy(keys[domain_of(r)], outbound) == "require" for r in keyed):
        return Plan((), tuple(recipients), False)
    return Plan(tuple(keyed), tuple(plain), bool(keyed and plain))


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower().rstrip(".")
