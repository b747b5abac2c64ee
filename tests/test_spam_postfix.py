"""Spam scoring in the real milter behind a private Postfix: reject, quarantine, marks, scanner down."""

from __future__ import annotations

import smtplib
import time
import tomllib
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import CORPORA, needs_root_and_postfix

from sealgate.testbed.gateway import Gateway
from sealgate.testbed.milter import write_config
from sealgate.testbed.ports import free_port
from sealgate.testbed.zones import txt

pytestmark = needs_root_and_postfix()

AUTHSERV = "mx.b.test"
GTUBE = (CORPORA / "spam" / "spamassassin-deb-samples" / "sample-spam.txt").read_bytes()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    workdir = tmp_path_factory.mktemp("spam-gateway")
    zone = txt("a.test", "v=spf1 ip4:127.0.0.1 -all")
    settings: dict[str, dict[str, Any]] = {
        "milter": {"use_keystore": False}, "spam": {"bayes_database": str(workdir / "bayes.db")}}
    with Gateway(workdir, "b.test", zone, AUTHSERV, settings=settings) as gw:
        yield gw


def message(subject: str, body: str = "Lunch at noon?", extra: str = "") -> bytes:
    return (f"From: Alice <alice@a.test>\r\nTo: bob@b.test\r\nSubject: {subject}\r\n"
            f"Date: Mon, 2 Jun 2025 10:00:00 +0000\r\nMessage-ID: <{subject}@a.test>\r\n"
            f"{extra}\r\n{body}\r\n").encode()


def send(gateway: Gateway, raw: bytes) -> None:
    gateway.send(raw, "alice@a.test", helo="mail.a.test")


def reconfigure(gateway: Gateway, spam: dict[str, Any]) -> None:
    """Replace [spam] and reload the running milter with SIGHUP."""
    sections = tomllib.loads(gateway.config_path.read_text())
    sections["spam"] = {"bayes_database": sections["spam"]["bayes_database"], **spam}
    write_config(gateway.config_path, sections)
    gateway.milter.reload()


def test_gtube_is_refused_with_550_5_7_1(gateway: Gateway) -> None:
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(gateway, GTUBE)
    assert refused.value.smtp_code == 550
    assert b"5.7.1 Message refused as spam" in refused.value.smtp_error


def test_ham_is_delivered_with_marks_and_without_forged_ones(gateway: Gateway) -> None:
    send(gateway, message("lunch", extra="X-Spam-Flag: YES\r\nX-Spam-Score: 99\r\n"))
    headers, _ = gateway.delivered("lunch")
    assert headers.get_all("X-Spam-Flag") == ["NO"]
    assert len(headers.get_all("X-Spam-Score") or []) == 1 and float(headers["X-Spam-Score"]) < 5
    assert headers["X-Spam-Status"].startswith("No, score=")
    assert headers["Authentication-Results"].startswith(AUTHSERV)
    score = headers["X-Spam-Score"].strip()
    [line] = [line for line in gateway.milter.log_text().splitlines() if "from=<" in line
              and f"spam=builtin:{float(score):.1f} spam_tests=" in line]  # one line a message
    assert line.endswith("action=accept")


def evasive() -> bytes:
    """Every ambiguous-MIME trick at once: 12 points, between quarantine (10) and reject (15)."""
    body = ("--a\r\nContent-Type: text/plain\r\n\r\nSee the attachment.\r\n"
            "--a\r\nContent-Type: application/octet-stream\r\nContent-Type: text/plain\r\n"
            "Content-Transfer-Encoding: base64\r\nContent-Transfer-Encoding: quoted-printable\r\n"
            "Content-Disposition: attachment; filename=\"invoice.exe\"\r\n\r\nZ290Y2hhCg==\r\n"
            "--a--\r\n")
    return message("evasive", body, 'MIME-Version: 1.0\r\n'
                                     'Content-Type: multipart/mixed; boundary="a"; boundary="b"\r\n')


def test_score_above_quarantine_goes_to_the_hold_queue(gateway: Gateway) -> None:
    send(gateway, evasive())
    hold = gateway.postfix.queue_dir / "hold"
    deadline = time.monotonic() + 10
    while not any(p.is_file() for p in hold.rglob("*")):
        assert time.monotonic() < deadline, gateway.milter.log_text()[-2000:]
        time.sleep(0.05)
    assert "action=quarantine" in gateway.milter.log_text()


def test_scanner_down_delivers_unscanned_or_tempfails_as_configured(gateway: Gateway) -> None:
    closed = f"127.0.0.1:{free_port()}"
    reconfigure(gateway, {"backend": "spamd", "spamd_address": closed, "timeout": 2.0})
    send(gateway, message("unscanned"))
    headers, _ = gateway.delivered("unscanned")
    assert headers["X-Spam-Status"].startswith('Unscanned, reason="spamd at 127.0.0.1:')
    assert headers["X-Spam-Flag"] is None

    reconfigure(gateway, {"backend": "spamd", "spamd_address": closed, "timeout": 2.0,
                          "unavailable_action": "tempfail"})
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(gateway, message("retry-later"))
    assert refused.value.smtp_code == 451
    assert b"4.7.1 Spam scanner unavailable" in refused.value.smtp_error

