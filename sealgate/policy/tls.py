"""TLS decisions: must this peer use TLS, is its session good enough, what to answer, what the
Authentication-Results entry says, and which outbound policy a sealgate record asks Postfix for.

Pure functions of facts gathered elsewhere (sealgate/tlspolicy/ does the DNS), so every rule can
be tested without an MTA.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from sealgate.pipeline import AuthResult, Verdict

METHOD = "x-tls"  # not an IANA-registered method, hence the x- prefix (RFC 8601 2.7)
_VERSION = re.compile(r"^(SSL|TLS)v(\d+)(?:\.(\d+))?$")
_UNSAFE_IN_COMMENT = re.compile(r'[^\x20-\x7e]|[()\\"]')


def version_key(version: str) -> tuple[int, int, int] | None:
    """Orderable form of a version as MTAs name it (SSLv3, TLSv1, TLSv1.3); None if unrecognised."""
    match = _VERSION.match(version)
    if match is None:
        return None
    return (1 if match[1] == "TLS" else 0, int(match[2]), int(match[3] or 0))


@dataclass(frozen=True)
class TlsFacts:
    """What the MTA said about the session's TLS; all empty for a plaintext session."""

    version: str = ""
    cipher: str = ""
    bits: str = ""
    cert_subject: str = ""  # of the client certificate, when the client presented one
    cert_issuer: str = ""

    @classmethod
    def from_macros(cls, macros: Mapping[str, str]) -> "TlsFacts":
        return cls(macros.get("{tls_version}", ""), macros.get("{cipher}", ""),
                   macros.get("{cipher_bits}", ""), macros.get("{cert_subject}", ""),
                   macros.get("{cert_issuer}", ""))

    @property
    def encrypted(self) -> bool:
        return bool(self.version)


def meets(facts: TlsFacts, min_version: str) -> bool:
    """Encrypted with min_version or newer; an unreadable version does not count (fail closed)."""
    have, need = version_key(facts.version), version_key(min_version)
    return have is not None and need is not None and have >= need


def is_under(name: str, domain: str) -> bool:
    """`name` is `domain` or one of its subdomains."""
    domain = domain.lower().rstrip(".")
    return name == domain or name.endswith("." + domain)


def configured_reason(client_ip: str, names: Sequence[str], networks: Sequence[str],
                      domains: Sequence[str]) -> str:
    """Why the [tls] lists require TLS from this peer; empty when they do not."""
    try:
        address = ipaddress.ip_address(client_ip) if networks else None
    except ValueError:
        address = None
    for cidr in networks:
        if address is not None and address in ipaddress.ip_network(cidr, strict=False):
            return f"client {client_ip} is in required_networks {cidr}"
    for name in names:
        for domain in domains:
            if is_under(name, domain):
                return f"{name} is under required_domains {domain}"
    return ""


@dataclass(frozen=True)
class Requirement:
    """Whether a peer must use TLS, as far as the config and DNS could tell."""

    reason: str = ""  # why it must; empty when nothing says so
    unresolved: tuple[str, ...] = ()  # names whose sealgate record could not be looked up
    known_required: bool = False  # one of those was seen with t=req within known_required_seconds


def refusal(facts: TlsFacts, min_version: str, code: str) -> Verdict:
    """530 5.7.0 (RFC 3207's wording for plaintext), or the configured 4xx with 4.7.0."""
    if facts.encrypted:
        text = f"TLS version {facts.version} is too old: {min_version} or later required"
    else:
        text = "Must issue a STARTTLS command first"
    return Verdict("reject" if code.startswith("5") else "tempfail", text, code, f"{code[0]}.7.0")


def decide(facts: TlsFacts, need: Requirement, tls: Any) -> Verdict | None:
    """None to go on; a refusal for a peer that must use TLS and did not (well enough); a tempfail
    when DNS could not say and [tls] dns_error_action asks for one."""
    if meets(facts, tls.min_version):
        return None
    if need.reason:
        return refusal(facts, tls.min_version, tls.refusal_code)
    if need.unresolved and (tls.dns_error_action == "tempfail" or (
            tls.dns_error_action == "tempfail-if-known" and need.known_required)):
        return Verdict("tempfail", "Cannot look up whether " + ", ".join(need.unresolved)
                       + " requires TLS (DNS failure): use STARTTLS or try again later",
                       "451", "4.4.3")
    return None


def _comment_safe(value: str) -> str:
    """Client certificate names are chosen by the client: keep them from breaking the header."""
    return _UNSAFE_IN_COMMENT.sub("?", value)


def auth_result(facts: TlsFacts) -> AuthResult:
    """x-tls=pass with smtp.tlsversion/tlscipher/tlsbits for TLS, x-tls=none for plaintext.

    The values are tokens authres parses back; a client certificate's subject and issuer contain
    spaces and '=', which authres cannot parse as properties, so they go into the comment.
    """
    if not facts.encrypted:
        return AuthResult(METHOD, "none")
    properties = [("smtp", name, value) for name, value in (
        ("tlsversion", facts.version), ("tlscipher", facts.cipher), ("tlsbits", facts.bits))
        if value]
    comment = ""
    if facts.cert_subject:
        comment = f"client certificate {_comment_safe(facts.cert_subject)}"
        if facts.cert_issuer:
            comment += f" issued by {_comment_safe(facts.cert_issuer)}"
    return AuthResult(METHOD, "pass", properties, comment=comment)


def outbound_policy(tls_required: bool, level: str) -> str | None:
    """What smtp_tls_policy_maps answers for a destination: `level` if its record says t=req,
    else nothing, so that Postfix's default level (DANE) and later tables (MTA-STS) decide."""
    return level if tls_required else None
