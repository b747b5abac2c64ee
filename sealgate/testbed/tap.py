"""A wire tap between two gateways: an SMTP relay on loopback that keeps a copy of every message
it passes on, so tests and the demo can show what crossed the network."""

from __future__ import annotations

import smtplib
import threading
from dataclasses import dataclass
from typing import Any

from sealgate.testbed.ports import LOOPBACK, free_port


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


@dataclass(frozen=True)
class Crossing:
    mail_from: str
    recipients: list[str]
    data: bytes  # exactly as the sending gateway sent it
    reply: str   # what the next hop answered


class WireTap:
    """Listens on 127.0.0.1:`port`, forwards to `next_port` from `source_address` (the address the
    next hop sees as the sending gateway's), and answers the sender what the next hop answered."""

    def __init__(self, next_port: int, source_address: str = LOOPBACK,
                 port: int | None = None) -> None:
        from aiosmtpd.controller import Controller  # test dependency, imported when used

        self.port = port or free_port()
        self.next_port = next_port
        self.source_address = source_address
        self.crossings: list[Crossing] = []
        self._lock = threading.Lock()
        self._controller = Controller(self, hostname=LOOPBACK, port=self.port,
                                      data_size_limit=0, decode_data=False)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = envelope.original_content
        try:
            with smtplib.SMTP(LOOPBACK, self.next_port, timeout=120,
                              source_address=(self.source_address, 0)) as smtp:
                smtp.sendmail(envelope.mail_from, envelope.rcpt_tos, data)
            reply = "250 2.0.0 relayed"
        except smtplib.SMTPResponseException as exc:
            reply = f"{exc.smtp_code} {_text(exc.smtp_error)}"
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            reply = f"{code} {_text(text)}"
        except OSError as exc:
            reply = f"451 4.4.1 next hop unreachable: {exc}"
        with self._lock:
            self.crossings.append(Crossing(envelope.mail_from, list(envelope.rcpt_tos), data, reply))
        return reply

    def start(self) -> "WireTap":
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> "WireTap":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
