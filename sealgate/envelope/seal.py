"""Sealing a whole message into an envelope, and opening one: the API the pipeline stages use.

The private halves never come here: slots are opened by whoever holds the key (the keystore for
gateway and group keys, the mail client for mailbox keys) and only the content key is passed in.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import IO, Callable, Sequence

import nacl.exceptions
import nacl.signing

from sealgate.envelope import mime, stream
from sealgate.envelope.header import (EnvelopeError, EnvelopeHeader, Slot, control_block,
                                      parse_control_block)
from sealgate.keystore.wrapping import wrap


@dataclass(frozen=True)
class Recipient:
    key_id: str
    public: bytes  # X25519


@dataclass(frozen=True)
class Sealed:
    content_type: str
    body: IO[bytes]  # the whole MIME body, positioned at 0
    header: EnvelopeHeader


def seal(plaintext: IO[bytes], recipients: Sequence[Recipient], *, kind: str, sender_domain: str,
         signer_key_id: str, sign: Callable[[bytes], bytes], now: int,
         spool_threshold: int = 1 << 20, chunk_size: int = stream.DEFAULT_CHUNK) -> Sealed:
    """Encrypt `plaintext` once, wrap its key once per recipient, sign the control block."""
    if not recipients:
        raise EnvelopeError("an envelope needs at least one recipient key")
    content_key = os.urandom(32)
    with tempfile.SpooledTemporaryFile(spool_threshold) as ciphertext:
        stream_header, digest, size = stream.encrypt(plaintext, content_key, ciphertext, chunk_size)
        slots = []
        for r in recipients:
            slot = Slot(r.key_id, b"", b"")
            ephemeral, wrapped = wrap(r.public, content_key, slot.context(stream_header))
            slots.append(Slot(r.key_id, ephemeral, wrapped))
        header = EnvelopeHeader(kind=kind, sender_domain=sender_domain.lower(),
                                signer_key_id=signer_key_id, created=now, chunk_size=chunk_size,
                                stream_header=stream_header, ciphertext_sha256=digest,
                                ciphertext_size=size, slots=tuple(slots))
        control = control_block(header, sign(header.signing_payload()))
        boundary = mime.new_boundary()
        body = tempfile.SpooledTemporaryFile(spool_threshold)
        mime.write_body(body, boundary, control, ciphertext)
    body.seek(0)
    return Sealed(mime.content_type(boundary), body, header)


@dataclass(frozen=True)
class Opened:
    """A parsed envelope whose signature has not been checked yet."""

    header: EnvelopeHeader
    signature: bytes
    located: mime.Located


def parse(content_type: str, body: IO[bytes]) -> Opened | None:
    """None when the message is not a sealgate envelope; EnvelopeError when it is a broken one."""
    boundary = mime.envelope_boundary(content_type)
    if boundary is None:
        return None
    located = mime.locate(body, boundary)
    header, signature = parse_control_block(located.control)
    return Opened(header, signature, located)


def verify_signature(opened: Opened, identity_public: bytes) -> None:
    try:
        nacl.signing.VerifyKey(identity_public).verify(opened.header.signing_payload(),
                                                       opened.signature)
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
        raise EnvelopeError(f"sender signature of {opened.header.sender_domain} does not verify "
                            f"with identity key {opened.header.signer_key_id}") from None


def decrypt(opened: Opened, body: IO[bytes], content_key: bytes, out: IO[bytes]) -> None:
    """Write the original message to `out`; on EnvelopeError `out` holds garbage: discard it."""
    h = opened.header
    digest, size = stream.decrypt(
        mime.base64_blocks(body, opened.located.data_start, opened.located.data_end),
        content_key, h.stream_header, h.chunk_size, out)
    if (digest, size) != (h.ciphertext_sha256, h.ciphertext_size):
        raise EnvelopeError("ciphertext digest differs from the signed one (altered in transit)")
