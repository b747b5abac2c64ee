"""DKIM signing (RFC 6376, RFC 8463) with the private-key step delegated.

dkimpy canonicalizes and hashes the headers; the body hash is computed here
while streaming (a 25 MB message is never held in memory), and the keystore
signs the final SHA-256 digest: RSA in C through `cryptography`, Ed25519
through libsodium, instead of dkimpy's pure-Python RSA (13 ms a signature).
Canonicalization is relaxed/relaxed.
"""

from __future__ import annotations

import base64
import hashlib
from typing import IO, Callable

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


def signature_value(headers: list[tuple[str, bytes]], body_hash: bytes, *, domain: str,
                    selector: str, algorithm: str, timestamp: int,
                    sign_digest: Callable[[bytes], bytes]) -> str:
    """The value of a DKIM-Signature header for this message (headers as received: raw values)."""
    wire = [(name.encode(), value + b"\r\n") for name, value in headers]
    present = [name.lower() for name, _ in wire]
    include = [h for h in SIGNED_HEADERS for _ in range(present.count(h))] + [b"from"]
    fields = [(b"v", b"1"), (b"a", algorithm.encode()), (b"c", b"relaxed/relaxed"),
              (b"d", domain.encode()), (b"s", selector.encode()),
              (b"t", str(timestamp).encode()), (b"h", b":".join(include)),
              (b"bh", body_hash), (b"b", b"")]
    unsigned = b"; ".join(b"=".join(f) for f in fields)
    hasher = hashlib.sha256()
    dkim.hash_headers(hasher, Relaxed, Relaxed.canonicalize_headers(wire), include,
                      (b"DKIM-Signature", b" " + unsigned), dict(fields))
    signature = base64.b64encode(sign_digest(hasher.digest()))
    # Folding between tags changes nothing under relaxed canonicalization.
    return (unsigned + signature).replace(b"; ", b";\r\n\t").decode("ascii")
