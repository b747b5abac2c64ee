"""dkimpy's public vectors through our DKIM stage: one result per signature, in order."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import dkim
import pytest

from conftest import CORPORA
from sealgate.auth.dkim import verify_all as verify_parts
from sealgate.message import Message
from sealgate.dns.zonefile import ZoneFileResolver
from sealgate.testbed.zones import txt

DKIMPY = CORPORA / "dkim" / "dkimpy"


def verify_all(raw: bytes, resolver: ZoneFileResolver, min_key_bits: int) -> list:  # type: ignore[type-arg]
    msg = Message.from_bytes(raw)
    return verify_parts(msg.wire_headers(), msg.body, resolver, min_key_bits)


@pytest.fixture(scope="module")
def resolver(tmp_path_factory: pytest.TempPathFactory) -> ZoneFileResolver:
    zone = tmp_path_factory.mktemp("dkim") / "dkim.zone"
    lines = [line.split("\t", 1) for line in (DKIMPY / "dns-records.txt").read_text().splitlines()
             if line and not line.startswith("#")]
    zone.write_text("".join(txt(name, value) for name, value in lines))
    return ZoneFileResolver([str(zone)])


def vectors() -> list[tuple[str, list[str]]]:
    rows = (DKIMPY / "fixed-vectors.tsv").read_text().splitlines()[1:]
    return [(r.split("\t")[0], [e.strip() for e in r.split("\t")[2].split(";")]) for r in rows if r]


@pytest.mark.parametrize("name, expected", vectors())
def test_fixed_vectors(resolver: ZoneFileResolver, name: str, expected: list[str]) -> None:
    results = verify_all((DKIMPY / name).read_bytes(), resolver, 1024)
    assert len(results) == len(expected)
    for result, wanted in zip(results, expected, strict=True):
        assert result.result in wanted.split("/"), (name, result)


def test_rfc8463_dual_signature_reports_both_algorithms(resolver: ZoneFileResolver) -> None:
    results = verify_all((DKIMPY / "data/rfc6376.signed.msg").read_bytes(), resolver, 1024)
    assert [(r.result, r.prop("header", "a")) for r in results] == [
        ("pass", "ed25519-sha256"), ("pass", "rsa-sha256")]


def _signed(tmp_path: Path, algorithm: bytes, bits: int) -> tuple[bytes, ZoneFileResolver]:
    """A message signed now with a fresh RSA key of `bits`, and a zone publishing that key."""
    private_pem = subprocess.run(["openssl", "genrsa", str(bits)], check=True,
                                 capture_output=True).stdout
    public_der = subprocess.run(["openssl", "rsa", "-pubout", "-outform", "DER"], check=True,
                                input=private_pem, capture_output=True).stdout
    message = b"From: a@sig.test\r\nTo: b@x.test\r\nSubject: s\r\n\r\nbody\r\n"
    sig = dkim.sign(message, b"k", b"sig.test", private_pem, signature_algorithm=algorithm)
    zone = tmp_path / "sig.zone"
    zone.write_text(txt("k._domainkey.sig.test",
                        "v=DKIM1; k=rsa; p=" + base64.b64encode(public_der).decode()))
    return sig + message, ZoneFileResolver([str(zone)])


def test_rsa_sha1_never_passes(tmp_path: Path) -> None:
    message, resolver = _signed(tmp_path, b"rsa-sha1", 1024)
    [result] = verify_all(message, resolver, 1024)
    assert (result.result, result.reason) == ("policy", "rsa-sha1 is not accepted (RFC 8301)")


def test_short_rsa_key_never_passes(tmp_path: Path) -> None:
    message, resolver = _signed(tmp_path, b"rsa-sha256", 512)
    [result] = verify_all(message, resolver, 1024)
    assert (result.result, result.reason) == ("policy", "RSA key under 1024 bits (RFC 8301)")


def test_missing_key_is_permerror(tmp_path: Path) -> None:
    message, _ = _signed(tmp_path, b"rsa-sha256", 1024)
    empty = tmp_path / "empty.zone"
    empty.write_text("")
    [result] = verify_all(message, ZoneFileResolver([str(empty)]), 1024)
    assert result.result == "permerror"
