"""Key material: generating key pairs and using private keys, one function per algorithm.

Ed25519 and X25519 come from libsodium (pynacl); RSA from OpenSSL through
`cryptography`, because a DKIM RSA-2048 signature costs ~1 ms there and
~13 ms in dkimpy's pure-Python RSA.
"""

from __future__ import annotations

import threading
from typing import Any

import nacl.exceptions
import nacl.public
import nacl.signing
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

ED25519 = "ed25519"
X25519 = "x25519"
RSA2048 = "rsa-2048"
ALGORITHMS = (ED25519, X25519, RSA2048)


def generate(algorithm: str) -> tuple[bytes, bytes]:
    """A new (public, private) pair: raw 32-byte keys for the curves, DER for RSA."""
    if algorithm == ED25519:
        signing = nacl.signing.SigningKey.generate()
        return bytes(signing.verify_key), bytes(signing)
    if algorithm == X25519:
        private = nacl.public.PrivateKey.generate()
        return bytes(private.public_key), bytes(private)
    if algorithm == RSA2048:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return (key.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo),
                key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    raise ValueError(f"unknown key algorithm {algorithm!r} (known: {', '.join(ALGORITHMS)})")


def parse_private(algorithm: str, private: bytes) -> Any:
    """A private key ready to use: parsing an RSA key checks it (~50 ms), an Ed25519 seed
    is expanded (~30 us), so the service keeps the result."""
    if algorithm == RSA2048:
        key = serialization.load_der_private_key(private, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("stored RSA key is not an RSA key")
        return RsaSigner(key)
    if algorithm == ED25519:
        return nacl.signing.SigningKey(private)
    return private


def sign(algorithm: str, key: Any, data: bytes) -> bytes:
    """Sign with a parsed key: Ed25519 over `data`, RSA over `data` as a SHA-256 digest."""
    if algorithm == RSA2048:
        signature: bytes = key.sign_digest(data)
    else:
        signature = key.sign(data).signature
    return signature


class RsaSigner:
    """A parsed RSA key whose blinding is renewed between requests rather than during one.

    OpenSSL blinds every RSA signature, and a thread's 33rd, 65th... signature with a key
    renews the blinding factors (BN_BLINDING_COUNTER): a modular inversion, ~0.5 ms on top of
    ~0.9 ms, in one DKIM RSA answer out of 32, which is what set their p99. When `renewal_due`,
    the service calls `renew()` once its answer has gone out, spending that signature on
    nothing. Were OpenSSL's schedule to change, one signature in 32 would be wasted; blinding
    itself is untouched.
    """

    RENEWAL = 32

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        self._key = key
        self._uses = threading.local()  # OpenSSL keeps the blinding per thread

    def sign_digest(self, digest: bytes) -> bytes:
        """RSASSA-PKCS1-v1_5 over a SHA-256 digest the caller computed (DKIM rsa-sha256)."""
        self._uses.count = getattr(self._uses, "count", 0) + 1
        return self._key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))

    @property
    def renewal_due(self) -> bool:
        """This thread's next signature would renew the blinding."""
        count: int = getattr(self._uses, "count", 0)
        return count > 0 and count % self.RENEWAL == 0

    def renew(self) -> None:
        self.sign_digest(bytes(32))


def ed25519_sign(seed: bytes, data: bytes) -> bytes:
    return nacl.signing.SigningKey(seed).sign(data).signature


def ed25519_verify(public: bytes, signature: bytes, data: bytes) -> bool:
    try:
        nacl.signing.VerifyKey(public).verify(data, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError, TypeError):
        return False
    return True
