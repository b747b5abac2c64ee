"""The milter in front of a real private Postfix: mail sent over SMTP, the delivered message read
back from the Maildir, its Authentication-Results asserted exactly."""

from __future__ import annotations

import base64
import smtplib
import subprocess
from pathlib import Path
from typing import Iterator

import dkim
import pytest
from authres.core import QuotableValue

from conftest import CORPORA, needs_root_and_postfix
from sealgate.testbed.gateway import Gateway
from sealgate.testbed.zones import txt

pytestmark = needs_root_and_postfix()

AUTHSERV = "mx.b.test"


def rsa_key() -> tuple[bytes, str]:
    pem = subprocess.run(["openssl", "genrsa", "2048"], check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "rsa", "-pubout", "-outform", "DER"], input=pem,
                         check=True, capture_output=True).stdout
    return pem, base64.b64encode(der).decode()


@pytest.fixture(scope="module")
def signing_key() -> tuple[bytes, str]:
    return rsa_key()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory,
            signing_key: tuple[bytes, str]) -> Iterator[Gateway]:
    zone = "".join([
        txt("good.test", "v=spf1 ip4:127.0.0.1 -all"),
        txt("s1._domainkey.good.test", f"v=DKIM1; k=rsa; p={signing_key[1]}"),
        txt("_dmarc.good.test", "v=DMARC1; p=reject"),
        txt("bad.test", "v=spf1 -all"),
        txt("_dmarc.bad.test", "v=DMARC1; p=reject"),
        txt("fail.test", "v=spf1 -all"),
    ])
    with Gateway(tmp_path_factory.mktemp("gateway"), "b.test", zone, AUTHSERV) as gw:
        yield gw


def sign(message: bytes, key: tuple[bytes, str]) -> bytes:
    return dkim.sign(message, b"s1", b"good.test", key[0]) + message


def message(sender: str, subject: str, extra: bytes = b"") -> bytes:
    return extra + (f"From: Sender <{sender}>\r\nTo: bob@b.test\r\nSubject: {subject}\r\n"
                    f"Message-ID: <{subject}@test>\r\n\r\nBody of {subject}.\r\n").encode()


def test_signed_aligned_mail_passes_spf_dkim_dmarc(gateway: Gateway,
                                                  signing_key: tuple[bytes, str]) -> None:
    msg = sign(message("alice@good.test", "signed"), signing_key)
    b_tag = QuotableValue(dkim.util.parse_tag_value(msg.split(b"\r\n\r\n")[0].split(b":", 1)[1]
                                                    .replace(b"\r\n", b""))[b"b"][:8].decode())
    gateway.send(msg, "alice@good.test", helo="client.good.test")
    assert gateway.authentication_results("signed") == [
        f"{AUTHSERV}; x-tls=none; spf=none smtp.helo=client.good.test; spf=pass smtp.mailfrom=good.test; "
        f"dkim=pass header.d=good.test header.s=s1 header.a=rsa-sha256 header.b={b_tag.quote_if_needed()}; "
        "dmarc=pass (p=reject) header.from=good.test policy.dmarc=reject"]


def test_spf_fail_without_dmarc_is_delivered_and_recorded(gateway: Gateway) -> None:
    gateway.send(message("x@fail.test", "spf-fail"), "x@fail.test", helo="client.fail.test")
    assert gateway.authentication_results("spf-fail") == [
        f"{AUTHSERV}; x-tls=none; spf=none smtp.helo=client.fail.test; "
        'spf=fail reason="SPF fail - not authorized" smtp.mailfrom=fail.test; '
        'dkim=none reason="message not signed"; '
        'dmarc=none reason="no DMARC record" header.from=fail.test']


def test_dmarc_reject_policy_refuses_with_550(gateway: Gateway) -> None:
    with pytest.raises(smtplib.SMTPDataError) as refused:
        gateway.send(message("ceo@bad.test", "spoofed"), "ceo@bad.test", helo="client.bad.test")
    assert refused.value.smtp_code == 550
    assert b"5.7.1 Rejected by DMARC policy of bad.test" in refused.value.smtp_error


def test_forged_results_with_our_id_do_not_survive(gateway: Gateway,
                                                  signing_key: tuple[bytes, str]) -> None:
    forged = (f"Authentication-Results: {AUTHSERV}; dmarc=pass header.from=bad.test\r\n"
              "Authentication-Results: elsewhere.example; spf=pass\r\n").encode()
    gateway.send(sign(message("alice@good.test", "forged", forged), signing_key),
                 "alice@good.test", helo="client.good.test")
    headers = gateway.authentication_results("forged")
    ours = [h for h in headers if h.startswith(AUTHSERV)]
    assert len(ours) == 1 and "dmarc=pass (p=reject) header.from=good.test" in ours[0]
    assert "elsewhere.example; spf=pass" in headers


def mime_corpus() -> list[Path]:
    mime = CORPORA / "mime"
    return sorted([*mime.glob("cpython-*/msg_*.txt"), *mime.glob("mime-tools-testmsgs/*.msg"),
                   *(p for p in (mime / "flanker-fixtures" / "messages").rglob("*") if p.is_file())])


def test_mime_torture_corpus_never_crashes_the_milter(gateway: Gateway) -> None:
    corpus = mime_corpus()
    assert len(corpus) > 200
    outcomes: dict[str, str] = {}
    for path in corpus:
        try:
            gateway.send(path.read_bytes(), "sender@fail.test", "client.fail.test")
            outcomes[path.name] = "accepted"
        except smtplib.SMTPResponseException as exc:
            text = exc.smtp_error.decode(errors="replace")
            assert text.strip(), f"{path}: refused without a reason"
            outcomes[path.name] = f"{exc.smtp_code} {text}"
    log = gateway.milter.log_text()
    assert "internal error" not in log and "Traceback" not in log, log[-3000:]
    assert gateway.milter.alive()
    assert list(outcomes.values()).count("accepted") > len(corpus) * 0.9, outcomes
