"""DKIM signing (RFC 6376, RFC 8463) with the private-key step delegated.

dkimpy canonicalizes and hashes the headers; the body hash is computed here
while streaming (a 25 MB message is never held in memory), and the keystore
signs the final SHA-256 digests: RSA in C through `cryptography`, Ed25519
through libsodium, instead of dkimpy's pure-Python RSA (13 ms a signature).
The digests of every algorithm are made first, so that one keystore request
signs them all. Canonicalization is relaxed/relaxed.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import IO, Mapping

import dkim
from dkim.canonicalization import Relaxed

from sealgate.auth.dkim_body import body_hash

# Signed when present; From is signed once more than it occurs, so none can be added.
SIGNED_HEADERS = (b"from", b"to", b"cc", b"reply-to", b"subject", b"date", b"message-id",
                  b"in-reply-to", b"references", b"mime-version", b"content-type",
                  b"content-transfer-encoding")


def relaxed_body_hash(body: IO[bytes]) -> bytes:
    """The bh= value of a relaxed-canonical body, SHA-256."""
    return base64.b64encode(body_hash(body, relaxed=True))


@dataclass(frozen=True)
class Unsigned:
    """A DKIM-Signature whose b= is still empty, and the SHA-256 digest its signature covers."""

    algorithm: str
    selector: str
    tags: bytes
    digest: bytes

    def value(self, signature: bytes) -> str:
        """The header's value once the keystore has signed `digest`."""
        # Folding between tags changes nothing under relaxed canonicalization.
        return (self.tags + base64.b64encode(signature)).replace(b"; ", b";\r\n\t").decode("ascii")


def prepare(headers: list[tuple[str, bytes]], body_hash: bytes, *, domain: str,
            selectors: Mapping[str, str], timestamp: int) -> list[Unsigned]:
    """One DKIM-Signature to sign per algorithm in `selectors` (algorithm -> selector), for this
    message (headers as received: raw values), in that order."""
    wire = [(name.encode(), value + b"\r\n") for name, value in headers]
    present = [name.lower() for name, _ in wire]
    include = [h for h in SIGNED_HEADERS for _ in range(present.count(h))] + [b"from"]
    canonical = Relaxed.canonicalize_headers(wire)
    pending = []
    for algorithm, selector in selectors.items():
        fields = [(b"v", b"1"), (b"a", algorithm.encode()), (b"c", b"relaxed/relaxed"),
                  (b"d", domain.encode()), (b"s", selector.encode()),
                  (b"t", str(timestamp).encode()), (b"h", b":".join(include)),
                  (b"bh", body_hash), (b"b", b"")]
        tags = b"; ".join(b"=".join(f) for f in fields)
        hasher = hashlib.sha256()
        dkim.hash_headers(hasher, Relaxed, canonical, include, (b"DKIM-Signature", b" " + tags),
                          dict(fields))
        pending.append(Unsigned(algorithm, selector, tags, hasher.digest()))
    return pending
