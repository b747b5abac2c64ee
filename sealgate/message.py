"""What one message carries through the pipeline: envelope, headers as received, and a spooled body."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from email.utils import getaddresses
from typing import IO, Iterator

READ_CHUNK = 65536


@dataclass
class HeaderEdit:
    """A change the milter applies at end of message; `index` counts headers of that name from 1."""

    action: str  # "add" | "insert" | "delete"
    name: str
    value: str = ""
    index: int = 0


@dataclass
class Message:
    mail_from: str = ""
    recipients: list[str] = field(default_factory=list)
    # Values exactly as received, leading space and folding included (DKIM simple canonicalization).
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    body: IO[bytes] = field(default_factory=lambda: tempfile.SpooledTemporaryFile(1 << 20))
    queue_id: str = "NOQUEUE"
    edits: list[HeaderEdit] = field(default_factory=list)

    @classmethod
    def spooling(cls, threshold: int, spool_dir: str | None = None) -> "Message":
        """A message whose body moves to a file in `spool_dir` once past `threshold` bytes."""
        return cls(body=tempfile.SpooledTemporaryFile(threshold, dir=spool_dir or None))

    @classmethod
    def from_bytes(cls, raw: bytes, mail_from: str = "", recipients: list[str] | None = None,
                   threshold: int = 1 << 20) -> "Message":
        """Split a whole RFC 5322 message as the MTA would hand it to a milter (for the CLI and tests)."""
        msg = cls.spooling(threshold)
        msg.mail_from = mail_from
        msg.recipients = list(recipients or [])
        raw = raw.replace(b"\r\n", b"\n")
        head, sep, body = raw.partition(b"\n\n")
        if not sep and not head.split(b"\n", 1)[0].partition(b":")[1]:
            head, body = b"", raw  # no header section at all
        for line in head.split(b"\n"):
            if line[:1] in (b" ", b"\t") and msg.headers:
                name, value = msg.headers[-1]
                msg.headers[-1] = (name, value + b"\r\n" + line)
            elif b":" in line:
                raw_name, _, value = line.partition(b":")
                msg.headers.append((raw_name.decode("ascii", "replace"), value))
        msg.body.write(body.replace(b"\n", b"\r\n"))
        return msg

    def header_values(self, name: str) -> list[bytes]:
        lname = name.lower()
        return [v for n, v in self.headers if n.lower() == lname]

    def from_domains(self) -> list[str]:
        """Domains of every address in every From header; DMARC needs exactly one."""
        values = [v.decode("utf-8", "replace") for v in self.header_values("From")]
        domains = []
        for _, addr in getaddresses(values):
            if addr:
                domains.append(addr.rpartition("@")[2].lower().rstrip(".") if "@" in addr else "")
        return domains

    def iter_body(self) -> Iterator[bytes]:
        self.body.seek(0)
        while chunk := self.body.read(READ_CHUNK):
            yield chunk

    def as_bytes(self) -> bytes:
        """Header block and body in wire form (CRLF), as DKIM canonicalization expects."""
        head = b"".join(n.encode("ascii", "replace") + b":" + v.replace(b"\r\n", b"\n")
                        .replace(b"\n", b"\r\n") + b"\r\n" for n, v in self.headers)
        return head + b"\r\n" + b"".join(self.iter_body())

    def close(self) -> None:
        self.body.close()
