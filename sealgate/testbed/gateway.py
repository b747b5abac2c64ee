"""A whole gateway on loopback: `sealgate milter` in front of a private Postfix that delivers
to a Maildir, DNS from a zone file. Shared by the integration tests and `make demo`."""

from __future__ import annotations

import smtplib
import time
from email.parser import BytesHeaderParser
from email.message import Message as EmailMessage
from pathlib import Path
from typing import Any

from sealgate.testbed.milter import MilterProcess, write_config
from sealgate.testbed.postfix import PrivatePostfix, TestbedError, make_traversable


class Gateway:
    def __init__(self, workdir: Path, domain: str, zone: str, authserv_id: str,
                 settings: dict[str, dict[str, Any]] | None = None,
                 **postfix_options: Any) -> None:
        """`settings` are config sections merged over the gateway's own; `postfix_options` go to
        PrivatePostfix (extra_main, extra_master, delivery, relay_port ...)."""
        self.workdir = workdir
        self.domain = domain
        workdir.mkdir(parents=True, exist_ok=True)
        make_traversable(workdir)
        zone_path = workdir / "zone"
        zone_path.write_text(zone)
        sock_dir = workdir / "run"
        sock_dir.mkdir(exist_ok=True)
        sections: dict[str, dict[str, Any]] = {
            # 0666: the test's smtpd runs as user postfix, outside any sealgate group.
            "milter": {"socket": f"unix:{sock_dir}/milter.sock", "socket_mode": "0666",
                       "internal_hosts": [], "use_keystore": False},
            "dns": {"backend": "zone", "zone_files": [str(zone_path)]},
            "verify": {"authserv_id": authserv_id}}
        for section, values in (settings or {}).items():
            sections.setdefault(section, {}).update(values)
        self.socket_dir = sock_dir
        self.sections = sections
        self.config_path = write_config(workdir / "sealgate.conf", sections)
        self.milter = MilterProcess(self.config_path, sock_dir / "milter.sock",
                                    workdir / "milter.log")
        self.postfix = PrivatePostfix(workdir / "postfix", domain=domain,
                                      milter=self.milter.address, **postfix_options)

    def start(self) -> "Gateway":
        self.milter.start()
        try:
            self.postfix.start()
        except BaseException:
            self.milter.stop()
            raise
        return self

    def stop(self) -> None:
        self.postfix.stop()
        self.milter.stop()

    def __enter__(self) -> "Gateway":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reconfigure(self, section: str, **values: Any) -> None:
        """Change the milter's config file and SIGHUP it; returns once it has reloaded."""
        self.sections.setdefault(section, {}).update(values)
        write_config(self.config_path, self.sections)
        self.milter.reload()

    def send(self, message: bytes, mail_from: str, helo: str,
             recipients: list[str] | None = None) -> None:
        """One SMTP transaction; smtplib raises on a refusal, carrying the code and text."""
        with smtplib.SMTP(self.postfix.host, self.postfix.port, local_hostname=helo,
                          timeout=60) as smtp:
            smtp.sendmail(mail_from, recipients or [f"postmaster@{self.domain}"], message)

    def delivered(self, subject: str, timeout: float = 20) -> tuple[EmailMessage, bytes]:
        """The delivered message with this Subject: parsed headers and raw bytes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for path in self.postfix.maildir_messages():
                raw = path.read_bytes()
                headers = BytesHeaderParser().parsebytes(raw)
                if headers["Subject"] == subject:
                    return headers, raw
            time.sleep(0.05)
        raise TestbedError(f"no message with Subject {subject!r} delivered in {timeout:.0f} s\n"
                           f"{self.postfix.log_tail()}\n{self.milter.log_text()[-2000:]}")

    def authentication_results(self, subject: str) -> list[str]:
        """Authentication-Results values of a delivered message, unfolded."""
        headers, _ = self.delivered(subject)
        return [" ".join(v.split()) for v in headers.get_all("Authentication-Results", [])]
