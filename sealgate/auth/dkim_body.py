"""DKIM body hashes (RFC 6376 3.4.3, 3.4.4, 3.7) computed while streaming the spooled body, so a
25 MB message is never held in memory; used when signing and when verifying."""

from __future__ import annotations

import hashlib
import re
from typing import IO

# Only what relaxed canonicalization changes: runs of two or more WSP, and single tabs; a single
# space stays. Each branch starts with one literal byte, which the regex engine scans for quickly;
# text with neither a tab nor two spaces in a row (most mail) skips the substitution altogether.
_WSP_RUN = re.compile(rb"\t[ \t]*| [ \t]+")
READ_CHUNK = 1 << 20


def canonical_blocks(body: IO[bytes], relaxed: bool):  # type: ignore[no-untyped-def]
    """Yield the canonical body in pieces; empty lines at the end are held back and dropped."""
    body.seek(0)
    carry = b""
    held = 0  # CRLFs seen at the end of what was read so far: trailing unless text follows
    nonempty = False
    while True:
        block = body.read(READ_CHUNK)
        data = carry + block
        if block:
            cut = data.rfind(b"\r\n") + 2
            data, carry = data[:cut], data[cut:]
        else:
            carry = b""
            if data:
                data += b"\r\n"  # an unterminated last line gets its CRLF
        if relaxed:  # after the first step, trailing WSP is exactly one space
            if b"\t" in data or b"  " in data:
                data = _WSP_RUN.sub(b" ", data)
            data = data.replace(b" \r\n", b"\r\n")
        end = len(data)
        while data.endswith(b"\r\n", 0, end):
            end -= 2
        stripped = data[:end]
        if stripped:
            yield b"\r\n" * held + stripped
            nonempty = True
            held = (len(data) - len(stripped)) // 2
        else:
            held += len(data) // 2
        if not block:
            break
    if nonempty:
        yield b"\r\n"
    elif not relaxed:
        yield b"\r\n"  # simple: an empty body is one CRLF


def body_hash(body: IO[bytes], relaxed: bool, algorithm: str = "sha256",
              limit: int | None = None) -> bytes:
    """Digest of the canonical body, cut at `limit` bytes when the signature has l=."""
    digest = hashlib.new(algorithm)
    remaining = limit
    for piece in canonical_blocks(body, relaxed):
        if remaining is not None:
            piece = piece[:remaining]
            remaining -= len(piece)
        digest.update(piece)
    return digest.digest()
