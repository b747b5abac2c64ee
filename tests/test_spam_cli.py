"""`sealgate spam score` and `sealgate spam train`, run as the admin would run them."""

from __future__ import annotations

import json
import mailbox
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import CORPORA

from sealgate.testbed.milter import write_config

SAMPLES = CORPORA / "spam" / "spamassassin-deb-samples"
SMALL = CORPORA / "spam" / "spamassassin-small" / "small"


def sealgate(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "sealgate", *args], input=stdin,
                          capture_output=True, timeout=120, check=False)


def config(tmp_path: Path, **spam: object) -> Path:
    spam.setdefault("bayes_database", str(tmp_path / "model" / "bayes.db"))
    spam.setdefault("bayes_min_messages", 10)
    return write_config(tmp_path / "sealgate.conf", {"spam": spam, "verify": {"authserv_id": "mx.test"}})


def test_score_json_for_gtube(tmp_path: Path) -> None:
    done = sealgate("spam", "score", "--json", "--config", str(config(tmp_path)),
                    stdin=(SAMPLES / "sample-spam.txt").read_bytes())
    assert done.returncode == 1, done.stderr  # spam
    report = json.loads(done.stdout)
    assert report["verdict"] == "spam" and report["score"] >= 1000
    assert report["action"] == "reject"
    assert "GTUBE" in [rule["name"] for rule in report["rules"]]
    assert report["headers"]["X-Spam-Flag"] == "YES"


def test_score_explain_for_ham(tmp_path: Path) -> None:
    done = sealgate("spam", "score", "--explain", "--config", str(config(tmp_path)),
                    stdin=(SAMPLES / "sample-nonspam.txt").read_bytes())
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().startswith("0.0 ham (required 5.0, scanner builtin")


def test_score_reads_our_own_authentication_results(tmp_path: Path) -> None:
    raw = (b"Authentication-Results: mx.test; spf=fail smtp.mailfrom=example.org; "
           b"dmarc=fail header.from=example.org policy.dmarc=reject\r\n"
           b"Authentication-Results: other.test; dmarc=pass header.from=example.org\r\n"
           b"From: a@example.org\r\nTo: b@example.net\r\nSubject: s\r\n"
           b"Date: Mon, 2 Jun 2025 10:00:00 +0000\r\nMessage-ID: <m@example.org>\r\n\r\nhi\r\n")
    done = sealgate("spam", "score", "--json", "--config", str(config(tmp_path)), stdin=raw)
    names = [rule["name"] for rule in json.loads(done.stdout)["rules"]]
    assert "SPF_FAIL" in names and "DMARC_FAIL" in names and "DMARC_PASS" not in names


def test_scanner_down_exits_75_with_a_reason(tmp_path: Path) -> None:
    done = sealgate("spam", "score", "--json", "--config",
                    str(config(tmp_path, backend="spamd", spamd_address="127.0.0.1:9")),
                    stdin=(SAMPLES / "sample-spam.txt").read_bytes())
    assert done.returncode == 75
    report = json.loads(done.stdout)
    assert report["verdict"] == "unscanned" and report["score"] is None
    assert "cannot connect to 127.0.0.1:9" in report["problem"]


def test_train_from_maildir_mbox_and_folder_then_score_uses_the_model(tmp_path: Path) -> None:
    hams = sorted((SMALL / "easy-ham-1").iterdir())[:12]
    spams = sorted((SMALL / "spam-2").iterdir())[:12]
    maildir = mailbox.Maildir(str(tmp_path / "ham-maildir"), create=True)
    for path in hams[:6]:
        maildir.add(path.read_bytes())
    mbox = mailbox.mbox(str(tmp_path / "ham.mbox"), create=True)
    for path in hams[6:]:
        mbox.add(path.read_bytes())
    mbox.flush()
    folder = tmp_path / "spam-folder" / "nested"
    folder.mkdir(parents=True)
    for path in spams:
        shutil.copy(path, folder)
    conf = str(config(tmp_path))
    done = sealgate("spam", "train", "--config", conf, "--ham", str(tmp_path / "ham-maildir"),
                    "--ham", str(tmp_path / "ham.mbox"), "--spam", str(tmp_path / "spam-folder"))
    assert done.returncode == 0, done.stderr
    assert b"learned 12 ham and 12 spam messages" in done.stdout
    again = sealgate("spam", "train", "--config", conf, "--spam", str(tmp_path / "spam-folder"))
    assert b"learned 0 ham and 0 spam messages (12 already known" in again.stdout
    scored = sealgate("spam", "score", "--json", "--config", conf, stdin=spams[0].read_bytes())
    assert json.loads(scored.stdout)["bayes_probability"] > 0.9


def test_train_refuses_a_missing_source(tmp_path: Path) -> None:
    done = sealgate("spam", "train", "--config", str(config(tmp_path)),
                    "--ham", str(tmp_path / "nope"))
    assert done.returncode == 2
    assert b"nope: no such file or directory" in done.stderr
