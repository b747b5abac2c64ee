"""The spam stage in the pipeline: marks, thresholds, forged marks, and scanners down or slow."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CORPORA

from sealgate import pipeline, services, verify
from sealgate.config import Config
from sealgate.message import HeaderEdit, Message
from sealgate.pipeline import Session, Transaction
from sealgate.spam import stage
from sealgate.testbed.ports import free_port

GTUBE = (CORPORA / "spam" / "spamassassin-deb-samples" / "sample-spam.txt").read_bytes()
HAM = (b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: lunch\r\n"
       b"Date: Mon, 2 Jun 2025 10:00:00 +0000\r\nMessage-ID: <l@example.org>\r\n"
       b"X-Spam-Flag: NO\r\nX-Spam-Status: No, forged\r\n\r\nLunch at noon?\r\n")


@pytest.fixture
def spam_config(make_config: Callable[..., Config], tmp_path: Path) -> Callable[..., Config]:
    def make(**spam: Any) -> Config:
        spam.setdefault("bayes_database", str(tmp_path / "no-model.db"))
        return make_config(spam=spam, milter={"use_keystore": False})
    return make


def run_stage(config: Config, raw: bytes) -> tuple[pipeline.Verdict | None, Message]:
    txn = Transaction(Session(client_ip="192.0.2.1", helo="client.example.org"),
                      Message.from_bytes(raw, "alice@example.org", ["bob@example.net"]))
    return stage.stage(txn, services.build(config)), txn.message


def inserted(msg: Message) -> dict[str, str]:
    return {e.name: e.value for e in msg.edits if e.action == "insert"}


def test_ham_gets_marks_and_forged_marks_are_deleted(spam_config: Callable[..., Config]) -> None:
    verdict, msg = run_stage(spam_config(), HAM)
    assert verdict is None
    marks = inserted(msg)
    assert marks["X-Spam-Flag"] == "NO"
    assert marks["X-Spam-Status"].startswith("No, score=")
    assert "scanner=builtin" in marks["X-Spam-Status"]
    assert float(marks["X-Spam-Score"]) < 5
    assert HeaderEdit("delete", "X-Spam-Flag", index=1) in msg.edits
    assert HeaderEdit("delete", "X-Spam-Status", index=1) in msg.edits


def test_gtube_is_rejected_with_550_5_7_1(spam_config: Callable[..., Config]) -> None:
    verdict, msg = run_stage(spam_config(), GTUBE)
    assert verdict is not None and (verdict.action, verdict.code, verdict.dsn) == ("reject", "550", "5.7.1")
    assert not inserted(msg)


@pytest.mark.parametrize("settings, action", [
    ({"reject_score": 0.0}, "quarantine"),
    ({"reject_score": 0.0, "quarantine_score": 0.0}, None),
])
def test_thresholds_choose_the_action(spam_config: Callable[..., Config], settings: dict[str, float],
                                      action: str | None) -> None:
    verdict, msg = run_stage(spam_config(**settings), GTUBE)
    assert (verdict.action if verdict else None) == action
    assert inserted(msg)["X-Spam-Flag"] == "YES"


def test_off_does_nothing(spam_config: Callable[..., Config]) -> None:
    verdict, msg = run_stage(spam_config(backend="off"), GTUBE)
    assert verdict is None and not msg.edits


def closed_port() -> int:
    return free_port()  # nothing listens there once the probe socket is closed


@pytest.mark.parametrize("backend, key, address", [
    ("spamd", "spamd_address", "127.0.0.1:{port}"),
    ("rspamd", "rspamd_url", "http://127.0.0.1:{port}"),
])
def test_scanner_down_delivers_marked_unscanned_by_default(
        spam_config: Callable[..., Config], backend: str, key: str, address: str) -> None:
    config = spam_config(backend=backend, **{key: address.format(port=closed_port())})
    verdict, msg = run_stage(config, GTUBE)
    assert verdict is None
    status = inserted(msg)["X-Spam-Status"]
    assert status.startswith('Unscanned, reason="') and "cannot connect" in status
    assert "X-Spam-Flag" not in inserted(msg)


def test_scanner_down_tempfails_when_configured(spam_config: Callable[..., Config]) -> None:
    config = spam_config(backend="spamd", spamd_address=f"127.0.0.1:{closed_port()}",
                         unavailable_action="tempfail")
    verdict, msg = run_stage(config, HAM)
    assert verdict is not None and (verdict.action, verdict.code) == ("tempfail", "451")
    assert not msg.edits


@pytest.fixture
def silent_scanner() -> Iterator[int]:
    """Accepts connections (the kernel does) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


@pytest.fixture
def trickling_scanner() -> Iterator[int]:
    """Answers one byte every 0.1 s, forever: only an overall deadline stops it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                while not stop.wait(0.1):
                    try:
                        conn.sendall(b"S")
                    except OSError:
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    listener.close()


@pytest.mark.parametrize("scanner", ["silent_scanner", "trickling_scanner"])
@pytest.mark.parametrize("backend, key, address", [
    ("spamd", "spamd_address", "127.0.0.1:{port}"),
    ("rspamd", "rspamd_url", "http://127.0.0.1:{port}"),
])
def test_slow_scanner_is_cut_off_at_the_timeout(spam_config: Callable[..., Config],
                                                request: pytest.FixtureRequest, scanner: str,
                                                backend: str, key: str, address: str) -> None:
    port = request.getfixturevalue(scanner)
    config = spam_config(backend=backend, timeout=0.5, **{key: address.format(port=port)})
    start = time.monotonic()
    verdict, msg = run_stage(config, HAM)
    assert time.monotonic() - start < 1.5
    assert verdict is None
    assert "no answer within 0.5 s" in inserted(msg)["X-Spam-Status"]


def test_stage_runs_after_authentication_in_the_incoming_pipeline(
        spam_config: Callable[..., Config]) -> None:
    config = spam_config()
    names = [name for name, _ in verify.incoming_stages(config.verify)]
    assert names.index("spam") > names.index("dmarc")
    assert names.index("spam") > names.index("authentication-results")
    txn = Transaction(Session(client_ip="192.0.2.1", helo="client.example.org"),
                      Message.from_bytes(HAM, "alice@example.org", ["bob@example.net"]))
    pipeline.run(verify.incoming_stages(config.verify), txn, services.build(config))
    assert "X-Spam-Status" in inserted(txn.message)
    assert "Authentication-Results" in inserted(txn.message)


def test_scanner_sees_at_most_max_size_bytes() -> None:
    msg = Message.from_bytes(b"Subject: big\r\n\r\n" + b"x" * 10000)
    assert len(stage.scanned_bytes(msg, 1000)) == 1000
    assert stage.scanned_bytes(msg, 100000).endswith(b"x" * 10000)
