"""Wrapping a 32-byte content key to an X25519 public key, and opening it with the private half.

One construction for every slot (gateway transport keys, mailbox, group and
recovery keys), shared by the envelope writer (public side) and the keystore
or the mail client (private side); docs/keystore.md specifies it:

    eph, E  = fresh X25519 key pair
    shared  = X25519(eph, R)                       R = recipient public key
    kek     = BLAKE2b-256(shared || E || R || context, person="sealgate-wrap-v1")
    wrapped = XChaCha20-Poly1305(key=kek, nonce=24 zero bytes, aad=context, content_key)

The nonce can be fixed because kek is new for every wrap (fresh ephemeral
key). Binding E and R into kek stops a slot from being replayed to another
key; `context` lets the envelope bind the slot to what it protects.
"""

from __future__ import annotations

import hashlib

import nacl.bindings as sodium
import nacl.exceptions

CONTENT_KEY_BYTES = 32
PUBLIC_BYTES = 32
WRAPPED_BYTES = CONTENT_KEY_BYTES + 16  # ciphertext plus Poly1305 tag
_PERSON = b"sealgate-wrap-v1"
_NONCE = bytes(24)


class WrapError(ValueError):
    """A slot that cannot be opened (wrong key, wrong context, altered bytes) or bad key material."""


def _kek(shared: bytes, ephemeral_public: bytes, recipient_public: bytes, context: bytes) -> bytes:
    if shared == bytes(32):  # a low-order public key: the "shared" secret would be public
        raise WrapError("public key is a low-order point; refusing to use it")
    h = hashlib.blake2b(digest_size=32, person=_PERSON)
    for part in (shared, ephemeral_public, recipient_public, context):
        h.update(part)
    return h.digest()


def _scalarmult(private: bytes, public: bytes) -> bytes:
    try:
        return sodium.crypto_scalarmult(private, public)
    except nacl.exceptions.RuntimeError:  # libsodium refuses an all-zero result
        raise WrapError("public key is a low-order point; refusing to use it") from None


def public_key(private: bytes) -> bytes:
    """The X25519 public key of a 32-byte private key."""
    if len(private) != 32:
        raise WrapError(f"X25519 private key must be 32 bytes, got {len(private)}")
    return sodium.crypto_scalarmult_base(private)


def wrap(recipient_public: bytes, content_key: bytes, context: bytes) -> tuple[bytes, bytes]:
    """Wrap `content_key` so only the holder of `recipient_public`'s private key opens it.

    Returns (ephemeral_public, wrapped), both stored in the envelope slot.
    """
    if len(recipient_public) != PUBLIC_BYTES:
        raise WrapError(f"recipient public key must be {PUBLIC_BYTES} bytes, got {len(recipient_public)}")
    if len(content_key) != CONTENT_KEY_BYTES:
        raise WrapError(f"content key must be {CONTENT_KEY_BYTES} bytes, got {len(content_key)}")
    ephemeral_private = sodium.randombytes(32)
    ephemeral_public = sodium.crypto_scalarmult_base(ephemeral_private)
    kek = _kek(_scalarmult(ephemeral_private, recipient_public), ephemeral_public,
               recipient_public, context)
    wrapped = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(content_key, context, _NONCE, kek)
    return ephemeral_public, wrapped


def unwrap(private: bytes, ephemeral_public: bytes, wrapped: bytes, context: bytes,
           own_public: bytes | None = None) -> bytes:
    """Open a slot made by `wrap` with the recipient's 32-byte X25519 private key.

    `own_public`, when the caller has it, spares recomputing the public key.
    """
    if len(ephemeral_public) != PUBLIC_BYTES:
        raise WrapError(f"ephemeral public key must be {PUBLIC_BYTES} bytes, got {len(ephemeral_public)}")
    if len(wrapped) != WRAPPED_BYTES:
        raise WrapError(f"wrapped key must be {WRAPPED_BYTES} bytes, got {len(wrapped)}")
    kek = _kek(_scalarmult(private, ephemeral_public), ephemeral_public,
               own_public or public_key(private), context)
    try:
        return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(wrapped, context, _NONCE, kek)
    except nacl.exceptions.CryptoError:
        raise WrapError("wrapped key does not open with this key and context "
                        "(addressed to another key, other context, or altered)") from None
