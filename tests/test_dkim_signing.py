"""Our DKIM signatures (private-key step delegated) verify with dkimpy, also when a real keystore
signs both algorithms in one request; a rotated or revoked selector and a malformed request are
refused, naming why; the streaming relaxed body hash equals dkimpy's on real messages."""

from __future__ import annotations

import base64
import hashlib
import io
import time
from pathlib import Path
from typing import Iterator

import dkim
import nacl.signing
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from dkim.canonicalization import Relaxed

from conftest import CORPORA
from sealgate.dns.zonefile import ZoneFileResolver
from sealgate.keystore.cached import CachingKeystoreClient
from sealgate.keystore.encoding import b64
from sealgate.keystore.errors import KeystoreError
from sealgate.message import Message
from sealgate.pipeline import Services
from sealgate.sign.dkim import prepare, relaxed_body_hash
from sealgate.testbed.keystore import KeystoreProcess
from sealgate.transport.outbound import dkim_headers

RAW = (b"From: Alice <a@a.test>\r\nTo: b@b.test\r\nSubject:  spaced   out\r\n\tand folded\r\n"
       b"Date: Sun, 22 Nov 2026 10:00:00 +0000\r\nX-Other: not signed\r\n\r\n"
       b"line  one \r\n\r\n body\t\ttab\r\n\r\n\r\n")


def signed(raw: bytes, algorithm: str, sign_digest, selector: str = "s") -> bytes:  # type: ignore[no-untyped-def]
    msg = Message.from_bytes(raw)
    [pending] = prepare(msg.headers, relaxed_body_hash(msg.body), domain="a.test",
                        selectors={algorithm: selector}, timestamp=int(time.time()))
    return b"DKIM-Signature: " + pending.value(sign_digest(pending.digest)).encode() + b"\r\n" + raw


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


class Keystore:
    """A real keystore for a.test, its published DNS records, and a milter's client of it."""

    def __init__(self, workdir: Path) -> None:
        self.process = KeystoreProcess(workdir, directory=False)
        self.process.run("keys", "init", "a.test")

    def dns(self) -> Services:
        """What a verifier sees now: `keys dns` as a zone file."""
        zone = self.process.workdir / "a.test.zone"
        zone.write_text(self.process.run("keys", "dns", "a.test").stdout)
        return Services(config=None, resolver=ZoneFileResolver([str(zone)]),
                        keys=CachingKeystoreClient(str(self.process.socket_path)))

    def key_id(self, selector: str) -> str:
        listing = self.process.run("keys", "list", "a.test").stdout.splitlines()
        return next(line.split()[0] for line in listing if line.endswith(" " + selector))


def verifies(message: bytes, services: Services) -> list[bool]:
    """dkimpy's verdict on each DKIM-Signature, keys looked up in the published records."""
    def txt(name: bytes, timeout: float = 5) -> bytes | None:
        texts = services.resolver.lookup(name.decode(), "TXT").texts()
        return texts[0] if texts else None

    def verify(idx: int) -> bool:
        try:
            return bool(dkim.DKIM(message).verify(idx=idx, dnsfunc=txt))
        except dkim.DKIMException:  # a body hash mismatch is raised, not answered False
            return False

    return [verify(n) for n in range(message.split(b"\r\n\r\n")[0].count(b"DKIM-Signature:"))]


def with_headers(raw: bytes, headers: list[tuple[str, bytes]]) -> bytes:
    return b"".join(name.encode() + b":" + value + b"\r\n" for name, value in headers) + raw


@pytest.fixture(scope="module")
def keystore(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keystore]:
    keystore = Keystore(tmp_path_factory.mktemp("dkim") / "ks")
    with keystore.process:
        yield keystore


def test_both_signatures_in_one_request_verify_with_the_published_keys(keystore: Keystore) -> None:
    services = keystore.dns()
    calls: list[str] = []
    ask = services.keys.call

    def counting(op: str, **args: object) -> object:
        calls.append(op)
        return ask(op, **args)

    services.keys.call = counting
    with services.keys:
        headers = dkim_headers(Message.from_bytes(RAW), "a.test", services)
        again = dkim_headers(Message.from_bytes(RAW), "a.test", services)
    assert [a for _, value in headers for a in (b"ed25519-sha256", b"rsa-sha256") if a in value] \
        == [b"ed25519-sha256", b"rsa-sha256"]
    assert verifies(with_headers(RAW, headers), services) == [True, True]
    assert verifies(with_headers(RAW.replace(b"line  one", b"line two"), again), services) \
        == [False, False]
    assert calls == ["dkim_selector", "dkim_selector", "dkim_sign_many", "dkim_sign_many"]


@pytest.mark.parametrize("signatures, code, text", [
    (None, "bad-request", "field 'signatures': expected a list of 1 to 2 objects"),
    ([], "bad-request", "field 'signatures': expected a list of 1 to 2 objects"),
    (["ed25519-sha256"], "bad-request", "signatures[0]: expected an object"),
    ([{"algorithm": "rsa-sha1", "selector": "s", "digest": b64(bytes(32))}], "bad-request",
     "signatures[0]: algorithm 'rsa-sha1': expected one of ed25519-sha256, rsa-sha256"),
    ([{"algorithm": "ed25519-sha256", "selector": "ED", "digest": b64(bytes(32))},
      {"algorithm": "ed25519-sha256", "selector": "ED", "digest": b64(bytes(32))}], "bad-request",
     "signatures[1]: algorithm 'ed25519-sha256' asked twice"),
    ([{"algorithm": "rsa-sha256", "selector": "RSA", "digest": b64(b"short")}], "bad-request",
     "signatures[0]: field 'digest': expected 32 bytes, got 5"),
    ([{"algorithm": "rsa-sha256", "digest": b64(bytes(32))}], "bad-request",
     "signatures[0]: field 'selector': expected a non-empty string"),
    ([{"algorithm": "ed25519-sha256", "selector": "ED", "digest": b64(bytes(32))},
      {"algorithm": "rsa-sha256", "selector": "sg-19991231-rsa-0000", "digest": b64(bytes(32))}],
     "not-found", "signatures[1]: selector 'sg-19991231-rsa-0000': no such DKIM key of a.test"),
])
def test_a_malformed_request_is_refused_naming_what_is_wrong(keystore: Keystore, signatures: object,
                                                            code: str, text: str) -> None:
    with keystore.process.client() as client:
        current = {"ED": client.dkim_selector("a.test", "ed25519-sha256"),
                   "RSA": client.dkim_selector("a.test", "rsa-sha256")}
        if isinstance(signatures, list):
            signatures = [{**s, "selector": current.get(s["selector"], s["selector"])}
                          if isinstance(s, dict) and "selector" in s else s for s in signatures]
        with pytest.raises(KeystoreError) as caught:
            client.call("dkim_sign_many", domain="a.test", signatures=signatures)
    assert caught.value.code == code and text in str(caught.value), caught.value


def test_a_revoked_selector_is_refused_and_the_same_message_is_signed_by_its_successor(
        tmp_path: Path) -> None:
    keystore = Keystore(tmp_path / "ks")
    with keystore.process:
        services = keystore.dns()
        with services.keys:
            assert verifies(with_headers(RAW, dkim_headers(Message.from_bytes(RAW), "a.test",
                                                           services)), services) == [True, True]
            old = services.keys.dkim_selector("a.test", "rsa-sha256")  # cached from here on
            keystore.process.run("keys", "revoke", keystore.key_id(old), "--reason", "leaked")
            with keystore.process.client() as direct, pytest.raises(KeystoreError) as caught:
                direct.dkim_sign_many("a.test", [("rsa-sha256", old, bytes(32))])
            assert caught.value.code == "unusable-key" and "is revoked since" in str(caught.value)

            headers = dkim_headers(Message.from_bytes(RAW), "a.test", services)
            assert old.encode() not in b"".join(value for _, value in headers)
            assert services.keys.dkim_selector("a.test", "rsa-sha256") != old
            assert verifies(with_headers(RAW, headers), keystore.dns()) == [True, True]


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
