"""Socket I/O under one overall deadline, so a scanner that trickles bytes cannot hold a message.

A per-call socket timeout alone bounds each recv, not the scan: a daemon that
sends one byte every few seconds would keep the milter thread forever. Here
every send and recv gets only what is left of the scan's time budget.
"""

from __future__ import annotations

import socket
import time

from sealgate.spam.result import ScannerUnavailable


class Deadline:
    def __init__(self, seconds: float, what: str) -> None:
        self.end = time.monotonic() + seconds
        self.seconds = seconds
        self.what = what

    def left(self) -> float:
        remaining = self.end - time.monotonic()
        if remaining <= 0:
            raise ScannerUnavailable(f"{self.what}: no answer within {self.seconds:g} s")
        return remaining


def connect(address: str, deadline: Deadline) -> socket.socket:
    """A connected socket to host:port or unix:/path, or ScannerUnavailable naming why not."""
    try:
        if address.startswith("unix:"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(deadline.left())
            try:
                sock.connect(address[5:])
            except BaseException:
                sock.close()
                raise
            return sock
        host, _, port = address.rpartition(":")
        return socket.create_connection((host.strip("[]"), int(port)), timeout=deadline.left())
    except TimeoutError:
        raise ScannerUnavailable(f"{deadline.what}: connecting to {address} timed out") from None
    except OSError as exc:
        raise ScannerUnavailable(f"{deadline.what}: cannot connect to {address}: "
                                 f"{exc.strerror or exc}") from None


def send_all(sock: socket.socket, data: bytes, deadline: Deadline) -> None:
    view = memoryview(data)
    try:
        while view:
            sock.settimeout(deadline.left())
            sent = sock.send(view)
            view = view[sent:]
    except TimeoutError:
        raise ScannerUnavailable(f"{deadline.what}: sending timed out") from None
    except OSError as exc:
        raise ScannerUnavailable(f"{deadline.what}: connection lost while sending: "
                                 f"{exc.strerror or exc}") from None


def receive_all(sock: socket.socket, deadline: Deadline, limit: int) -> bytes:
    """Everything until the peer closes, at most `limit` bytes (a bigger answer is nonsense)."""
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            sock.settimeout(deadline.left())
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > limit:
                raise ScannerUnavailable(f"{deadline.what}: answer larger than {limit} bytes")
            chunks.append(chunk)
    except TimeoutError:
        raise ScannerUnavailable(f"{deadline.what}: no answer within {deadline.seconds:g} s") from None
    except OSError as exc:
        raise ScannerUnavailable(f"{deadline.what}: connection lost while reading: "
                                 f"{exc.strerror or exc}") from None
