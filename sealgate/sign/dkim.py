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
import re
from typing import IO, Callable

import dkim
from dkim.canonicalization import Relaxed

# Signed when present; From is signed once more than it occurs, so none can be added.
SIGNED_HEADERS = (b"from", b"to", b"cc", b"reply-to", b"subject", b"date", b"message-id",
                  b"in-reply-to", b"references", b"mime-version", b"content-type",
                  b"content-transfer-encoding")
_WSP_RUN = re.compile(rb"[ \t]+")
_WSP_EOL = re.compile(rb"[ \t]+\r\n")
READ_CHUNK = 1 << 20


def relaxed_body_hash(body: IO[bytes]) -> bytes:
    """SHA-256 of the relaxed-canonical body (RFC 6376 3.4.4), read a block of lines at a time."""
    digest = hashlib.sha256()
    body.seek(0)
    carry = b""
    held_newlines = 0  # empty lines seen but not yet known not to be trailing
    nonempty = False
    while True:
        block = body.read(READ_CHUNK)
        data = carry + block
        if block:
            cut = data.rfind(b"\r\n") + 2
            data, carry = data[:cut], data[cut:]
        elif not data:
            break
        else:
            carry = b""
            data += b"\r\n"  # an unterminated last line gets its CRLF
        text = _WSP_EOL.sub(b"\r\n", _WSP_RUN.sub(b" ", data))
        stripped = text.rstrip(b"\r\n")
        if stripped:
            digest.update(b"\r\n" * held_newlines + stripped)
            nonempty = True
            held_newlines = (len(text) - len(stripped)) // 2
        else:
            held_newlines += len(text) // 2
        if not block:
            break
    if nonempty:
        digest.update(b"\r\n")
    return base64.b64encode(digest.digest())


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
