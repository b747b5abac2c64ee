"""Netstrings (`<length>:<bytes>,`), the framing of the socketmap protocol."""

from __future__ import annotations

from io import BufferedIOBase

MAX_LENGTH_DIGITS = 9


class NetstringError(ValueError):
    """The peer broke the framing; the stream cannot be resynchronised and must be closed."""


def encode(data: bytes) -> bytes:
    return b"%d:%s," % (len(data), data)


def read(stream: BufferedIOBase, max_length: int) -> bytes | None:
    """The next netstring's payload; None when the peer closed the stream between netstrings."""
    digits = b""
    while True:
        char = stream.read(1)
        if not char:
            if digits:
                raise NetstringError("connection closed inside a netstring length")
            return None
        if char == b":":
            break
        if not char.isdigit() or len(digits) >= MAX_LENGTH_DIGITS:
            seen = (digits + char).decode("latin-1")
            raise NetstringError(f"malformed netstring length {seen!r}")
        digits += char
    if not digits or (digits.startswith(b"0") and digits != b"0"):
        raise NetstringError(f"malformed netstring length {digits.decode()!r}")
    length = int(digits)
    if length > max_length:
        raise NetstringError(f"netstring of {length} bytes, more than the {max_length} allowed")
    data = stream.read(length)
    if len(data) < length:
        raise NetstringError("connection closed inside a netstring")
    if stream.read(1) != b",":
        raise NetstringError("netstring not terminated by ','")
    return data
