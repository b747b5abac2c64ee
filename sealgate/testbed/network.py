"""Two sealgate domains on loopback: gateway A (a.test) relays through a wire tap to gateway B,
each with its own keystore and milter, DNS from one generated zone file. The tap forwards from
127.0.0.2, the address a.test's SPF names. Shared by the transport tests and `make demo`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from sealgate.testbed.gateway import Gateway
from sealgate.testbed.keystore import KeystoreProcess
from sealgate.testbed.ports import free_port
from sealgate.testbed.tap import WireTap
from sealgate.testbed.zones import txt

SIZE_LIMIT = "60000000"


def merged(base: dict[str, dict[str, Any]], extra: dict[str, dict[str, Any]] | None
           ) -> dict[str, dict[str, Any]]:
    result = {section: dict(values) for section, values in base.items()}
    for section, values in (extra or {}).items():
        result.setdefault(section, {}).update(values)
    return result


class TwoGateways:
    def __init__(self, workdir: Path, *, b_domains: tuple[str, ...] = ("b.test",),
                 mailboxes: tuple[str, ...] = (), a_keystore: dict[str, Any] | None = None,
                 a_settings: dict[str, dict[str, Any]] | None = None) -> None:
        """`mailboxes`: addresses at B whose client makes a mailbox key (file workdir/ADDRESS.key)
        that B's keystore registers, so B seals their mail at rest."""
        self.workdir = workdir
        zone_path = workdir / "shared.zone"
        zone_path.write_text("")
        self.ks_a = KeystoreProcess(workdir / "ks-a", zone_files=[zone_path], **(a_keystore or {}))
        self.ks_b = KeystoreProcess(workdir / "ks-b", zone_files=[zone_path])
        published = [self._init(self.ks_a, "a.test")] + [self._init(self.ks_b, d) for d in b_domains]
        self.mailbox_keys = {address: self._mailbox(address) for address in mailboxes}
        self.zone = "".join([txt("a.test", "v=spf1 ip4:127.0.0.2 -all"),
                             txt("_dmarc.a.test", "v=DMARC1; p=reject"), *published])
        zone_path.write_text(self.zone)
        self.ks_a.start()
        self.ks_b.start()
        self.b = Gateway(workdir / "gw-b", b_domains[0], self.zone, f"mx.{b_domains[0]}",
                         {"milter": {"use_keystore": True},
                          "keystore": {"socket": str(self.ks_b.socket_path)}},
                         extra_main={"virtual_mailbox_domains": " ".join(b_domains + ("plain.test",)),
                                     "message_size_limit": SIZE_LIMIT,
                                     "virtual_mailbox_limit": SIZE_LIMIT}).start()
        self.tap = WireTap(self.b.postfix.port, source_address="127.0.0.2").start()
        self.reinject_port = free_port()
        # Postfix never shows a milter the Received header its smtpd adds for a submission, so
        # it cannot travel inside: docs/transport.md drops it with this line in main.cf.
        strip = workdir / "strip-received"
        strip.write_text("/^Received:/ IGNORE\n")
        self.a = Gateway(workdir / "gw-a", "a.test", self.zone, "mx.a.test", merged(
            {"milter": {"use_keystore": True, "internal_hosts": ["127.0.0.1/32"]},
             "keystore": {"socket": str(self.ks_a.socket_path)},
             "outbound": {"reinject": f"127.0.0.1:{self.reinject_port}"}}, a_settings),
            delivery="relay", relay_port=self.tap.port,
            extra_main={"message_size_limit": SIZE_LIMIT, "smtp_header_checks": f"regexp:{strip}"},
            extra_master=[f"127.0.0.1:{self.reinject_port} inet n - n - - smtpd "
                          "-o smtpd_milters= -o non_smtpd_milters="]).start()

    @staticmethod
    def _init(keystore: KeystoreProcess, domain: str) -> str:
        """Create the domain's keys; returns the zone lines `sealgate keys dns` prints."""
        keystore.run("keys", "init", domain)
        return keystore.run("keys", "dns", domain).stdout

    def _mailbox(self, address: str) -> Path:
        key = self.workdir / f"{address}.key"
        made = subprocess.run([sys.executable, "-m", "sealgate", "mailbox-key", "generate", address,
                               "--output", str(key), "--no-recovery"], capture_output=True,
                              check=True)
        self.ks_b.run("keys", "register-mailbox", input=made.stdout.decode())
        return key

    def stop(self) -> None:
        for part in (self.a, self.tap, self.b, self.ks_a, self.ks_b):
            part.stop()

    def __enter__(self) -> "TwoGateways":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
