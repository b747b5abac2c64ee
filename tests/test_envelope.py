"""Envelope v1: round trip byte for byte, several slots, and every kind of damage refused."""

from __future__ import annotations

import io
import os
import re
import tempfile
from typing import Callable

import nacl.signing
import pytest

from sealgate.envelope.header import EnvelopeError
from sealgate.envelope.seal import Opened, Recipient, Sealed, decrypt, parse, seal, verify_signature
from sealgate.keystore.wrapping import WrapError, public_key, unwrap

SIGNER = nacl.signing.SigningKey.generate()
KEYS = {f"key-{i}": os.urandom(32) for i in range(3)}
ORIGINAL = (b"Received: from x by y\r\nFrom: a@a.test\r\nTo: b@b.test\r\nSubject: secret plans\r\n"
            b"\r\n" + b"The body line.\r\n" * 20000)


def make(data: bytes = ORIGINAL, chunk_size: int = 4096,
         keys: tuple[str, ...] = ("key-0",)) -> Sealed:
    return seal(io.BytesIO(data), [Recipient(k, public_key(KEYS[k])) for k in keys],
                kind="transport", sender_domain="a.test", signer_key_id="id-1",
                sign=lambda payload: SIGNER.sign(payload).signature, now=1_800_000_000,
                chunk_size=chunk_size)


def open_with(sealed: Sealed, key_id: str, body: bytes) -> bytes:
    raw = io.BytesIO(body)
    opened = parse(sealed.content_type, raw)
    assert opened is not None
    verify_signature(opened, bytes(SIGNER.verify_key))
    slot = next(s for s in opened.header.slots if s.key_id == key_id)
    content_key = unwrap(KEYS[key_id], slot.ephemeral_public, slot.wrapped,
                         slot.context(opened.header.stream_header))
    out = tempfile.TemporaryFile()
    decrypt(opened, raw, content_key, out)
    out.seek(0)
    return out.read()


def read_all(sealed: Sealed) -> bytes:
    sealed.body.seek(0)
    return sealed.body.read()


def test_round_trip_is_byte_exact_and_hides_everything() -> None:
    sealed = make()
    body = read_all(sealed)
    assert b"secret plans" not in body and b"The body line" not in body
    assert open_with(sealed, "key-0", body) == ORIGINAL


def test_each_recipient_domain_opens_its_own_slot() -> None:
    sealed = make(keys=("key-0", "key-1"))
    body = read_all(sealed)
    assert open_with(sealed, "key-0", body) == ORIGINAL
    assert open_with(sealed, "key-1", body) == ORIGINAL


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 3 * 4096])
def test_chunk_boundaries(size: int) -> None:
    data = os.urandom(size)
    sealed = make(data)
    assert open_with(sealed, "key-0", read_all(sealed)) == data


def test_key_without_a_slot_cannot_open() -> None:
    sealed = make()
    opened = parse(sealed.content_type, io.BytesIO(read_all(sealed)))
    assert opened is not None
    slot = opened.header.slots[0]
    with pytest.raises(WrapError):
        unwrap(KEYS["key-2"], slot.ephemeral_public, slot.wrapped,
               slot.context(opened.header.stream_header))


def flip_data_byte(body: bytes) -> bytes:
    """Change one base64 character in the middle of the ciphertext part."""
    start = body.index(b"base64\r\n\r\n") + 10
    at = start + (len(body) - start) // 2
    replacement = b"A" if body[at:at + 1] != b"A" else b"B"
    return body[:at] + replacement + body[at + 1:]


def test_flipped_ciphertext_is_refused() -> None:
    sealed = make()
    with pytest.raises(EnvelopeError, match="does not authenticate|digest"):
        open_with(sealed, "key-0", flip_data_byte(read_all(sealed)))


def test_truncated_ciphertext_is_refused() -> None:
    sealed = make()
    body = read_all(sealed)
    start = body.index(b"base64\r\n\r\n") + 10
    end = body.rindex(b"\r\n--sealgate-")
    cut = body[:start] + body[start:start + (end - start) // 2 // 78 * 78] + body[end:]
    with pytest.raises(EnvelopeError, match="truncated|does not authenticate"):
        open_with(sealed, "key-0", cut)


def altered_control(sealed: Sealed, change: Callable[[bytes], bytes]) -> bytes:
    body = read_all(sealed)
    start = body.index(b"application/sealgate-envelope\r\n\r\n")
    return body[:start] + change(body[start:])


def test_altered_header_fails_the_signature() -> None:
    sealed = make()
    body = altered_control(sealed, lambda b: b.replace(b'"a.test"', b'"evil.test"', 1))
    opened = parse(sealed.content_type, io.BytesIO(body))
    assert opened is not None
    with pytest.raises(EnvelopeError, match="signature"):
        verify_signature(opened, bytes(SIGNER.verify_key))


def test_signature_by_another_key_fails() -> None:
    sealed = make()
    opened = parse(sealed.content_type, io.BytesIO(read_all(sealed)))
    assert isinstance(opened, Opened)
    with pytest.raises(EnvelopeError, match="does not verify"):
        verify_signature(opened, bytes(nacl.signing.SigningKey.generate().verify_key))


def test_unknown_version_and_garbage_are_clear_errors() -> None:
    sealed = make()
    v2 = altered_control(sealed, lambda b: re.sub(rb'"version":\s*1', b'"version":2', b, count=1))
    with pytest.raises(EnvelopeError, match="unsupported envelope version 2"):
        parse(sealed.content_type, io.BytesIO(v2))
    with pytest.raises(EnvelopeError, match="parts not found"):
        parse(sealed.content_type, io.BytesIO(b"nothing here"))


def test_plain_mail_is_not_an_envelope() -> None:
    assert parse("text/plain; charset=utf-8", io.BytesIO(b"hello")) is None
    assert parse('multipart/encrypted; protocol="application/pgp-encrypted"; boundary=x',
                 io.BytesIO(b"")) is None
