"""The SMTP conversation: each macro as a method that sends and returns the reply.

Also keeps the little state the macros need: advertised extensions, the
envelope (for the generated test message) and whether a raw DATA is open.
"""

from types import TracebackType

from . import auth
from .connection import Connection, open_socket
from .credentials import Credentials
from .errors import ProbeFailure
from .message import shown_lines, test_message, wire_format
from .tls import TLSClient, describe
from .transcript import Reply, Transcript


class Session:
    """One connection to one server, driven by macros or raw lines."""

    def __init__(self, connection: Connection, transcript: Transcript, tls: TLSClient,
                 credentials: Credentials, helo: str) -> None:
        self._connection = connection
        self._transcript = transcript
        self._tls = tls
        self._credentials = credentials
        self._helo = helo
        self.extensions: dict[str, str] = {}
        self.sender: str | None = None
        self.recipients: list[str] = []
        self.in_data = False

    @property
    def open(self) -> bool:
        """False once QUIT was answered or the connection broke."""
        return self._connection.alive

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        """Say goodbye unless interrupted or the line is broken, then close."""
        polite = kind is None or issubclass(kind, ProbeFailure)
        if polite and self.open and not self.in_data:
            try:
                self.quit()
            except ProbeFailure:
                pass
        self.close()

    def close(self) -> None:
        """Drop the connection without QUIT (it is broken, or we are interrupted)."""
        self._connection.close()

    def greeting(self) -> Reply:
        """The server's banner, timed from the moment the connection (or TLS) stood."""
        return self._connection.read_reply(self._connection.ready_at, "the server greeting")

    def command(self, line: str, shown: str | None = None) -> Reply:
        """Send one line and wait for its reply, showing both."""
        pending = self._connection.unsolicited_reply()
        if pending is not None and pending.code == 421:
            self.close()
            raise ProbeFailure(f"the server is closing the connection: {pending.text}")
        sent = self._connection.send_line(line, shown)
        return self._connection.read_reply(sent, f"the reply to {shown or line}")

    def raw(self, line: str) -> Reply:
        """A line sent exactly as typed; a 354 opens raw message input."""
        reply = self.command(line)
        self.in_data = reply.code == 354
        return reply

    def data_line(self, line: str) -> Reply | None:
        """Message input after a raw DATA: sent as typed until the lone ``.``."""
        sent = self._connection.send_line(line)
        if line != ".":
            return None
        self.in_data = False
        return self._connection.read_reply(sent, "the reply to the end of data")

    def ehlo(self, name: str | None = None) -> Reply:
        """EHLO, remembering the extensions for later hints."""
        reply = self.command(f"EHLO {name or self._helo}")
        self._forget_envelope()
        self.extensions = _extensions(reply) if reply.code == 250 else {}
        return reply

    def helo(self, name: str | None = None) -> Reply:
        """Plain HELO, for servers or tests that need the old greeting."""
        self._forget_envelope()
        self.extensions = {}
        return self.command(f"HELO {name or self._helo}")

    def mail(self, address: str, parameters: str = "") -> Reply:
        """MAIL FROM, noting the sender for the generated test message."""
        reply = self.command(_with_parameters(f"MAIL FROM:<{address}>", parameters))
        if reply.code == 250:
            self.sender, self.recipients = address, []
        return reply

    def rcpt(self, address: str, parameters: str = "") -> Reply:
        """RCPT TO, noting accepted recipients for the generated test message."""
        reply = self.command(_with_parameters(f"RCPT TO:<{address}>", parameters))
        if reply.code in (250, 251):
            self.recipients.append(address)
        return reply

    def data(self, content: bytes | None = None) -> Reply:
        """DATA, then the content (or a generated test message) and the final ``.``."""
        reply = self.command("DATA")
        if reply.code != 354:
            return reply
        if content is None:
            content = test_message(self.sender or "", self.recipients, self._helo)
        wire = wire_format(content)
        sent = self._connection.send_data(wire, shown_lines(wire))
        self._forget_envelope()
        return self._connection.read_reply(sent, "the reply to the message")

    def starttls(self) -> Reply:
        """STARTTLS and, on 220, the handshake; the server forgets EHLO after it."""
        if self.extensions and "STARTTLS" not in self.extensions:
            self._transcript.info("note: the server did not advertise STARTTLS")
        reply = self.command("STARTTLS")
        if reply.code == 220:
            self.start_tls()
            self.extensions = {}
            self._transcript.info("send ehlo again: the server has forgotten the earlier one")
        return reply

    def start_tls(self) -> None:
        """The handshake itself, then what was negotiated and the certificates."""
        elapsed = self._connection.start_tls(self._tls)
        self._transcript.info(f"TLS handshake done in {elapsed:.1f} ms")
        tls_socket = self._connection.tls_socket
        assert tls_socket is not None
        for line in describe(tls_socket, self._tls):
            self._transcript.info(line)

    def auth(self, mechanism: str, user: str | None = None) -> Reply:
        """Run a built-in SASL mechanism; the transcript masks every secret."""
        user = self._credentials.username(user)
        password = self._credentials.password(user)
        self._note_auth_support(mechanism)
        self._transcript.info(f"authenticating as {user} with {mechanism}")
        exchange = auth.MECHANISMS[mechanism](user, password)
        line, shown = next(exchange)
        while True:
            reply = self.command(line, shown)
            if reply.code != 334:
                return reply
            challenge = auth.decode_challenge(reply.argument)
            if challenge is None:
                return self.command("*")  # cancel: we cannot answer what we cannot read
            self._transcript.info(f"challenge: {challenge.decode('utf-8', 'replace')!r}")
            try:
                line, shown = exchange.send(challenge)
            except StopIteration:
                return self.command("*")  # the server wants more than this mechanism has

    def rset(self) -> Reply:
        """RSET: start a new envelope on the same connection."""
        self._forget_envelope()
        return self.command("RSET")

    def noop(self) -> Reply:
        """NOOP: is the server still listening, and how fast?"""
        return self.command("NOOP")

    def quit(self) -> Reply:
        """QUIT and close, whatever the reply."""
        reply = self.command("QUIT")
        self.close()
        return reply

    def _forget_envelope(self) -> None:
        self.sender, self.recipients = None, []

    def _note_auth_support(self, mechanism: str) -> None:
        if not self.extensions:
            return
        offered = self.extensions.get("AUTH")
        if offered is None:
            self._transcript.info("note: the server did not advertise AUTH")
        elif mechanism not in offered.upper().split():
            self._transcript.info(f"note: the server advertised AUTH {offered}")


def open_session(host: str, port: int, *, bind: str | None, timeout: float,
                 implicit_tls: bool, transcript: Transcript, tls: TLSClient,
                 credentials: Credentials, helo: str) -> tuple[Session, Reply]:
    """Connect (and for --tls, handshake) and read the greeting."""
    sock = open_socket(host, port, bind, timeout, transcript)
    session = Session(Connection(sock, timeout, transcript), transcript, tls, credentials, helo)
    try:
        if implicit_tls:
            session.start_tls()
        return session, session.greeting()
    except BaseException:
        session.close()
        raise


def _extensions(reply: Reply) -> dict[str, str]:
    """EHLO keywords (upper case) and their parameters."""
    pairs = (line[4:].strip().partition(" ") for line in reply.lines[1:])
    return {keyword.upper(): parameters for keyword, _, parameters in pairs}


def _with_parameters(command: str, parameters: str) -> str:
    return f"{command} {parameters}" if parameters else command
