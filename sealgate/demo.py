"""`make demo`: a private Postfix on loopback with `sealgate milter` in front, sample messages sent
through it, and what came out printed: the Authentication-Results of each delivered message, or
the refusal. Everything runs on embedded defaults and a generated zone file; needs root."""

from __future__ import annotations

import base64
import smtplib
import sys
import tempfile
from pathlib import Path

import dkim
import nacl.signing

from sealgate.testbed.gateway import Gateway

AUTHSERV = "mx.example.net"


def zone(dkim_public: bytes) -> str:
    key = base64.b64encode(dkim_public).decode()
    return (
        'shop.example. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"\n'
        f'ed1._domainkey.shop.example. 300 IN TXT "v=DKIM1; k=ed25519; p={key}"\n'
        '_dmarc.shop.example. 300 IN TXT "v=DMARC1; p=reject"\n'
        'bank.example. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"\n'
        '_dmarc.bank.example. 300 IN TXT "v=DMARC1; p=reject"\n'
        'news.example. 300 IN TXT "v=spf1 ~all"\n')


def message(sender: str, subject: str) -> bytes:
    return (f"From: <{sender}>\r\nTo: <postmaster@example.net>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{abs(hash(subject))}@demo>\r\n\r\nHello from {sender}.\r\n").encode()


def main() -> int:
    signer = nacl.signing.SigningKey.generate()
    seed = base64.b64encode(bytes(signer))
    samples = [
        ("signed and aligned mail from shop.example", "alice@shop.example", "mail.shop.example",
         "Your order", True, "deliver"),
        ("unsigned mail from a host news.example soft-fails", "list@news.example",
         "mail.news.example", "Weekly news", False, "deliver"),
        ("a forgery of bank.example, whose DMARC policy is reject", "security@bank.example",
         "mail.bank.example", "Verify your account", False, "refuse"),
    ]
    failures = 0
    with tempfile.TemporaryDirectory(prefix="sealgate-demo-") as tmp:
        print(f"Starting a private Postfix for example.net with sealgate in front ({tmp}) ...")
        with Gateway(Path(tmp) / "gateway", "example.net", zone(bytes(signer.verify_key)),
                     AUTHSERV) as gateway:
            for title, sender, helo, subject, sign, expected in samples:
                print(f"\n== {title}")
                raw = message(sender, subject)
                if sign:
                    raw = dkim.sign(raw, b"ed1", b"shop.example", seed,
                                    signature_algorithm=b"ed25519-sha256") + raw
                try:
                    gateway.send(raw, sender, helo)
                except smtplib.SMTPResponseException as exc:
                    print(f"   refused: {exc.smtp_code} {exc.smtp_error.decode(errors='replace')}")
                    failures += expected != "refuse"
                    continue
                for header in gateway.authentication_results(subject):
                    print(f"   delivered with Authentication-Results: {header}")
                failures += expected != "deliver"
    print("\nDemo finished." if not failures else f"\nDemo FAILED: {failures} unexpected outcome(s).")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
