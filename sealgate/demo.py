"""`make demo`: two sealgate domains on loopback, a.test and b.test, each a private Postfix with its
own keystore and milter, keys initialised and DNS from a generated zone file. A message from a to b
is shown as it crossed between the gateways (ciphertext), as b stored it (decrypted, verified,
scored, then sealed for bob's mailbox), and unsealed with bob's key. Needs root; stops everything
it started; exits non-zero if any step failed."""

from __future__ import annotations

import smtplib
import sys
import tempfile
import time
from pathlib import Path

from sealgate.mailboxkey import keyfile
from sealgate.mailboxkey.unseal import unseal
from sealgate.keystore.wrapping import unwrap
from sealgate.testbed.network import TwoGateways

ORIGINAL = (b"From: Alice <alice@a.test>\r\nTo: Bob <bob@b.test>\r\n"
            b"Subject: Merger plans for Q3\r\nMessage-ID: <demo-1@a.test>\r\n"
            b"Date: Sun, 22 Nov 2026 12:00:00 +0000\r\nX-Mailer: DemoMail 1.0\r\n\r\n"
            b"Bob, the numbers are in the attached spreadsheet. Keep this between us.\r\n")
SECRET = b"Keep this between us"


def show(title: str, data: bytes, lines: int = 24) -> None:
    print(f"\n===== {title} =====")
    text = data.decode("utf-8", "replace").replace("\r\n", "\n").split("\n")
    print("\n".join(text[:lines]) + (f"\n   [... {len(text) - lines} more lines]"
                                    if len(text) > lines else ""))


def wait(what: str, probe, timeout: float = 60):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def run(workdir: Path) -> list[str]:
    """The demo's steps; returns what went wrong (nothing, when all is well)."""
    problems = []
    print("Starting gateways for a.test and b.test (keystores, milters, Postfix) ...")
    with TwoGateways(workdir, mailboxes=("bob@b.test",)) as net:
        print(f"DNS zone both gateways use:\n{net.zone}")
        with smtplib.SMTP("127.0.0.1", net.a.postfix.port, local_hostname="laptop.a.test") as smtp:
            smtp.sendmail("alice@a.test", ["bob@b.test"], ORIGINAL)
        print("alice@a.test sent a message to bob@b.test through gateway a.test.")
        wire = wait("the message to cross", lambda: next(
            (c for c in net.tap.crossings if b"sealgate-" in c.data), None))
        show("1. as it crossed between the gateways", wire.data, 30)
        if SECRET in wire.data or b"Merger plans" in wire.data:
            problems.append("plaintext crossed the wire")
        stored = wait("delivery at b.test", lambda: next(
            (p.read_bytes() for p in net.b.postfix.maildir_messages()), None))
        show("2. as gateway b.test stored it (decrypted, verified, scored, sealed)", stored, 30)
        if SECRET in stored:
            problems.append("the mail store holds plaintext")
        key = keyfile.read(net.mailbox_keys["bob@b.test"])
        opened = unseal(stored, {key.key_id}, lambda _id, eph, wrapped, ctx: unwrap(
            key.private, eph, wrapped, ctx))
        show("3. unsealed on bob's machine with his mailbox key", opened, 60)
        if not opened.replace(b"\r\n", b"\n").endswith(ORIGINAL.replace(b"\r\n", b"\n")):
            problems.append("the unsealed message is not the original")
        if b"sealgate=pass" not in opened or b"dmarc=pass" not in opened:
            problems.append("Authentication-Results lacks sealgate=pass or dmarc=pass")
        print("\nStopping everything ...")
    return problems


def main() -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sealgate-demo-") as tmp:
        try:
            problems = run(Path(tmp))
        except Exception as exc:  # noqa: BLE001 - the demo reports any failure in one line
            problems = [f"{type(exc).__name__}: {exc}"]
    elapsed = time.monotonic() - started
    if problems:
        print(f"\nDemo FAILED after {elapsed:.0f} s: " + "; ".join(problems))
        return 1
    print(f"\nDemo finished in {elapsed:.0f} s: ciphertext between the gateways and in the "
          "mail store, the original back on the client.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
