"""sealgate probe against real SMTP servers on loopback (aiosmtpd), no mocks."""

import base64
import hmac
import os
import pty
import re
import secrets
import select
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytest.importorskip("aiosmtpd")
from aiosmtpd.controller import Controller  # noqa: E402
from aiosmtpd.smtp import MISSING, AuthResult, Envelope, LoginPassword, Session, auth_mechanism  # noqa: E402

from sealgate.probe import main  # noqa: E402
from sealgate.probe.args import split_target  # noqa: E402
from sealgate.probe.errors import UsageError  # noqa: E402
from sealgate.probe.message import wire_format  # noqa: E402
from sealgate.probe.script import parse_script  # noqa: E402

USER, PASSWORD = "alice", "pw-Zq8#secret"
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Handler:
    """Records what arrived and checks CRAM-MD5, which aiosmtpd lacks."""

    received: list[tuple[tuple[str, int], str, list[str], bytes]] = field(default_factory=list)

    async def handle_RCPT(self, server, session: Session, envelope: Envelope,
                          address: str, options: list[str]) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 <%s>: Recipient address rejected" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session: Session, envelope: Envelope) -> str:
        self.received.append((session.peer, envelope.mail_from, envelope.rcpt_tos,
                              envelope.original_content))
        return "250 2.0.0 queued"

    @auth_mechanism("CRAM-MD5")
    async def auth_CRAM_MD5(self, server, args: list[str]) -> AuthResult:
        challenge = f"<{secrets.token_hex(8)}@probe.test>".encode()
        response = await server.challenge_auth(challenge)
        if response is MISSING:
            return AuthResult(success=False, handled=True)
        user, _, digest = response.decode().partition(" ")
        expected = hmac.new(PASSWORD.encode(), challenge, "md5").hexdigest()
        return AuthResult(success=user == USER and hmac.compare_digest(digest, expected),
                          handled=False)


def authenticator(server, session, envelope, mechanism: str, data: LoginPassword) -> AuthResult:
    return AuthResult(success=data == LoginPassword(USER.encode(), PASSWORD.encode()),
                      handled=False)


@dataclass
class Server:
    handler: Handler
    port: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve(**kwargs) -> Iterator[Server]:
    handler = Handler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(),
                            authenticator=authenticator, **kwargs)
    controller.start()
    try:
        yield Server(handler, controller.port)
    finally:
        controller.stop()


def openssl(*arguments: str) -> None:
    subprocess.run(["openssl", *arguments], check=True, capture_output=True)


@pytest.fixture(scope="session")
def certificate(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A private CA and a server certificate for localhost/127.0.0.1 it signed.

    Returns the CA certificate, the chain the server sends (leaf, CA) and its key.
    """
    folder = tmp_path_factory.mktemp("tls")
    ca, ca_key, csr = folder / "ca.pem", folder / "ca.key", folder / "leaf.csr"
    leaf, key, chain, extensions = (folder / name for name in
                                    ("leaf.pem", "leaf.key", "chain.pem", "san.cnf"))
    ec_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec_key, "-days", "2", "-keyout", str(ca_key), "-out", str(ca),
            "-subj", "/O=Probe Test/CN=Probe Test CA")
    openssl("req", *ec_key, "-keyout", str(key), "-out", str(csr),
            "-subj", "/O=Probe Test/CN=localhost")
    extensions.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
            "-CAcreateserial", "-days", "2", "-extfile", str(extensions), "-out", str(leaf))
    chain.write_bytes(leaf.read_bytes() + ca.read_bytes())
    return ca, chain, key


@pytest.fixture
def server_tls_context(certificate) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate[1], certificate[2])
    return context


@pytest.fixture
def plain_server() -> Iterator[Server]:
    yield from serve(auth_require_tls=False)


@pytest.fixture
def starttls_server(server_tls_context) -> Iterator[Server]:
    yield from serve(tls_context=server_tls_context)


@pytest.fixture
def smtps_server(server_tls_context) -> Iterator[Server]:
    yield from serve(ssl_context=server_tls_context)


@pytest.fixture
def credentials(monkeypatch) -> None:
    monkeypatch.setenv("SMTP_PROBE_USER", USER)
    monkeypatch.setenv("SMTP_PROBE_PASSWORD", PASSWORD)


def probe(capsys, tmp_path: Path, script: str, *options: str) -> tuple[int, str, str]:
    """Run a script through main() in-process; returns status, stdout, stderr."""
    path = tmp_path / "probe.script"
    path.write_text(script)
    status = main([*options, "--timeout", "5", "--helo", "probe.test", "--script", str(path)])
    out, err = capsys.readouterr()
    return status, out, err


def run_cli(*arguments: str) -> subprocess.CompletedProcess:
    """Run the real executable wrapper, as an admin would."""
    return subprocess.run([sys.executable, str(ROOT / "contrib" / "smtp-probe"), *arguments],
                          capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)


SEND = """\
ehlo
mail from sender@probe.test
rcpt to rcpt@example.org
data
quit
"""


def test_script_sends_a_generated_message(plain_server, capsys, tmp_path):
    status, out, err = probe(capsys, tmp_path, SEND, plain_server.target)
    assert (status, err) == (0, "")
    [(_, sender, recipients, content)] = plain_server.handler.received
    assert (sender, recipients) == ("sender@probe.test", ["rcpt@example.org"])
    for header in (b"Date: ", b"Message-ID: <", b"From: sender@probe.test",
                   b"To: rcpt@example.org", b"Subject: "):
        assert header in content
    assert "C: MAIL FROM:<sender@probe.test>" in out
    assert re.search(r"S: 250 2\.0\.0 queued  \(\d+\.\d ms\)", out)
    assert "script done" in out


def test_data_file_is_dot_stuffed_with_crlf(plain_server, capsys, tmp_path):
    message = tmp_path / "message.eml"
    message.write_bytes(b"Subject: dots\n\n.leading dot\n.\nlast line\n")
    script = f"ehlo\nmail from <>\nrcpt to <rcpt@example.org>\ndata {message}\n"
    status, _, err = probe(capsys, tmp_path, script, plain_server.target)
    assert (status, err) == (0, "")
    [(_, sender, _, content)] = plain_server.handler.received
    assert sender == "<>" or sender == ""
    assert content == b"Subject: dots\r\n\r\n.leading dot\r\n.\r\nlast line\r\n"


def test_unexpected_reply_fails_naming_the_line(plain_server, capsys, tmp_path):
    script = SEND.replace("rcpt to rcpt@", "rcpt to nobody@")
    status, out, err = probe(capsys, tmp_path, script, plain_server.target)
    assert status == 1
    assert err.count("\n") == 1
    assert "probe.script:3: rcpt to nobody@example.org: expected 2xx, got 550 5.1.1" in err
    assert "C: QUIT" in out  # still says goodbye
    assert plain_server.handler.received == []


def test_expected_rejection_passes(plain_server, capsys, tmp_path):
    script = ("greeting expect 220\nehlo\nmail from a@probe.test\n"
              "rcpt to nobody@example.org expect 55x\n!DATA expect 5\nrset expect 250\n")
    status, _, err = probe(capsys, tmp_path, script, plain_server.target)
    assert (status, err) == (0, "")


def test_raw_data_lines_in_a_script(plain_server, capsys, tmp_path):
    script = ("ehlo\nmail from a@probe.test\nrcpt to b@example.org\n!DATA\n"
              "Subject: raw\n\nbody expect nothing\n. expect 250\n")
    status, _, err = probe(capsys, tmp_path, script, plain_server.target)
    assert (status, err) == (0, "")
    assert plain_server.handler.received[0][3] == b"Subject: raw\r\n\r\nbody expect nothing\r\n"


def test_bad_script_is_refused_before_connecting(capsys, tmp_path):
    status, out, err = probe(capsys, tmp_path, "ehlo\nmail\n", f"127.0.0.1:{free_port()}")
    assert status == 2
    assert out == ""
    assert err.startswith("sealgate probe: ") and "probe.script:2: mail needs an address" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("mechanism", ["plain", "login", "cram-md5"])
@pytest.mark.parametrize("password, status", [(PASSWORD, 0), ("wrong-" + PASSWORD, 1)])
def test_auth(plain_server, capsys, tmp_path, monkeypatch, mechanism, password, status):
    monkeypatch.setenv("SMTP_PROBE_PASSWORD", password)
    code, out, err = probe(capsys, tmp_path, f"ehlo\nauth {mechanism} {USER}\n",
                           plain_server.target)
    assert code == status
    assert f"AUTH {mechanism.upper()}" in out
    assert "***" in out
    everything = out + err
    assert PASSWORD not in everything
    assert base64.b64encode(password.encode()).decode() not in everything
    assert base64.b64encode(f"\0{USER}\0{password}".encode()).decode() not in everything
    if status:
        assert "expected 2xx, got 535" in err


def test_auth_without_password_or_terminal_is_one_line(plain_server, capsys, tmp_path,
                                                       monkeypatch):
    monkeypatch.delenv("SMTP_PROBE_PASSWORD", raising=False)
    status, _, err = probe(capsys, tmp_path, "ehlo\nauth login bob\n", plain_server.target)
    assert status == 2
    assert "probe.script:2: no terminal to prompt on: set SMTP_PROBE_PASSWORD" in err


def test_starttls_option_shows_tls_and_certificate(starttls_server, certificate, capsys,
                                                   tmp_path, credentials):
    status, out, err = probe(capsys, tmp_path, "ehlo\nauth plain\nquit\n",
                             starttls_server.target, "--starttls", "--cafile",
                             str(certificate[0]))
    assert (status, err) == (0, "")
    assert re.search(r"\* TLS TLSv1\.[23], cipher \S+ \(\d+ bits\)", out)
    assert "certificate verified for 127.0.0.1 against --cafile" in out
    assert "certificate chain as sent by the server (2):" in out
    assert "[0] subject: O=Probe Test, CN=localhost" in out
    assert "issuer:  O=Probe Test, CN=Probe Test CA" in out
    assert "names:   DNS:localhost, IP:127.0.0.1" in out
    assert "[1] subject: O=Probe Test, CN=Probe Test CA" in out
    assert re.search(r"sha256:  ([0-9A-F]{2}:){31}[0-9A-F]{2}", out)
    assert "235" in out


def test_starttls_macro_with_insecure(starttls_server, capsys, tmp_path):
    status, out, err = probe(capsys, tmp_path, "ehlo\nstarttls\nehlo\nnoop\n",
                             starttls_server.target, "--insecure")
    assert (status, err) == (0, "")
    assert "certificate NOT verified (--insecure)" in out
    assert "subject: O=Probe Test, CN=localhost" in out


def test_implicit_tls(smtps_server, certificate, capsys, tmp_path):
    status, out, err = probe(capsys, tmp_path, SEND, smtps_server.target,
                             "--tls", "--cafile", str(certificate[0]))
    assert (status, err) == (0, "")
    assert re.search(r"\* TLS TLSv1\.[23]", out)
    assert "subject: O=Probe Test, CN=localhost" in out
    assert len(smtps_server.handler.received) == 1


def test_untrusted_certificate_is_one_clear_line(smtps_server):
    result = run_cli(smtps_server.target, "--tls", "--timeout", "5", "--script", os.devnull)
    assert result.returncode == 3
    assert result.stderr.count("\n") == 1
    assert "TLS certificate verification failed: self-signed certificate in certificate chain" \
        in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_implicit_tls_to_a_plain_server_is_one_clear_line(plain_server):
    result = run_cli(plain_server.target, "--tls", "--insecure", "--timeout", "5")
    assert result.returncode == 3
    assert result.stderr.count("\n") == 1
    assert "TLS handshake failed" in result.stderr


def test_bind_chooses_the_source_address(plain_server, capsys, tmp_path):
    status, out, _ = probe(capsys, tmp_path, SEND, plain_server.target, "--bind", "127.0.0.2")
    assert status == 0
    assert plain_server.handler.received[0][0][0] == "127.0.0.2"
    assert "local address 127.0.0.2" in out


@pytest.mark.parametrize("arguments, status, message", [
    ([f"127.0.0.1:{free_port()}"], 3, "Connection refused"),
    (["127.0.0.1:99999"], 2, "bad port '99999'"),
    (["127.0.0.1:smtp"], 2, "bad port 'smtp'"),
    (["a..b"], 3, "cannot resolve a..b: not a valid host name"),
    (["127.0.0.1", "--bind", "not-an-ip"], 2, "not an IP address"),
    (["127.0.0.1", "--bind", "192.0.2.99"], 3, "cannot use 192.0.2.99 as source address"),
    (["127.0.0.1", "--cafile", "/nonexistent/ca.pem"], 2, "cannot load --cafile"),
    (["127.0.0.1", "--script", "/nonexistent/script"], 2, "cannot read script"),
])
def test_bad_input_is_one_line_without_traceback(arguments, status, message):
    result = run_cli(*arguments, "--timeout", "2")
    assert result.returncode == status
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_help_names_the_subcommand():
    result = run_cli("--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: sealgate probe ")


def read_until(fd: int, pattern: str, timeout: float = 5.0) -> str:
    """Read the pseudo-terminal until pattern shows up."""
    seen, deadline = "", time.monotonic() + timeout
    while not re.search(pattern, seen):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {pattern!r} in {seen!r}"
        if select.select([fd], [], [], remaining)[0]:
            seen += os.read(fd, 65536).decode(errors="replace")
    return seen


def test_interactive_session_on_a_terminal(plain_server):
    pid, fd = pty.fork()
    if pid == 0:  # the child: the probe on a terminal, as an admin runs it
        os.execv(sys.executable, [sys.executable, "-m", "sealgate.probe", plain_server.target,
                                  "--helo", "probe.test", "--timeout", "5"])
    try:
        assert "220" in read_until(fd, r"smtp> ")
        os.write(fd, b"ehlo\n")
        assert re.search(r"S: 250 HELP  \(\d+\.\d ms\)", read_until(fd, r"HELP.*\n.*smtp> "))
        os.write(fd, b"mail\n")
        assert "error: mail needs an address" in read_until(fd, r"smtp> ")
        os.write(fd, b"mail from someone@probe.test\n")
        assert re.search(r"S: 250 OK  \(\d+\.\d ms\)", read_until(fd, r"250 OK.*\n.*smtp> "))
        os.write(fd, b"quit\n")
        assert re.search(r"S: 221 Bye  \(\d+\.\d ms\)", read_until(fd, r"221 Bye"))
        assert os.waitpid(pid, 0)[1] == 0
    finally:
        os.close(fd)


def test_server_hanging_up_while_idle_is_noticed():
    for server in serve(auth_require_tls=False, timeout=0.3):
        process = subprocess.Popen(
            [sys.executable, "-m", "sealgate.probe", server.target, "--timeout", "5"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.8)  # the server's idle timeout passes while "the admin types"
        out, err = process.communicate("noop\n", timeout=10)
        assert process.returncode == 3
        assert err == "sealgate probe: connection closed by the server\n"
        assert "C: NOOP" not in out


def test_target_forms():
    assert split_target("mx.example.org", 25) == ("mx.example.org", 25)
    assert split_target("mx.example.org:587", 25) == ("mx.example.org", 587)
    assert split_target("[2001:db8::1]:2525", 25) == ("2001:db8::1", 2525)
    assert split_target("2001:db8::1", 465) == ("2001:db8::1", 465)
    for bad in (":25", "[::1", "[::1]25", "mx:0"):
        with pytest.raises(UsageError):
            split_target(bad, 25)


def test_wire_format():
    assert wire_format(b"a\r\n.b\rc\n") == b"a\r\n..b\r\nc\r\n.\r\n"
    assert wire_format(b"no newline") == b"no newline\r\n.\r\n"


def test_script_syntax():
    script = parse_script("# c\n\nRCPT TO:<x@y> expect 250, 251\nquit expect 2xx\n", "s")
    assert [step.expect.prefixes for step in script.steps] == [("250", "251"), ("2",)]
    for bad in ("ehlo expect 9", "ehlo expect", "auth digest-md5", "rset now", "help expect 2",
                "expect 250", "!DATA\nno end"):
        with pytest.raises(UsageError, match=r"^s:1: "):
            parse_script(bad, "s")
