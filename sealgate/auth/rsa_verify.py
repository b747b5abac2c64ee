"""RSA signature checks for dkimpy done in C.

dkimpy verifies RSA in pure Python (its own modular arithmetic and byte
conversions): about half of the cost of verifying a signed message here.
dkimpy looks the primitive up as a module global, so this module puts a
`cryptography`-backed function with the same contract in its place; the
canonicalization, tag checks and key policy all stay dkimpy's.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import dkim
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


def install() -> None:
    dkim.RSASSA_PKCS1_v1_5_verify = rsassa_pkcs1_v1_5_verify
