"""The outbound TLS policy for one Postfix next-hop destination, from the sealgate record.

Postfix looks smtp_tls_policy_maps up with the next-hop destination: a domain ("example.org",
or "example.org:587" with a port), a parent domain with a leading dot when the domain itself
was not found (".example.org"), or an explicit host in brackets ("[mx.example.org]:25"). Only
the first two name a mail domain, and a record covers its own domain, not its subdomains; every
other key is NOTFOUND, which leaves the decision to the tables after ours and to
smtp_tls_security_level (DANE).
"""

from __future__ import annotations

import logging

from sealgate.dns import DNSTempError
from sealgate.keystore import dnsrecord
from sealgate.pipeline import Services
from sealgate.policy.tls import outbound_policy
from sealgate.tlspolicy.requirement import domain_name
from sealgate.tlspolicy.socketmap import NOTFOUND, Reply

log = logging.getLogger("sealgate")


def destination_domain(key: str) -> str:
    """The mail domain a lookup key names, or "" for keys that name none."""
    if key.startswith(("[", ".")):
        return ""
    host, _, port = key.partition(":")
    if port and not port.isdigit():
        return ""
    return domain_name(host)


def lookup(key: str, services: Services) -> Reply:
    """OK with the configured level for a t=req destination, TEMP when DNS cannot tell (Postfix
    then defers the mail rather than send it with a weaker policy), else NOTFOUND."""
    domain = destination_domain(key)
    if not domain:
        return NOTFOUND
    try:
        record = dnsrecord.lookup(services.resolver, domain)
    except DNSTempError as exc:
        log.warning("tls policy for %s: %s", domain, exc)
        return Reply("TEMP", f"sealgate record of {domain}: {exc}")
    except dnsrecord.RecordError as exc:
        log.warning("tls policy for %s: record unusable, treated as absent: %s", domain, exc)
        return NOTFOUND
    level = outbound_policy(record is not None and record.tls_required,
                            services.config.tls.policy_level)
    return Reply("OK", level) if level else NOTFOUND
