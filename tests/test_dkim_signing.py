"""Our DKIM signatures (private-key step delegated) verify with dkimpy; the streaming relaxed
body hash equals dkimpy's on real messages."""

from __future__ import annotations

import base64
import hashlib
import io
import time
from pathlib import Path

import dkim
import nacl.signing
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from dkim.canonicalization import Relaxed

from conftest import CORPORA
from sealgate.message import Message
from sealgate.sign.dkim import relaxed_body_hash, signature_value

RAW = (b"From: Alice <a@a.test>\r\nTo: b@b.test\r\nSubject:  spaced   out\r\n\tand folded\r\n"
       b"Date: Sun, 22 Nov 2026 10:00:00 +0000\r\nX-Other: not signed\r\n\r\n"
       b"line  one \r\n\r\n body\t\ttab\r\n\r\n\r\n")


def signed(raw: bytes, algorithm: str, sign_digest, selector: str = "s") -> bytes:  # type: ignore[no-untyped-def]
    msg = Message.from_bytes(raw)
    value = signature_value(msg.headers, relaxed_body_hash(msg.body), domain="a.test",
                            selector=selector, algorithm=algorithm, timestamp=int(time.time()),
                            sign_digest=sign_digest)
    return b"DKIM-Signature: " + value.encode() + b"\r\n" + raw


def test_rsa_signature_verifies_with_dkimpy() -> None:
    key = rsa.generate_private_key(65537, 2048)
    public = base64.b64encode(key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    message = signed(RAW, "rsa-sha256", lambda d: key.sign(d, padding.PKCS1v15(),
                                                            utils.Prehashed(hashes.SHA256())))
    record = f"v=DKIM1; k=rsa; p={public}".encode()
    assert dkim.verify(message, dnsfunc=lambda name, timeout=5: record)
    assert not dkim.verify(message.replace(b"body\t\ttab", b"body tab!"),
                           dnsfunc=lambda name, timeout=5: record)


def test_ed25519_signature_verifies_with_dkimpy() -> None:
    key = nacl.signing.SigningKey.generate()
    message = signed(RAW, "ed25519-sha256", lambda d: key.sign(d).signature)
    record = b"v=DKIM1; k=ed25519; p=" + base64.b64encode(bytes(key.verify_key))
    assert dkim.verify(message, dnsfunc=lambda name, timeout=5: record)


def test_from_is_oversigned_and_unlisted_headers_are_not_signed() -> None:
    key = nacl.signing.SigningKey.generate()
    header = signed(RAW, "ed25519-sha256", lambda d: key.sign(d).signature).split(b"\r\n\r\n")[0]
    tags = dkim.util.parse_tag_value(header.split(b":", 1)[1].split(b"\r\nFrom:")[0]
                                     .replace(b"\r\n", b""))
    assert tags[b"h"] == b"from:to:subject:date:from"


def corpus_bodies() -> list[Path]:
    return sorted((CORPORA / "mime" / "mime-tools-testmsgs").glob("*.msg"))[:25]


@pytest.mark.parametrize("path", corpus_bodies(), ids=lambda p: p.name)
def test_streaming_body_hash_equals_dkimpy(path: Path) -> None:
    body = path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n").partition(b"\r\n\r\n")[2]
    expected = base64.b64encode(hashlib.sha256(Relaxed.canonicalize_body(body)).digest())
    assert relaxed_body_hash(io.BytesIO(body)) == expected


@pytest.mark.parametrize("body", [b"", b"\r\n", b"a", b"a\r\n\r\n", b"x \t y  \r\n\r\nz\r\n\r\n\r\n",
                                  b"\r\n\r\nq", b"trailing   \r\n" * 3])
def test_body_hash_edge_cases(body: bytes) -> None:
    expected = base64.b64encode(hashlib.sha256(Relaxed.canonicalize_body(body)).digest())
    assert relaxed_body_hash(io.BytesIO(body)) == expected


def test_body_hash_across_read_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    import sealgate.auth.dkim_body as module
    monkeypatch.setattr(module, "READ_CHUNK", 7)
    body = b"one  two\r\n\r\n\r\nthree \t\r\n" * 50 + b"\r\n\r\n"
    expected = base64.b64encode(hashlib.sha256(Relaxed.canonicalize_body(body)).digest())
    assert relaxed_body_hash(io.BytesIO(body)) == expected


@pytest.mark.parametrize("body", [b"", b"\r\n", b"a", b"a\r\n\r\n", b"x \t y  \r\n\r\nz\r\n\r\n\r\n",
                                  b"cr\r\r\n\r\n", b"lf\n\r\n"])
@pytest.mark.parametrize("limit", [None, 0, 3])
def test_simple_and_limited_body_hashes_equal_dkimpy(body: bytes, limit: int | None) -> None:
    from dkim.canonicalization import Simple
    from sealgate.auth.dkim_body import body_hash
    for relaxed, canon in ((False, Simple), (True, Relaxed)):
        canonical = canon.canonicalize_body(body)
        expected = hashlib.sha256(canonical if limit is None else canonical[:limit]).digest()
        assert body_hash(io.BytesIO(body), relaxed, "sha256", limit) == expected, (relaxed, body)
