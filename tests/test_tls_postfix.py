"""TLS through a real private Postfix with smtpd TLS (a self-signed certificate made here), a
second listener with implicit TLS, and the milter in front: peers that must use TLS are refused
in plaintext with 530, accepted with STARTTLS, and the delivered message's Authentication-Results
carries the session's TLS. `sealgate probe` is driven against the same Postfix."""

from __future__ import annotations

import re
import smtplib
import ssl
import subprocess
import time
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Iterator

import authres
import pytest

from conftest import needs_root_and_postfix
from sealgate.probe import main as probe
from sealgate.testbed.gateway import Gateway
from sealgate.testbed.ports import free_port
from sealgate.testbed.postfix import make_traversable
from test_tls_policy_server import POSTMAP, PolicyServer
from sealgate.testbed.zones import txt

pytestmark = needs_root_and_postfix()

AUTHSERV = "mx.b.test"
HEADER = "Authentication-Results"
REFUSED_PLAINTEXT = (530, b"5.7.0 Must issue a STARTTLS command first")


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that is its own CA: the probe can trust it with --cafile."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    f"/CN={AUTHSERV}", "-addext", f"subjectAltName=DNS:{AUTHSERV},IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


class TlsGateway(Gateway):
    """Postfix for b.test: port 25-style listener with STARTTLS, a wrappermode listener, the
    milter, and the TLS policy server in smtp_tls_policy_maps the way docs/tls.md sets it up.

    The milter requires TLS 1.3 from 127.0.0.2 (by config) and from req.test (by its record).
    """

    def __init__(self, workdir: Path) -> None:
        self.cert, key = self_signed_certificate(workdir)
        self.policy = PolicyServer(workdir, f"unix:{workdir}/tls-policy.sock")
        self.smtps_port = free_port()
        super().__init__(
            workdir / "gateway", "b.test",
            txt("_sealgate.req.test", f"v=SG1; h={'ef' * 32}; t=req; u=https://req.test/bundle.json"),
            AUTHSERV, {"tls": {"required_networks": ["127.0.0.2/32"], "min_version": "TLSv1.3"}},
            extra_main={"smtpd_tls_cert_file": str(self.cert), "smtpd_tls_key_file": str(key),
                        "smtpd_tls_security_level": "may",
                        "smtp_tls_policy_maps": f"proxy:{self.policy.table()}"},
            extra_master=[f"127.0.0.1:{self.smtps_port} inet n - n - - smtpd "
                          "-o smtpd_tls_wrappermode=yes -o smtpd_tls_security_level=encrypt"])

    def stop(self) -> None:
        super().stop()
        self.policy.stop()

    def our_results(self, subject: str) -> list[authres.AuthenticationResult]:
        """Our Authentication-Results of the delivered message with this Subject, as authres
        parses them."""
        headers, _ = self.delivered(subject)
        ours = [authres.AuthenticationResultsHeader.parse(f"{HEADER}: {value}")
                for value in headers.get_all(HEADER, [])]
        [header] = [h for h in ours if h.authserv_id == AUTHSERV]
        return list(header.results)

    def was_delivered(self, subject: str) -> bool:
        return any(BytesHeaderParser().parsebytes(p.read_bytes())["Subject"] == subject
                   for p in self.postfix.maildir_messages())


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsGateway]:
    workdir = tmp_path_factory.mktemp("tls")
    make_traversable(workdir)
    with TlsGateway(workdir) as gw:
        yield gw


def message(sender: str, subject: str) -> bytes:
    return (f"From: {sender}\r\nTo: bob@b.test\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@tls.test>\r\n\r\nBody of {subject}.\r\n").encode()


def client_context(maximum: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.maximum_version = maximum
    return context


@dataclass
class Sent:
    code: int  # the final reply to the transaction: the first refusal, or DATA's
    text: bytes
    cipher: tuple[str, str, int] | None  # the client's TLS (version, cipher, bits)
    stage: str  # where that reply came: "MAIL", "RCPT" or "DATA"


def send(gateway: TlsGateway, sender: str, subject: str, *,
         tls: ssl.SSLContext | None = None) -> Sent:
    """One message; the reply that decided it."""
    with smtplib.SMTP(gateway.postfix.host, gateway.postfix.port, local_hostname="mx1.peer.test",
                      timeout=30) as smtp:
        smtp.ehlo()
        cipher = None
        if tls is not None:
            smtp.starttls(context=tls)
            smtp.ehlo()
            name, version, bits = smtp.sock.cipher()  # type: ignore[union-attr]
            cipher = (version, name, bits)
        code, text = smtp.mail(sender)
        if code != 250:
            return Sent(code, text, cipher, "MAIL")
        code, text = smtp.rcpt("bob@b.test")
        if code != 250:
            return Sent(code, text, cipher, "RCPT")
        code, text = smtp.data(message(sender, subject))
        return Sent(code, text, cipher, "DATA")


def test_plaintext_from_a_domain_publishing_t_req_is_refused_with_530(gateway: TlsGateway) -> None:
    sent = send(gateway, "alice@req.test", "req-plain")
    assert (sent.code, sent.text) == REFUSED_PLAINTEXT
    assert sent.stage == "RCPT"  # before the client sent a byte of the message
    assert not gateway.was_delivered("req-plain")


def test_starttls_from_that_domain_is_delivered_with_the_tls_facts(gateway: TlsGateway) -> None:
    sent = send(gateway, "alice@req.test", "req-tls", tls=client_context())
    assert sent.code == 250 and sent.cipher is not None
    version, name, bits = sent.cipher
    tls = gateway.our_results("req-tls")[0]
    assert (tls.method, tls.result) == ("x-tls", "pass")
    assert [(p.type, p.name, p.value) for p in tls.properties] == [
        ("smtp", "tlsversion", version), ("smtp", "tlscipher", name),
        ("smtp", "tlsbits", str(bits))]
    assert version == "TLSv1.3"


def test_too_old_tls_from_a_required_peer_is_refused(gateway: TlsGateway) -> None:
    sent = send(gateway, "alice@req.test", "req-tls12", tls=client_context(ssl.TLSVersion.TLSv1_2))
    assert sent.cipher is not None and sent.cipher[0] == "TLSv1.2"
    assert (sent.code, sent.text, sent.stage) == \
        (530, b"5.7.0 TLS version TLSv1.2 is too old: TLSv1.3 or later required", "RCPT")


def test_plaintext_from_anyone_else_is_delivered_and_counted(gateway: TlsGateway) -> None:
    assert send(gateway, "carol@other.test", "other-plain").code == 250
    assert [(r.method, r.result, r.properties) for r in gateway.our_results("other-plain")][0] \
        == ("x-tls", "none", [])


def run_probe(capsys: pytest.CaptureFixture[str], tmp_path: Path, subject: str,
              *options: str) -> tuple[int, str, str]:
    mail = tmp_path / f"{subject}.eml"
    mail.write_bytes(message("probe@other.test", subject))
    script = tmp_path / "probe.script"
    script.write_text(f"ehlo\nmail from probe@other.test\nrcpt to bob@b.test\ndata {mail}\nquit\n")
    status = probe([*options, "--timeout", "10", "--helo", "probe.test", "--script", str(script)])
    out, err = capsys.readouterr()
    return status, out, err


def test_probe_starttls_verifies_the_certificate(
        gateway: TlsGateway, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, out, err = run_probe(capsys, tmp_path, "probe-starttls", "--starttls", "--cafile",
                                 str(gateway.cert), f"127.0.0.1:{gateway.postfix.port}")
    assert (status, err) == (0, "")
    assert "* TLS TLSv1.3, cipher " in out
    assert "certificate verified for 127.0.0.1 against --cafile" in out
    assert f"[0] subject: CN={AUTHSERV}" in out
    assert gateway.our_results("probe-starttls")[0].result == "pass"


def test_probe_implicit_tls_on_the_wrappermode_listener(
        gateway: TlsGateway, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, out, err = run_probe(capsys, tmp_path, "probe-smtps", "--tls", "--cafile",
                                 str(gateway.cert), f"127.0.0.1:{gateway.smtps_port}")
    assert (status, err) == (0, "")
    assert "* TLS TLSv1.3" in out and "S: 220 mx.b.test ESMTP" in out
    assert gateway.our_results("probe-smtps")[0].result == "pass"


def test_probe_bind_from_a_required_network(
        gateway: TlsGateway, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = f"127.0.0.1:{gateway.postfix.port}"
    status, out, err = run_probe(capsys, tmp_path, "bind-plain", "--bind", "127.0.0.2", target)
    assert status == 1, out
    assert "local address 127.0.0.2" in out
    assert err.count("\n") == 1 and err.startswith("sealgate probe: ")
    assert err.rstrip().endswith("got 530 5.7.0 Must issue a STARTTLS command first")
    assert "C: QUIT" in out

    status, out, err = run_probe(capsys, tmp_path, "bind-tls", "--bind", "127.0.0.2",
                                 "--starttls", "--insecure", target)
    assert (status, err) == (0, "")
    assert gateway.our_results("bind-tls")[0].result == "pass"
    assert re.search(r"client=\S*\[127\.0\.0\.2\]", gateway.postfix.log_text())
    assert not gateway.was_delivered("bind-plain")


@pytest.mark.parametrize("key, answer", [("req.test", "encrypt\n"), ("opt.test", "")])
def test_policy_server_through_postfix_proxymap(gateway: TlsGateway, key: str, answer: str) -> None:
    """Debian runs smtp(8) chrooted: docs/tls.md has it reach the unix socket through proxymap."""
    done = subprocess.run([POSTMAP, "-c", str(gateway.postfix.config_dir), "-q", key,
                           gateway.postfix.main_settings()["smtp_tls_policy_maps"]],
                          capture_output=True, text=True, timeout=20)
    assert (done.stdout, done.stderr) == (answer, "")
