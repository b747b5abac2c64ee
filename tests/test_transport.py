"""Two gateways on loopback, a.test and b.test (which also serves c.test), each with its own
keystore and milter, DNS from one zone file: mail from a to b crosses encrypted and arrives as the
byte-exact original, verified; refusals, splitting, tampering, replay and downgrade."""

from __future__ import annotations

import json
import re
import smtplib
import subprocess
import sys
import time
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Iterator

import pytest

from conftest import needs_root_and_postfix
from sealgate.testbed.network import TwoGateways

pytestmark = needs_root_and_postfix()


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoGateways]:
    network = TwoGateways(tmp_path_factory.mktemp("transport"), b_domains=("b.test", "c.test"),
                          mailboxes=("erin@b.test",), a_keystore={"encryption_required": True},
                          a_settings={"outbound": {"require_domains": ["required.test"]}})
    yield network
    network.stop()


def original(subject: str, to: str = "bob@b.test", body: bytes = b"") -> bytes:
    return (f"From: Alice <alice@a.test>\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@a.test>\r\nDate: Sun, 22 Nov 2026 12:00:00 +0000\r\n"
            "X-Mailer: secret-mailer 1.0\r\nUser-Agent: SecretAgent/2\r\n"
            "In-Reply-To: <earlier@a.test>\r\n\r\n").encode() + \
        (body or f"The confidential body of {subject}.\r\n".encode())


def submit(net: TwoGateways, message: bytes, recipients: list[str]) -> None:
    with smtplib.SMTP("127.0.0.1", net.a.postfix.port, local_hostname="laptop.a.test",
                      timeout=120) as smtp:
        smtp.sendmail("alice@a.test", recipients, message)


def crossing(net: TwoGateways, subject_id: bytes, timeout: float = 30):  # type: ignore[no-untyped-def]
    """The last message that crossed the tap whose Message-ID contains `subject_id`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in reversed(net.tap.crossings):
            if subject_id in c.data:
                return c
        time.sleep(0.05)
    raise AssertionError(f"nothing crossed for {subject_id!r}\n{net.a.postfix.log_tail()}\n"
                         f"{net.a.milter.log_text()[-3000:]}")


def delivered_files(net: TwoGateways, subject: str) -> list[bytes]:
    found = []
    for path in net.b.postfix.maildir_messages():
        raw = path.read_bytes()
        if BytesHeaderParser().parsebytes(raw)["Subject"] == subject:
            found.append(raw)
    return found


def lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


def test_mail_crosses_encrypted_and_arrives_byte_exact_and_verified(net: TwoGateways) -> None:
    message = original("quarterly-figures")
    submit(net, message, ["bob@b.test"])
    wire = crossing(net, b"<quarterly-figures@a.test>")
    assert wire.reply.startswith("250"), wire.reply
    for secret in (b"quarterly-figures\r\nMessage-ID", b"confidential body", b"secret-mailer",
                   b"SecretAgent", b"earlier@a.test", b"laptop.a.test"):
        assert secret not in wire.data
    assert b"Subject: ...\r\n" in wire.data and b"multipart/encrypted" in wire.data
    headers, raw = net.b.delivered("quarterly-figures")
    assert lf(raw).endswith(lf(message))
    [ours] = [" ".join(v.split()) for v in headers.get_all("Authentication-Results")
              if v.strip().startswith("mx.b.test")]
    assert "sealgate=pass header.d=a.test header.key-id=" in ours
    assert "dkim=pass header.d=a.test" in ours and "header.a=ed25519-sha256" in ours
    assert "header.a=rsa-sha256" in ours
    assert "dmarc=pass (p=reject) header.from=a.test" in ours


def test_encrypted_mail_is_decrypted_verified_then_sealed_for_the_mailbox(net: TwoGateways) -> None:
    message = original("for-erin", to="erin@b.test")
    submit(net, message, ["erin@b.test"])
    assert b"multipart/encrypted" in crossing(net, b"<for-erin@a.test>").data
    path = next(p for p in wait_files(net, b"<for-erin@a.test>"))
    assert b"confidential body" not in path.read_bytes()
    done = subprocess.run([sys.executable, "-m", "sealgate", "unseal", "--key", str(net.mailbox_keys['erin@b.test']),
                           str(path)], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    unsealed = lf(done.stdout)
    assert unsealed.endswith(lf(message))
    verdicts = unsealed[:-len(lf(message))]  # verdict headers, then a.test's DKIM signatures
    assert b"\nAuthentication-Results: mx.b.test; sealgate=pass header.d=a.test" in verdicts
    assert b"dmarc=pass (p=reject) header.from=a.test" in verdicts
    assert b"\nDKIM-Signature: v=1;\n\ta=ed25519-sha256;" in verdicts


def wait_files(net: TwoGateways, needle: bytes, timeout: float = 20) -> list[Path]:
    """Delivered files at B whose outer headers contain `needle` (a sealed file shows only
    the outer headers)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [p for p in net.b.postfix.maildir_messages() if needle in p.read_bytes()]
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"nothing delivered with {needle!r}\n{net.b.milter.log_text()[-2000:]}")


def inject_at_b(net: TwoGateways, data: bytes, mail_from: str = "alice@a.test",
                recipients: tuple[str, ...] = ("bob@b.test",)) -> None:
    """Deliver straight to gateway B as if from gateway A's address (a replay, a forgery)."""
    with smtplib.SMTP("127.0.0.1", net.b.postfix.port, source_address=("127.0.0.2", 0),
                      local_hostname="mx.a.test", timeout=120) as smtp:
        smtp.sendmail(mail_from, list(recipients), data)


def slots(data: bytes) -> int:
    control = data.split(b"application/sealgate-envelope\r\n\r\n", 1)[1].split(b"\r\n--sealgate-")[0]
    return len(json.loads(control)["header"]["slots"])


def test_one_envelope_serves_several_recipient_domains(net: TwoGateways) -> None:
    submit(net, original("two-domains", to="bob@b.test, carol@c.test"),
           ["bob@b.test", "carol@c.test"])
    wire = crossing(net, b"<two-domains@a.test>")
    assert sorted(wire.recipients) == ["bob@b.test", "carol@c.test"]
    assert slots(wire.data) == 2
    deadline = time.monotonic() + 20
    while len(delivered_files(net, "two-domains")) < 2:
        assert time.monotonic() < deadline, net.b.milter.log_text()[-2000:]
        time.sleep(0.1)


def test_require_refuses_an_unkeyed_domain_and_never_sends_plaintext(net: TwoGateways) -> None:
    with smtplib.SMTP("127.0.0.1", net.a.postfix.port, timeout=60) as smtp:
        refused = smtp.sendmail("alice@a.test", ["bob@b.test", "x@required.test"],
                                original("required-mixed"))
    code, text = refused["x@required.test"]
    assert code == 550
    assert text.startswith(b"5.7.5 Encryption to required.test is required but no valid key")
    wire = crossing(net, b"<required-mixed@a.test>")
    assert wire.recipients == ["bob@b.test"] and b"multipart/encrypted" in wire.data


def test_opportunistic_mixed_goes_plaintext_to_all_by_default(net: TwoGateways) -> None:
    submit(net, original("mixed-plain", to="bob@b.test, dave@plain.test"),
           ["bob@b.test", "dave@plain.test"])
    wire = crossing(net, b"<mixed-plain@a.test>")
    assert sorted(wire.recipients) == ["bob@b.test", "dave@plain.test"]
    assert b"The confidential body of mixed-plain" in wire.data
    assert b"DKIM-Signature: v=1;" in wire.data  # plaintext still leaves signed


def test_opportunistic_split_keeps_ciphertext_for_keyed_domains(net: TwoGateways) -> None:
    net.a.reconfigure("outbound", mixed="split")
    try:
        submit(net, original("mixed-split", to="bob@b.test, dave@plain.test"),
               ["bob@b.test", "dave@plain.test"])
        deadline = time.monotonic() + 30
        while len([c for c in net.tap.crossings if b"<mixed-split@a.test>" in c.data]) < 2:
            assert time.monotonic() < deadline, net.a.postfix.log_tail()
            time.sleep(0.1)
        by_rcpt = {tuple(c.recipients): c.data for c in net.tap.crossings
                   if b"<mixed-split@a.test>" in c.data}
        assert b"multipart/encrypted" in by_rcpt[("bob@b.test",)]
        assert b"The confidential body of mixed-split" not in by_rcpt[("bob@b.test",)]
        assert b"The confidential body of mixed-split" in by_rcpt[("dave@plain.test",)]
    finally:
        net.a.reconfigure("outbound", mixed="plaintext")


def test_one_flipped_byte_is_refused(net: TwoGateways) -> None:
    submit(net, original("to-tamper"), ["bob@b.test"])
    data = crossing(net, b"<to-tamper@a.test>").data
    start = data.index(b"base64\r\n\r\n") + 10
    at = start + 100
    tampered = data[:at] + (b"B" if data[at:at + 1] != b"B" else b"C") + data[at + 1:]
    with pytest.raises(smtplib.SMTPDataError) as refused:
        inject_at_b(net, tampered)
    assert refused.value.smtp_code == 550
    assert refused.value.smtp_error.startswith(b"5.7.5 sealgate envelope refused:")


def test_plaintext_from_a_domain_that_requires_encryption_is_tagged(net: TwoGateways) -> None:
    inject_at_b(net, original("downgraded"))
    headers, _ = net.b.delivered("downgraded")
    ours = " ".join(headers["Authentication-Results"].split())
    assert ours.startswith("mx.b.test; sealgate=fail reason=\"downgrade: plaintext from a domain "
                           "that requires encryption\" header.from=a.test")


def peak_rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]


def test_25_mb_message_with_bounded_memory(net: TwoGateways) -> None:
    body = (b"0123456789abcdefghijklmnopqrstuvwxyz" * 2 + b"\r\n") * (25 * 1024 * 1024 // 74)
    milters = {"a": net.a.milter.proc, "b": net.b.milter.proc}
    before = {name: peak_rss_kb(p.pid) for name, p in milters.items()}  # type: ignore[union-attr]
    message = original("big-one", body=body)
    submit(net, message, ["bob@b.test"])
    _, raw = net.b.delivered("big-one", timeout=120)
    assert lf(raw).endswith(lf(message))
    growth = {name: (peak_rss_kb(p.pid) - before[name]) // 1024  # type: ignore[union-attr]
              for name, p in milters.items()}
    assert all(mb < 64 for mb in growth.values()), growth


def test_replay_after_the_transport_key_is_destroyed_is_refused(net: TwoGateways) -> None:
    """Runs last: it moves gateway B's keystore clock past the key's window and grace."""
    submit(net, original("to-replay"), ["bob@b.test"])
    data = crossing(net, b"<to-replay@a.test>").data
    net.b.delivered("to-replay")
    later = int(time.time()) + 40 * 86400
    net.ks_b.env["SEALGATE_KEYSTORE_NOW"] = str(later)
    try:
        net.ks_b.run("keystore", "maintain")
    finally:
        net.ks_b.env.pop("SEALGATE_KEYSTORE_NOW")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        inject_at_b(net, data)
    assert refused.value.smtp_code == 550
    assert b"destroyed" in refused.value.smtp_error, refused.value.smtp_error
