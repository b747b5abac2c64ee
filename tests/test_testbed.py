"""The private-Postfix testbed itself: real Postfix, real delivery.

Every other end-to-end test stands on PrivatePostfix and SmtpSink, so
these check that mail really goes in with swaks and really comes out in a
Maildir or at smtp-sink, and that several instances coexist.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from sealgate.testbed import (
    PrivatePostfix,
    SmtpSink,
    TestbedError,
    free_port,
    postfix_available,
)

SWAKS = shutil.which("swaks")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="a private Postfix instance needs root"),
    pytest.mark.skipif(not postfix_available(), reason="Postfix is not installed (apt-get install postfix)"),
    pytest.mark.skipif(SWAKS is None, reason="swaks is not installed (apt-get install swaks)"),
]


def swaks(port: int, to: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Send one message with swaks to 127.0.0.1:port; return the transcript."""
    assert SWAKS is not None
    return subprocess.run(
        [SWAKS, "--server", f"127.0.0.1:{port}", "--to", to, "--timeout", "10", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_maildir_instance_delivers_swaks_message(tmp_path: Path) -> None:
    token = uuid.uuid4().hex
    with PrivatePostfix(tmp_path / "pf", domain="rcpt.test") as pf:
        sent = swaks(
            pf.port, "x@rcpt.test",
            "--from", "alice@sender.test",
            "--h-Subject", f"testbed {token}",
            "--body", f"body line {token}",
        )
        assert sent.returncode == 0, sent.stdout + sent.stderr
        (message,) = pf.wait_for_messages(1, timeout=10)
        assert f"Subject: testbed {token}".encode() in message
        assert f"body line {token}".encode() in message
        assert b"Delivered-To: x@rcpt.test" in message
        # A second recipient of the same domain lands in the same Maildir.
        assert swaks(pf.port, "y@rcpt.test", "--from", "alice@sender.test").returncode == 0
        assert len(pf.wait_for_messages(2, timeout=10)) == 2
        pf.wait_queue_empty(timeout=5)
        assert "status=sent (delivered to maildir)" in pf.log_text()
    assert not pf.running


def test_relay_instance_forwards_to_smtp_sink(tmp_path: Path) -> None:
    token = uuid.uuid4().hex
    with SmtpSink(tmp_path / "sink", dump=True) as sink, PrivatePostfix(
        tmp_path / "pf", domain="far.test", delivery="relay", relay_port=sink.port
    ) as pf:
        sent = swaks(
            pf.port, "bob@far.test",
            "--from", "alice@sender.test",
            "--h-Subject", f"relayed {token}",
            "--body", f"relay body {token}",
        )
        assert sent.returncode == 0, sent.stdout + sent.stderr
        (got,) = sink.wait_for_messages(1, timeout=10)
        pf.wait_queue_empty(timeout=5)
    assert got.mail_from.startswith("<alice@sender.test>")
    assert got.rcpt_to and got.rcpt_to[0].startswith("<bob@far.test>")
    assert f"Subject: relayed {token}".encode() in got.data
    assert f"relay body {token}".encode() in got.data
    # The relaying Postfix added its Received header; smtp-sink's own is stripped.
    assert got.data.startswith(b"Received: from ")
    assert b"(smtp-sink)" not in got.data and b"(smtp-sink)" in got.raw


def test_two_instances_chain_like_two_gateways(tmp_path: Path) -> None:
    """Instance A relays to instance B, which delivers: two gateways at once."""
    token = uuid.uuid4().hex
    with PrivatePostfix(tmp_path / "b", domain="b.test") as gateway_b, PrivatePostfix(
        tmp_path / "a", domain="b.test", delivery="relay", relay_port=gateway_b.port
    ) as gateway_a:
        assert gateway_a.name != gateway_b.name
        sent = swaks(gateway_a.port, "carol@b.test", "--from", "alice@a.test", "--body", token)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        (message,) = gateway_b.wait_for_messages(1, timeout=15)
        assert token.encode() in message
        # Both hops left a Received header, each under its own hostname.
        assert message.count(b"Received: from ") == 2
        assert b"by mx.b.test (Postfix)" in message
        # Stopping one instance leaves the other running.
        gateway_a.stop()
        assert not gateway_a.running and gateway_b.running
        assert swaks(gateway_b.port, "dave@b.test", "--from", "alice@a.test").returncode == 0
        gateway_b.wait_for_messages(2, timeout=10)
    # Each instance logged only to its own file.
    assert gateway_a.name in gateway_a.log_text() and gateway_b.name not in gateway_a.log_text()


def test_flush_retries_deferred_mail_once_the_next_hop_is_up(tmp_path: Path) -> None:
    sink_port = free_port()
    with PrivatePostfix(tmp_path / "pf", domain="far.test", delivery="relay", relay_port=sink_port) as pf:
        assert swaks(pf.port, "bob@far.test", "--from", "alice@sender.test").returncode == 0
        # Nothing listens yet: the message waits in the deferred queue.
        with pytest.raises(TestbedError, match="still holds 1 message"):
            pf.wait_queue_empty(timeout=1)
        with SmtpSink(tmp_path / "sink", port=sink_port) as sink:
            pf.flush()
            sink.wait_for_count(1, timeout=10)
            pf.wait_queue_empty(timeout=5)
    assert "Connection refused" in pf.log_text()


def test_unreachable_milter_means_tempfail(tmp_path: Path) -> None:
    """The milter settings are live: with no milter listening, Postfix answers 4xx."""
    with PrivatePostfix(tmp_path / "pf", domain="rcpt.test", milter=f"unix:{tmp_path}/none.sock") as pf:
        sent = swaks(pf.port, "x@rcpt.test", "--from", "alice@sender.test")
        assert sent.returncode != 0
        assert "451 4.7.1" in sent.stdout
        assert pf.maildir_messages() == []


def test_start_failure_reports_postfix_log(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        pf = PrivatePostfix(tmp_path / "pf", port=taken.getsockname()[1])
        with pytest.raises(TestbedError) as failure:
            pf.start()
    assert "Address already in use" in str(failure.value)
    assert not pf.running
