"""Sealing at rest through a real Postfix delivering to a Maildir: the stored file holds no
original text; `sealgate unseal` gives back the byte-exact original with the verdict headers, with
the device key, with the recovery phrase, and through the keystore for group and corporate keys."""

from __future__ import annotations

import json
import smtplib
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from conftest import needs_root_and_postfix
from sealgate.testbed.gateway import Gateway
from sealgate.testbed.keystore import KeystoreProcess
from sealgate.testbed.zones import txt

pytestmark = needs_root_and_postfix()


def sealgate(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "sealgate", *args], input=stdin,
                          capture_output=True, timeout=120)


class Site:
    """Gateway for b.test (isp), g.test (groups) and corp.test (corporate), one keystore."""

    def __init__(self, workdir: Path) -> None:
        zone_path = workdir / "site.zone"
        zone_path.write_text("")
        self.keystore = KeystoreProcess(workdir / "ks", zone_files=[zone_path])
        published = []
        for domain, policy in (("b.test", "isp"), ("g.test", "groups"), ("corp.test", "corporate")):
            self.keystore.run("keys", "init", domain)
            self.keystore.run("keys", "policy", domain, policy)
            published.append(self.keystore.run("keys", "dns", domain).stdout)
        self.keystore.run("keys", "group", "create", "g.test", "sales")
        self.keystore.run("keys", "group", "add", "g.test", "sales", "carol@g.test")
        zone = txt("sender.test", "v=spf1 ip4:127.0.0.2 -all") + "".join(published)
        zone_path.write_text(zone)
        # Bob's client: device key file and recovery phrase; the admin registers both.
        self.bob_key = workdir / "bob.key"
        made = sealgate("mailbox-key", "generate", "bob@b.test", "--output", str(self.bob_key))
        assert made.returncode == 0, made.stderr
        self.bob_phrase = made.stderr.decode().split("shown only once):")[1].split()[0]
        requests = workdir / "bob.requests"
        requests.write_bytes(made.stdout)
        registered = self.keystore.run("keys", "register-mailbox", str(requests))
        assert registered.stdout.count("registered") == 2
        self.keystore.start()
        self.gateway = Gateway(workdir / "gw", "b.test", zone, "mx.b.test",
                               {"milter": {"use_keystore": True},
                                "keystore": {"socket": str(self.keystore.socket_path)}},
                               extra_main={"virtual_mailbox_domains": "b.test g.test corp.test"})
        self.gateway.start()

    def stop(self) -> None:
        self.gateway.stop()
        self.keystore.stop()

    def send(self, message: bytes, recipients: list[str]) -> None:
        with smtplib.SMTP("127.0.0.1", self.gateway.postfix.port, local_hostname="mx.sender.test",
                          source_address=("127.0.0.2", 0), timeout=60) as smtp:
            smtp.sendmail("news@sender.test", recipients, message)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    s = Site(tmp_path_factory.mktemp("sealing"))
    yield s
    s.stop()


def message(subject: str, to: str) -> bytes:
    return (f"From: News <news@sender.test>\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@sender.test>\r\n\r\nThe private words of {subject}.\r\n"
            ).encode()


def stored(site: Site, subject: str) -> Path:
    site.gateway.delivered(subject)
    for path in site.gateway.postfix.maildir_messages():
        if f"Subject: {subject}\n".encode() in path.read_bytes():
            return path
    raise AssertionError(subject)


def lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


def verdict_and_original(unsealed: bytes, original: bytes) -> bytes:
    """What precedes the original in unsealed output: the verdict headers."""
    assert lf(unsealed).endswith(lf(original))
    return lf(unsealed)[:-len(lf(original))]


def test_stored_mail_is_sealed_and_the_device_key_opens_it(site: Site) -> None:
    original = message("isp-sealed", "bob@b.test")
    site.send(original, ["bob@b.test"])
    path = stored(site, "isp-sealed")
    raw = path.read_bytes()
    assert b"private words" not in raw and b"multipart/encrypted" in raw
    assert raw.startswith(b"Return-Path:") and b"\nAuthentication-Results: mx.b.test;" in raw
    done = sealgate("unseal", "--key", str(site.bob_key), str(path))
    assert done.returncode == 0, done.stderr
    head = verdict_and_original(done.stdout, original)
    lines = head.decode().splitlines()
    assert ("Authentication-Results: mx.b.test; sealgate=none; x-tls=none; "
            "spf=none smtp.helo=mx.sender.test; spf=pass smtp.mailfrom=sender.test; "
            'dkim=none reason="message not signed"; '
            'dmarc=none reason="no DMARC record" header.from=sender.test') in lines
    assert {line.split(":")[0] for line in lines} == {
        "Authentication-Results", "X-Spam-Flag", "X-Spam-Status", "X-Spam-Score"}


def test_recovery_phrase_opens_it_when_the_device_key_is_lost(site: Site) -> None:
    original = message("recovered", "bob@b.test")
    site.send(original, ["bob@b.test"])
    path = stored(site, "recovered")
    done = sealgate("unseal", "--recovery-phrase", "bob@b.test", str(path),
                    stdin=site.bob_phrase.encode() + b"\n")
    assert done.returncode == 0, done.stderr
    verdict_and_original(done.stdout, original)
    wrong = sealgate("unseal", "--recovery-phrase", "bob@b.test", str(path),
                     stdin=b"AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA\n")
    assert wrong.returncode == 1 and b"sealed for other keys" in wrong.stderr


def test_maildir_in_maildir_out_goes_on_past_what_it_cannot_open(site: Site,
                                                                   tmp_path: Path) -> None:
    out = tmp_path / "unsealed"
    done = sealgate("unseal", "--key", str(site.bob_key),
                    str(site.gateway.postfix.maildir), "--output", str(out))
    opened = len(list((out / "new").iterdir()))
    assert opened >= 2
    assert f"{opened} message(s) unsealed".encode() in done.stderr


def test_group_and_corporate_keys_are_opened_through_the_keystore(site: Site) -> None:
    for subject, rcpt in (("group-mail", "carol@g.test"), ("corporate-mail", "dan@corp.test")):
        original = message(subject, rcpt)
        site.send(original, [rcpt])
        path = stored(site, subject)
        assert b"private words" not in path.read_bytes()
        done = sealgate("unseal", "--keystore", "--config", str(site.keystore.config), str(path))
        assert done.returncode == 0, done.stderr
        verdict_and_original(done.stdout, original)


def test_recipient_without_a_key_is_delivered_unsealed_and_logged(site: Site) -> None:
    original = message("no-key", "eve@b.test")
    site.send(original, ["eve@b.test"])
    assert b"private words of no-key" in stored(site, "no-key").read_bytes()
    assert "sealed=no no_mailbox_key=eve@b.test action=accept" in site.gateway.milter.log_text()


def test_raw_8bit_headers_do_not_stop_sealing(site: Site) -> None:
    original = message("latin1", "bob@b.test").replace(b"Subject: latin1",
                                                       b"Subject: latin1 caf\xe9")
    site.send(original, ["bob@b.test"])
    deadline = time.monotonic() + 20
    while not (found := [p for p in site.gateway.postfix.maildir_messages()
                         if b"<latin1@sender.test>" in p.read_bytes()]):
        assert time.monotonic() < deadline, site.gateway.milter.log_text()[-2000:]
        time.sleep(0.1)
    path = found[0]
    done = sealgate("unseal", "--key", str(site.bob_key), str(path))
    assert done.returncode == 0, done.stderr
    verdict_and_original(done.stdout, original)  # inside, byte for byte
