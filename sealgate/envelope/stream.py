"""Content encryption: libsodium secretstream in fixed-size chunks, so memory never grows with
the message; SHA-256 over the ciphertext, which the sender's signature covers."""

from __future__ import annotations

import hashlib
from typing import IO, Iterator

import nacl.bindings as sodium
import nacl.exceptions

from sealgate.envelope.header import EnvelopeError

ABYTES = sodium.crypto_secretstream_xchacha20poly1305_ABYTES
TAG_FINAL = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL
TAG_MESSAGE = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
DEFAULT_CHUNK = 64 * 1024


def encrypt(plaintext: IO[bytes], key: bytes, out: IO[bytes],
            chunk_size: int = DEFAULT_CHUNK) -> tuple[bytes, str, int]:
    """Encrypt all of `plaintext` into `out`; returns (stream header, SHA-256 hex, ciphertext size).

    The last chunk carries TAG_FINAL, so a truncated stream never decrypts."""
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    stream_header = sodium.crypto_secretstream_xchacha20poly1305_init_push(state, key)
    digest = hashlib.sha256()
    size = 0
    chunk = plaintext.read(chunk_size)
    while True:
        following = plaintext.read(chunk_size) if len(chunk) == chunk_size else b""
        tag = TAG_MESSAGE if following else TAG_FINAL
        sealed = sodium.crypto_secretstream_xchacha20poly1305_push(state, chunk, None, tag)
        digest.update(sealed)
        out.write(sealed)
        size += len(sealed)
        if not following:
            return stream_header, digest.hexdigest(), size
        chunk = following


def decrypt(ciphertext: Iterator[bytes], key: bytes, stream_header: bytes, chunk_size: int,
            out: IO[bytes]) -> tuple[str, int]:
    """Decrypt chunk by chunk into `out`; returns (SHA-256 hex of the ciphertext, its size).

    Raises EnvelopeError on any altered, reordered, truncated or extended chunk; the caller must
    then discard `out` (never deliver half a message)."""
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    try:
        sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, stream_header, key)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise EnvelopeError("stream header does not fit the content key") from None
    digest = hashlib.sha256()
    size = 0
    finished = False
    buffer = bytearray()
    sealed_size = chunk_size + ABYTES

    def pull(sealed: bytes) -> None:
        nonlocal finished, size
        if finished:
            raise EnvelopeError("data after the final chunk")
        digest.update(sealed)
        size += len(sealed)
        try:
            plain, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(state, sealed, None)
        except nacl.exceptions.CryptoError:
            raise EnvelopeError("ciphertext does not authenticate (altered or wrong key)") from None
        out.write(plain)
        finished = tag == TAG_FINAL

    for block in ciphertext:
        buffer += block
        while len(buffer) > sealed_size:  # keep at least one chunk back: it may be the last
            pull(bytes(buffer[:sealed_size]))
            del buffer[:sealed_size]
    if buffer:
        pull(bytes(buffer))
    if not finished:
        raise EnvelopeError("ciphertext is truncated (no final chunk)")
    return digest.hexdigest(), size
