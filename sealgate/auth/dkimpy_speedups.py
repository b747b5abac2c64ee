"""Four hot spots of dkimpy's verification, replaced by equivalents with the same contract.

dkimpy verifies RSA in pure Python (its own modular arithmetic and byte
conversions): about half of the cost of verifying a signed message here. It
parses the key record (base64 and its own ASN.1 reader) for every signature,
though a domain's record is the same for thousands of messages. And the
pattern that blanks b= before hashing the signature header nests one
optional-whitespace quantifier inside another, so it backtracks at every
character of the signature (~80 us a signature, more than the RSA check).
Its relaxed header canonicalization runs two uncompiled regular expressions
on every header of the message for every signature (~70 us for a short
message), where plain byte replacements do the same, once per message.
dkimpy looks all of them up as module globals or class attributes, so this
module puts a `cryptography`-backed RSA check, a memo of parsed key records,
an equivalent pattern and an equivalent canonicalization in their place; the
tag checks and key policy all stay dkimpy's.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import dkim
from dkim.canonicalization import Relaxed
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

_PURE_PYTHON = dkim.RSASSA_PKCS1_v1_5_verify
_HASHES = {"sha256": hashes.SHA256, "sha1": hashes.SHA1}


@lru_cache(maxsize=512)
def _public_key(modulus: int, exponent: int) -> rsa.RSAPublicKey:
    return rsa.RSAPublicNumbers(exponent, modulus).public_key()


def rsassa_pkcs1_v1_5_verify(hash: Any, signature: bytes, public_key: dict[str, int]) -> bool:
    """dkim.crypto.RSASSA_PKCS1_v1_5_verify's contract: True if `signature` signs `hash`."""
    algorithm = _HASHES.get(hash.name.lower())
    try:
        key = _public_key(public_key["modulus"], public_key["publicExponent"])
    except (ValueError, TypeError):
        key = None
    if algorithm is None or key is None:  # anything unusual: dkimpy's own code decides
        return bool(_PURE_PYTHON(hash, signature, public_key))
    try:
        key.verify(signature, hash.digest(), padding.PKCS1v15(), utils.Prehashed(algorithm()))
    except InvalidSignature:
        return False
    return True


_PARSE_KEY_RECORD = dkim.evaluate_pk


@lru_cache(maxsize=512)
def evaluate_pk(name: bytes, record: bytes | str | None) -> tuple[Any, int, bytes, bool]:
    """dkim.evaluate_pk, remembered per (key name, record text); a bad record raises each time.
    The parsed key is only read by dkimpy, so sharing it between messages is safe."""
    return _PARSE_KEY_RECORD(name, record)


# dkimpy's FWS is (?:(?:\s*\r?\n)?\s+)?, which matches exactly the runs of \s: its repeated
# (?:FWS base64-char)* is thus the longest run of whitespace and base64 characters that ends in a
# base64 character, written here without nesting.
RE_BTAG = re.compile(rb"([;\s]b" + dkim.FWS + rb"=)(?:[\sa-zA-Z0-9+/=]*[a-zA-Z0-9+/=])?(?:\r?\n\Z)?")


_WSP_RUN = re.compile(rb"[\t ]+")


class SignedHeaders(list):  # type: ignore[type-arg]
    """A message's headers that keep their relaxed form: each signature of the message asks
    for the same canonicalization of the same headers (dkimpy only reads the result)."""

    relaxed: list[tuple[bytes, bytes]] | None = None


def relaxed_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """dkim.canonicalization.Relaxed.canonicalize_headers: names lowercased, values unfolded
    (every LF and the CR just before it removed), runs of WSP made one space, then stripped."""
    if isinstance(headers, SignedHeaders):
        if headers.relaxed is None:
            headers.relaxed = _relaxed(headers)
        return headers.relaxed
    return _relaxed(headers)


def _relaxed(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    out = []
    for name, value in headers:
        value = value.replace(b"\r\n", b"").replace(b"\n", b"")
        if b"\t" in value or b"  " in value:
            value = _WSP_RUN.sub(b" ", value)
        out.append((name.lower().rstrip(), value.strip() + b"\r\n"))
    return out


def install() -> None:
    dkim.RSASSA_PKCS1_v1_5_verify = rsassa_pkcs1_v1_5_verify
    dkim.evaluate_pk = evaluate_pk
    dkim.RE_BTAG = RE_BTAG
    Relaxed.canonicalize_headers = staticmethod(relaxed_headers)
