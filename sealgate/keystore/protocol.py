"""The socket protocol: each message is a 4-byte big-endian length, then that many bytes of UTF-8 JSON.

Requests are {"op": NAME, ...arguments}; answers are {"ok": true, "result": ...}
or {"ok": false, "error": CODE, "message": TEXT}. Bytes travel as base64.
docs/keystore.md lists the operations.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

HEADER = struct.Struct(">I")
MAX_BATCH = 32  # requests in one `batch`


class FrameTooLarge(Exception):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"message of {size} bytes exceeds the limit of {limit} bytes")
        self.size = size


class ConnectionClosed(Exception):
    """The peer closed the connection (cleanly between messages, or in the middle of one)."""


class FrameBuffer:
    """Splits received bytes into messages, refusing one over the limit before it arrives."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data

    @property
    def partial(self) -> bool:
        return bool(self._buffer)

    def next(self) -> bytes | None:
        """The next complete message's payload, or None until more bytes arrive."""
        if len(self._buffer) < HEADER.size:
            return None
        (size,) = HEADER.unpack_from(self._buffer)
        if size > self._limit:
            raise FrameTooLarge(size, self._limit)
        end = HEADER.size + size
        if len(self._buffer) < end:
            return None
        payload = bytes(self._buffer[HEADER.size:end])
        del self._buffer[:end]
        return payload


def read_frame(sock: socket.socket, limit: int) -> bytes:
    """One message from a blocking socket; usually a single recv() (system calls are dear)
    that holds exactly that message, taken as it is."""
    frames = FrameBuffer(limit)
    while True:
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise ConnectionClosed("connection closed" + (" mid-message" if frames.partial else ""))
        if not frames.partial and len(chunk) >= HEADER.size \
                and HEADER.unpack_from(chunk)[0] == len(chunk) - HEADER.size <= limit:
            return chunk[HEADER.size:]
        frames.feed(chunk)
        payload = frames.next()
        if payload is not None:
            return payload


_encode = json.JSONEncoder(separators=(",", ":")).encode  # json.dumps would build one per call


def write_frame(sock: socket.socket, message: Any) -> None:
    payload = _encode(message).encode()
    sock.sendall(HEADER.pack(len(payload)) + payload)
