"""What one message carries through the pipeline: envelope, headers as received, and a spooled body."""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass, field
from email.utils import getaddresses
from functools import lru_cache
from typing import IO, Any, Iterator

READ_CHUNK = 65536


@dataclass
class HeaderEdit:
    """A change the milter applies at end of message; `index` counts headers of that name from 1."""

    action: str  # "insert" (at the top) | "delete"
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
    # Set when a stage replaced the whole message (decrypted or encrypted it): the headers the
    # MTA still has, which the milter must delete before adding `headers` and the new body.
    mta_headers: list[tuple[str, bytes]] | None = None
    kept: list[tuple[str, bytes]] = field(default_factory=list)
    removed_recipients: list[str] = field(default_factory=list)
    # Destination domain -> what key discovery found, filled at RCPT (sealgate.policy.outbound).
    domain_keys: dict[str, Any] = field(default_factory=dict)
    # Local recipient -> mailbox keys (or the keystore's refusal), asked together with an incoming
    # envelope's content key (sealgate.transport.inbound) for the sealing stage.
    mailbox_keys: dict[str, Any] = field(default_factory=dict)
    # The inbound TLS requirement was applied at MAIL FROM (sealgate.tlspolicy.requirement).
    tls_checked: bool = False

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
        return list(_domains_of(tuple(self.header_values("From"))))

    def iter_body(self) -> Iterator[bytes]:
        self.body.seek(0)
        while chunk := self.body.read(READ_CHUNK):
            yield chunk

    def wire_headers(self) -> list[tuple[bytes, bytes]]:
        """(name, value) in wire form: folds and the line end as CRLF, as DKIM reads them."""
        return [(n.encode("ascii", "replace"), v.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
                 + b"\r\n") for n, v in self.headers]

    def header_block(self) -> bytes:
        """Headers in wire form (CRLF), ending with the empty line."""
        return b"".join(n + b":" + v for n, v in self.wire_headers()) + b"\r\n"

    def as_bytes(self) -> bytes:
        """Header block and body in wire form, as DKIM canonicalization expects."""
        return self.header_block() + b"".join(self.iter_body())

    def wire_reader(self) -> IO[bytes]:
        """The whole message as a file, without copying the body: what an envelope encrypts."""
        self.body.seek(0)
        return io.BufferedReader(_Chain([io.BytesIO(self.header_block()), self.body]))

    def replace(self, headers: list[tuple[str, bytes]], body: IO[bytes],
                trace: list[tuple[str, bytes]] | None = None) -> None:
        """Become another message; the MTA's copy is replaced at end of message, except the
        `trace` headers (already there), which stay on top."""
        if self.mta_headers is None:
            self.mta_headers = list(self.headers)
        self.edits = [e for e in self.edits if e.action != "delete"]  # all old headers go anyway
        self.kept = list(trace or [])
        self.headers = self.kept + headers
        self.body.close()
        self.body = body

    def content_type(self) -> str:
        values = self.header_values("Content-Type")
        return " ".join(values[0].decode("utf-8", "replace").split()) if values else ""

    def close(self) -> None:
        self.body.close()


def parse_message(source: IO[bytes], threshold: int) -> Message:
    """Split a spooled wire-form message into headers and a new spooled body (for decryption)."""
    source.seek(0)
    head = b""
    while b"\r\n\r\n" not in head:
        block = source.read(READ_CHUNK)
        if not block:
            break
        head += block
    header_text, _, rest = head.partition(b"\r\n\r\n")
    msg = Message.from_bytes(header_text + b"\r\n\r\n", threshold=threshold)
    msg.body.close()
    msg.body = tempfile.SpooledTemporaryFile(threshold)
    msg.body.write(rest)
    while block := source.read(READ_CHUNK):
        msg.body.write(block)
    return msg


class _Chain(io.RawIOBase):
    """Read several files one after another."""

    def __init__(self, parts: list[IO[bytes]]) -> None:
        self.parts = parts

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: "bytearray | memoryview") -> int:  # type: ignore[override]
        while self.parts:
            data = self.parts[0].read(len(buffer))
            if data:
                buffer[:len(data)] = data
                return len(data)
            self.parts.pop(0)
        return 0


@lru_cache(maxsize=1024)
def _domains_of(values: tuple[bytes, ...]) -> tuple[str, ...]:
    """Address parsing is slow and a sender's From header repeats from message to message."""
    domains = []
    for _, addr in getaddresses([v.decode("utf-8", "replace") for v in values]):
        if addr:
            domains.append(addr.rpartition("@")[2].lower().rstrip(".") if "@" in addr else "")
    return tuple(domains)
