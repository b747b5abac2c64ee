"""Message content for DATA: a generated test message, or a file made wire-safe."""

import re
from email.utils import formatdate, make_msgid

from .errors import UsageError

SHOWN_LINES = 40


def test_message(sender: str, recipients: list[str], helo: str) -> bytes:
    """A minimal valid message, so ``data`` alone is enough to test delivery."""
    date = formatdate(localtime=True)
    headers = [
        f"Date: {date}",
        f"Message-ID: {make_msgid('probe', domain=helo)}",
        f"From: {sender or 'postmaster@' + helo}",
        f"To: {', '.join(recipients) or 'undisclosed-recipients:;'}",
        f"Subject: sealgate probe test message ({date})",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=us-ascii",
    ]
    body = [f"This is a test message sent by sealgate probe from {helo}.",
            "It can be deleted."]
    return "\r\n".join(headers + [""] + body).encode("ascii", "replace") + b"\r\n"


def read_message(path: str) -> bytes:
    """A message file's raw bytes; an unreadable file is the user's mistake."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as err:
        raise UsageError(f"cannot read message file {path}: {err.strerror}") from None


def wire_format(content: bytes) -> bytes:
    """CRLF line ends, dot-stuffing and the final ``.`` line (RFC 5321 4.5.2)."""
    lines = re.split(rb"\r\n|\r|\n", content)
    if lines[-1] == b"":
        lines.pop()
    stuffed = [b"." + line if line.startswith(b".") else line for line in lines]
    return b"".join(line + b"\r\n" for line in stuffed) + b".\r\n"


def shown_lines(wire: bytes) -> list[str]:
    """The transcript view of a message: the start of it, not megabytes of base64."""
    lines = wire.decode("utf-8", "replace").split("\r\n")[:-1]
    if len(lines) <= SHOWN_LINES + 1:
        return lines
    hidden = len(lines) - SHOWN_LINES - 1
    return lines[:SHOWN_LINES] + [f"... ({hidden} more lines not shown)", lines[-1]]
