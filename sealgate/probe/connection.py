"""The TCP connection: source address, whole-line sends and timed replies.

Our own small reader instead of smtplib: the transcript must show every
reply line exactly as received, with the time the server took for it.
"""

import ipaddress
import select
import socket
import ssl
import time
from typing import Any, NoReturn

from .errors import ProbeFailure
from .tls import TLSClient
from .transcript import Reply, Transcript


def open_socket(host: str, port: int, bind: str | None, timeout: float,
                transcript: Transcript) -> socket.socket:
    """Connect to host:port from the chosen source address, trying each address."""
    targets = _resolve(host, port, bind)
    reason = "no address to try"
    for family, kind, proto, _, address in targets:
        origin = f" from {bind}" if bind else ""
        transcript.info(f"connecting to {address[0]} port {address[1]}{origin}")
        sock = socket.socket(family, kind, proto)
        sock.settimeout(timeout)
        try:
            _bind(sock, bind)
            started = time.perf_counter()
            sock.connect(address)
        except TimeoutError:
            reason = f"timed out after {timeout:g} s"
        except OSError as err:
            reason = err.strerror or str(err)
        else:
            local = sock.getsockname()
            transcript.info(f"connected in {_ms_since(started):.1f} ms"
                            f" (local address {local[0]} port {local[1]})")
            return sock
        sock.close()
        transcript.info(f"failed: {reason}")
    raise ProbeFailure(f"cannot connect to {host} port {port}: {reason}")


def _resolve(host: str, port: int, bind: str | None) -> list[tuple[Any, ...]]:
    """Addresses of host, restricted to the family of the source address."""
    try:
        targets = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise ProbeFailure(f"cannot resolve {host}: {err.strerror}") from None
    except UnicodeError:
        raise ProbeFailure(f"cannot resolve {host}: not a valid host name") from None
    if bind is None:
        return targets
    family = socket.AF_INET6 if ipaddress.ip_address(bind).version == 6 else socket.AF_INET
    usable = [target for target in targets if target[0] == family]
    if not usable:
        raise ProbeFailure(f"{host} has no address of the same family as --bind {bind}")
    return usable


def _bind(sock: socket.socket, bind: str | None) -> None:
    """Pick the source address, so reputation problems of one IP can be tested."""
    if bind is None:
        return
    try:
        sock.bind((bind, 0))
    except OSError as err:
        sock.close()
        raise ProbeFailure(f"cannot use {bind} as source address: {err.strerror}") from None


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


class Connection:
    """A connected socket with a line reader; knows whether it is still usable."""

    def __init__(self, sock: socket.socket, timeout: float, transcript: Transcript) -> None:
        self._sock = sock
        self._timeout = timeout
        self._transcript = transcript
        self._buffer = b""
        self.alive = True
        self.ready_at = time.perf_counter()

    @property
    def tls_socket(self) -> ssl.SSLSocket | None:
        """The TLS layer, once there is one."""
        return self._sock if isinstance(self._sock, ssl.SSLSocket) else None

    def send_line(self, line: str, shown: str | None = None) -> float:
        """Send one whole line (servers drop clients that trickle bytes); returns send time."""
        self._transcript.client(line if shown is None else shown)
        return self._send((line + "\r\n").encode("utf-8", "surrogateescape"))

    def send_data(self, payload: bytes, shown: list[str]) -> float:
        """Send a message body in one go; only ``shown`` goes to the transcript."""
        for line in shown:
            self._transcript.client(line)
        return self._send(payload)

    def read_reply(self, since: float, waiting_for: str, note: str = "") -> Reply:
        """Read one (possibly multi-line) reply and show it with its timing."""
        lines: list[str] = []
        while not lines or lines[-1][3:4] == "-":
            line = self._read_line(waiting_for)
            if len(line) < 3 or not line[:3].isdigit() or line[3:4] not in ("", " ", "-"):
                self._fail(f"not an SMTP reply while waiting for {waiting_for}: {line!r}")
            lines.append(line)
        reply = Reply(int(lines[0][:3]), tuple(lines), _ms_since(since))
        self._transcript.server(reply, note)
        return reply

    def unsolicited_reply(self) -> Reply | None:
        """Collect what the server said unasked (e.g. a 421 idle timeout) before we speak."""
        if not self._buffer and not self._poll():
            return None
        return self.read_reply(time.perf_counter(), "the rest of an unsolicited reply",
                               note="unsolicited")

    def start_tls(self, tls: TLSClient) -> float:
        """Put TLS on the socket; returns the handshake time in ms."""
        if self._buffer:
            self._fail("the server sent data before the TLS handshake; refusing to continue")
        started = time.perf_counter()
        try:
            self._sock = tls.handshake(self._sock)
        except ProbeFailure:
            self.alive = False
            raise
        self.ready_at = time.perf_counter()
        return (self.ready_at - started) * 1000

    def close(self) -> None:
        """Drop the connection (after QUIT, or on failure)."""
        self.alive = False
        self._sock.close()

    def _send(self, data: bytes) -> float:
        try:
            self._sock.sendall(data)
        except OSError as err:
            self._fail(f"cannot send: {err.strerror or err}")
        return time.perf_counter()

    def _read_line(self, waiting_for: str) -> str:
        while b"\n" not in self._buffer:
            self._buffer += self._receive(waiting_for)
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def _receive(self, waiting_for: str) -> bytes:
        try:
            chunk = self._sock.recv(65536)
        except TimeoutError:
            self._fail(f"timed out after {self._timeout:g} s waiting for {waiting_for}")
        except OSError as err:
            self._fail(f"connection lost waiting for {waiting_for}: {err.strerror or err}")
        if not chunk:
            self._fail(f"connection closed by the server while waiting for {waiting_for}")
        return chunk

    def _poll(self) -> bool:
        """Buffer whatever application data is waiting, without blocking."""
        tls = self.tls_socket
        if not (tls and tls.pending()) and not select.select([self._sock], [], [], 0)[0]:
            return False
        self._sock.setblocking(False)
        try:
            chunk = self._sock.recv(65536)
        except (BlockingIOError, ssl.SSLWantReadError):
            return False  # only TLS housekeeping (e.g. a session ticket) was waiting
        except OSError as err:
            self._fail(f"connection lost: {err.strerror or err}")
        finally:
            self._sock.settimeout(self._timeout)
        if not chunk:
            self._fail("connection closed by the server")
        self._buffer += chunk
        return True

    def _fail(self, message: str) -> NoReturn:
        self.alive = False
        raise ProbeFailure(message)
