"""What an incoming envelope costs the keystore: the content key and the mailbox keys that sealing
needs travel in one request. The stages run in this process against two real keystores (a.test
seals, b.test opens and seals for the mailbox), no MTA needed."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sealgate import services as services_module
from sealgate import verify
from sealgate.atrest import seal
from sealgate.config import load
from sealgate.keystore.client import KeystoreClient
from sealgate.message import Message
from sealgate.pipeline import Services, Session, Transaction
from sealgate.testbed.keystore import KeystoreProcess
from sealgate.testbed.milter import write_config
from sealgate.testbed.zones import txt
from sealgate.transport import inbound, outbound

ORIGINAL = (b"From: Alice <alice@a.test>\r\nTo: Erin <erin@b.test>\r\nSubject: hello\r\n"
            b"Date: Sun, 22 Nov 2026 10:00:00 +0000\r\nMessage-ID: <batch@a.test>\r\n\r\n"
            b"confidential body\r\n")


@pytest.fixture(scope="module")
def gateways(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Services, Services, Path]]:
    """Services of gateway a and gateway b, and the mailbox key file of erin@b.test."""
    work = tmp_path_factory.mktemp("inbound-requests")
    zone = work / "z.zone"
    zone.write_text("")
    ka = KeystoreProcess(work / "ks-a", zone_files=[zone])
    kb = KeystoreProcess(work / "ks-b", zone_files=[zone])
    published = []
    for keystore, domain in ((ka, "a.test"), (kb, "b.test")):
        keystore.run("keys", "init", domain)
        published.append(keystore.run("keys", "dns", domain).stdout)
    made = subprocess.run([sys.executable, "-m", "sealgate", "mailbox-key", "generate",
                           "erin@b.test", "--output", str(work / "erin.key"), "--no-recovery"],
                          capture_output=True, check=True)
    kb.run("keys", "register-mailbox", input=made.stdout.decode())
    zone.write_text(txt("a.test", "v=spf1 ip4:127.0.0.2 -all") + "".join(published))

    def gateway(name: str, keystore: KeystoreProcess, internal: list[str]) -> Services:
        return services_module.build(load(write_config(work / f"{name}.conf", {
            "milter": {"use_keystore": True, "internal_hosts": internal},
            "keystore": {"socket": str(keystore.socket_path)},
            "dns": {"backend": "zone", "zone_files": [str(zone)]},
            "verify": {"authserv_id": f"mx.{name}"}})))

    with ka, kb:
        yield gateway("a.test", ka, ["127.0.0.1/32"]), gateway("b.test", kb, []), work / "erin.key"


def sealed_at_a(a: Services) -> bytes:
    sent = Message.from_bytes(ORIGINAL, "alice@a.test", ["erin@b.test"])
    assert outbound.stage(Transaction(Session(client_ip="127.0.0.1", outgoing=True), sent), a) is None
    envelope = sent.wire_reader().read()
    assert b"confidential body" not in envelope
    return envelope


def received_at_b(envelope: bytes, b: Services) -> Transaction:
    txn = Transaction(Session(client_ip="127.0.0.2", helo="mx.a.test"),
                      Message.from_bytes(envelope, "alice@a.test", ["erin@b.test"]))
    stages = [("inbound", inbound.stage)] + verify.incoming_stages(b.config.verify) + \
        [("seal", seal.stage)]
    for name, stage in stages:
        assert stage(txn, b) is None, name
    return txn


def test_content_key_and_mailbox_keys_come_in_one_request(
        gateways: tuple[Services, Services, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, erin_key = gateways
    received_at_b(sealed_at_a(a), b)  # the first message fills the caches of bundles
    envelope = sealed_at_a(a)
    asked: Counter[str] = Counter()
    call = KeystoreClient.call

    def counted(self: KeystoreClient, op: str, **args: Any) -> Any:
        asked[op] += 1
        asked.update(r["op"] for r in args.get("requests", ()))
        return call(self, op, **args)

    monkeypatch.setattr(KeystoreClient, "call", counted)
    txn = received_at_b(envelope, b)
    assert [r.result for r in txn.results if r.method == "sealgate"] == ["pass"]
    assert "sealed=yes mailbox_keys=1" in txn.notes
    # One batch carried unwrap and mailbox_keys; sealing then only signed.
    assert asked == Counter({"batch": 1, "unwrap": 1, "mailbox_keys": 1, "sign": 1}), asked

    unsealed = subprocess.run([sys.executable, "-m", "sealgate", "unseal", "--key", str(erin_key)],
                              input=txn.message.wire_reader().read(), capture_output=True,
                              check=False)
    assert unsealed.returncode == 0, unsealed.stderr
    assert unsealed.stdout.replace(b"\r\n", b"\n").endswith(ORIGINAL.replace(b"\r\n", b"\n"))
