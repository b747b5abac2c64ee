"""The envelope's MIME shape (RFC 1847 multipart/encrypted): writing it, and finding its parts
in a spooled body without reading the whole thing into memory."""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from email.message import Message as EmailMessage
from typing import IO, Iterator

from sealgate.envelope.header import MAX_CONTROL_BYTES, EnvelopeError

PROTOCOL = "application/sealgate-envelope"
PREAMBLE = (b"This message was encrypted by a sealgate gateway for the receiving gateway,\r\n"
            b"which decrypts it before delivery (see sealgate's docs/envelope.md).\r\n")
LINE_GROUP = 57 * 1024  # bytes base64-encoded at once: whole 76-character lines
READ_BLOCK = 1 << 20


def content_type(boundary: str) -> str:
    return f'multipart/encrypted; protocol="{PROTOCOL}"; boundary="{boundary}"'


def new_boundary() -> str:
    return "sealgate-" + os.urandom(16).hex()


def write_body(out: IO[bytes], boundary: str, control: bytes, ciphertext: IO[bytes]) -> None:
    b = boundary.encode()
    out.write(PREAMBLE + b"\r\n--" + b + b"\r\nContent-Type: " + PROTOCOL.encode() +
              b"\r\n\r\n" + control.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") +
              b"\r\n--" + b + b"\r\nContent-Type: application/octet-stream\r\n"
              b"Content-Transfer-Encoding: base64\r\n\r\n")
    ciphertext.seek(0)
    while block := ciphertext.read(LINE_GROUP):
        out.write(base64_lines(block))
    out.write(b"--" + b + b"--\r\n")


def base64_lines(block: bytes) -> bytes:
    """RFC 2045 base64 in 76-character CRLF lines: one encoder call for the block, then slicing
    (base64.encodebytes calls the encoder once per line, a third slower)."""
    encoded = binascii.b2a_base64(block, newline=False)
    return b"\r\n".join([encoded[i:i + 76] for i in range(0, len(encoded), 76)]) + b"\r\n"


def envelope_boundary(content_type_value: str) -> str | None:
    """The boundary when this Content-Type is a sealgate envelope, else None."""
    msg = EmailMessage()
    msg["Content-Type"] = content_type_value
    protocol = msg.get_param("protocol")
    if msg.get_content_type() != "multipart/encrypted" or \
            not isinstance(protocol, str) or protocol.lower() != PROTOCOL:
        return None
    boundary = msg.get_boundary()
    if not boundary:
        raise EnvelopeError("multipart/encrypted without a boundary")
    return str(boundary)


@dataclass(frozen=True)
class Located:
    control: bytes
    data_start: int
    data_end: int


def locate(body: IO[bytes], boundary: str) -> Located:
    """Offsets of the two parts: the control block (read) and the base64 data (left on disk)."""
    delimiter = b"--" + boundary.encode()
    body.seek(0)
    head = body.read(MAX_CONTROL_BYTES + 4096)
    first = head.find(delimiter)
    second = head.find(b"\r\n" + delimiter, first + 1)
    if first < 0 or second < 0:
        raise EnvelopeError("envelope parts not found (missing boundary or control part too large)")
    control_part = head[first + len(delimiter):second]
    _, sep, control = control_part.partition(b"\r\n\r\n")
    if not sep:
        raise EnvelopeError("control part without a header/body separator")
    data_part_start = second + 2 + len(delimiter)
    header_end = head.find(b"\r\n\r\n", data_part_start)
    if header_end < 0 or b"base64" not in head[data_part_start:header_end].lower():
        raise EnvelopeError("data part is not base64-encoded octets")
    data_start = header_end + 4
    data_end = _find_closing(body, b"\r\n" + delimiter + b"--", data_start)
    return Located(control.strip(), data_start, data_end)


def _find_closing(body: IO[bytes], closing: bytes, start: int) -> int:
    position = start
    body.seek(position)
    carry = b""
    while block := body.read(READ_BLOCK):
        window = carry + block
        found = window.find(closing)
        if found >= 0:
            return position - len(carry) + found
        carry = window[-len(closing):]
        position += len(block)
    raise EnvelopeError("envelope data part has no closing boundary (truncated message)")


def base64_blocks(body: IO[bytes], start: int, end: int) -> Iterator[bytes]:
    """Decoded bytes of body[start:end], a block of whole lines at a time.

    Lines are 76 characters (a multiple of 4), so no base64 group crosses a line; characters
    outside the alphabet (line breaks) are skipped. Any corruption is caught by the
    authenticated decryption that follows, not here."""
    body.seek(start)
    remaining = end - start
    carry = b""
    while remaining > 0:
        block = body.read(min(READ_BLOCK, remaining))
        if not block:
            break
        remaining -= len(block)
        block = carry + block
        cut = block.rfind(b"\n") + 1 if remaining > 0 else len(block)
        carry = block[cut:]
        try:
            yield binascii.a2b_base64(block[:cut])
        except binascii.Error as exc:
            raise EnvelopeError(f"envelope data is not valid base64: {exc}") from None
    if carry.strip():
        raise EnvelopeError("envelope data ends in the middle of a line")
