"""Loopback ports for test servers: pick a free one, wait until one answers."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that is free on `host` right now.

    The kernel picks it (bind to port 0), so parallel test runs do not
    collide on a fixed number. There is a small window before the caller
    binds it; servers started with it report "address in use" clearly.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def smtp_greets(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when an SMTP server on host:port sends a 220 greeting.

    Postfix's master binds the port before smtpd can answer; a bare
    connect succeeds earlier than a client could really talk to it.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            greeting = sock.recv(512)
            if greeting.startswith(b"220"):
                sock.sendall(b"QUIT\r\n")
                try:
                    sock.recv(512)
                except OSError:
                    pass
                return True
            return False
    except OSError:
        return False


def wait_until(
    predicate: Callable[[], bool], timeout: float, interval: float = 0.05
) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
