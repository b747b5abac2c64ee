"""`sealgate keys dns`: the zone-file lines a domain publishes (docs/dns-record.md and DKIM).

The sealgate record names the bundle by its hash (/<domain>/<sha256>.json),
so a record not yet updated after a rotation still leads to the bundle it
describes, whose keys stay valid through the overlap.
"""

from __future__ import annotations

from sealgate.keystore.directory import bundle_path
from sealgate.keystore.dnsrecord import LABEL, SealgateRecord
from sealgate.keystore.encoding import b64
from sealgate.keystore.errors import KeystoreError
from sealgate.keystore.material import ED25519
from sealgate.keystore.store import KeyRecord, KeyStore


def txt_strings(text: str) -> str:
    """A TXT value as quoted character-strings of at most 255 bytes (RFC 1035)."""
    chunks = [text[i:i + 255] for i in range(0, len(text), 255)] or [""]
    return " ".join('"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks)


def dkim_text(key: KeyRecord) -> str:
    """RFC 6376 key record; Ed25519 as the raw 32-byte key (RFC 8463), RSA as SubjectPublicKeyInfo."""
    kind = "ed25519" if key.algorithm == ED25519 else "rsa"
    return f"v=DKIM1; k={kind}; p={b64(key.public)}"


def zone_lines(store: KeyStore, domain: str, base_url: str, ttl: int,
               encryption_required: bool, tls_required: bool) -> list[str]:
    latest = store.latest_bundle(domain)
    if latest is None:
        raise KeystoreError("not-found", f"domain {domain} has no keys here; run "
                                         f"`sealgate keys init {domain}` first")
    record = SealgateRecord(latest[0], base_url + bundle_path(domain, latest[0]),
                            encryption_required, tls_required)
    lines = [f"{LABEL}.{domain}. {ttl} IN TXT {txt_strings(record.to_text())}"]
    lines += [f"{key.owner}._domainkey.{domain}. {ttl} IN TXT {txt_strings(dkim_text(key))}"
              for key in store.keys(domain, "dkim", states=("active",))]
    return lines
