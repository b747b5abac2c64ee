"""The sealgate TXT record (docs/dns-record.md): what a domain publishes so others find its keys.

    _sealgate.example.org. IN TXT "v=SG1; h=<sha256 hex of the bundle>; e=opt; t=req; u=<bundle URL>"

Pure parsing and formatting, shared by key discovery, the outbound TLS policy
and the inbound TLS requirement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from sealgate.dns import Resolver

LABEL = "_sealgate"
VERSION = "SG1"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class RecordError(ValueError):
    """A published record that cannot be used; the message says which tag is wrong."""


@dataclass(frozen=True)
class SealgateRecord:
    bundle_hash: str  # SHA-256 of the exact bundle bytes, lower-case hex
    bundle_url: str
    encryption_required: bool = False
    tls_required: bool = False
    ttl: int = 0
    authenticated: bool = False  # the DNS answer carried the AD bit (DNSSEC)

    def to_text(self) -> str:
        return (f"v={VERSION}; h={self.bundle_hash}; e={'req' if self.encryption_required else 'opt'}; "
                f"t={'req' if self.tls_required else 'opt'}; u={self.bundle_url}")


def _flag(tags: dict[str, str], name: str) -> bool:
    value = tags.get(name, "opt")
    if value not in ("req", "opt"):
        raise RecordError(f"tag {name}={value!r}: expected req or opt")
    return value == "req"


@lru_cache(maxsize=1024)  # the same few records, looked up for every message; a record is immutable
def parse(text: str, ttl: int = 0, authenticated: bool = False) -> SealgateRecord:
    parts = [p.strip() for p in text.strip().split(";") if p.strip()]
    if not parts or parts[0].replace(" ", "") != f"v={VERSION}":
        raise RecordError(f"not a sealgate record (must start with v={VERSION})")
    tags: dict[str, str] = {}
    for part in parts[1:]:
        name, sep, value = part.partition("=")
        if not sep:
            raise RecordError(f"malformed tag {part!r} (expected name=value)")
        tags.setdefault(name.strip().lower(), value.strip())
    digest = tags.get("h", "").lower()
    if not _HEX64.match(digest):
        raise RecordError("tag h: expected the bundle's SHA-256 as 64 hex digits")
    url = tags.get("u", "")
    if not url.startswith(("https://", "http://")):
        raise RecordError("tag u: expected the bundle's https:// URL")
    return SealgateRecord(digest, url, _flag(tags, "e"), _flag(tags, "t"), ttl, authenticated)


def lookup(resolver: Resolver, domain: str) -> SealgateRecord | None:
    """The domain's record, None when it publishes none; RecordError when it publishes junk,
    DNSTempError when DNS fails."""
    answer = resolver.lookup(f"{LABEL}.{domain.rstrip('.')}", "TXT")
    texts = [t.decode("utf-8", "replace") for t in answer.texts()]
    ours = [t for t in texts if t.replace(" ", "").startswith(f"v={VERSION}")]
    if not ours:
        return None
    if len(ours) > 1:
        raise RecordError(f"{domain} publishes {len(ours)} sealgate records; exactly one is allowed")
    return parse(ours[0], answer.ttl, answer.authenticated)
