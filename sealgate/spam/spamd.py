"""SpamAssassin's spamd, spoken to directly in its SPAMC/1.5 protocol (a few lines of text).

Request:  SYMBOLS SPAMC/1.5 CRLF, Content-length: N CRLF, [User: name CRLF], CRLF, message.
Answer:   SPAMD/1.1 0 EX_OK CRLF, Spam: True ; 15.0 / 5.0 CRLF, CRLF, then the rule names
          (SYMBOLS) or SpamAssassin's report with points per rule (REPORT).
We use spamd's score and apply our own thresholds to it; spamd's own
required score (after the slash) is ignored, so one [spam] config governs
every backend.
"""

from __future__ import annotations

import re
import socket

from sealgate.spam.deadline import Deadline, connect, receive_all, send_all
from sealgate.spam.result import RuleHit, ScannerUnavailable, ScanResult

MAX_ANSWER = 1 << 20
_STATUS = re.compile(r"^SPAMD/\d+\.\d+ (\d+) (.*)$")
_SPAM = re.compile(r"^Spam:\s*(\w+)\s*;\s*(-?[\d.]+)\s*/\s*(-?[\d.]+)\s*$", re.IGNORECASE)
_REPORT_LINE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z0-9_]+)\s+(.*)$")


def request(command: str, message: bytes, user: str) -> bytes:
    head = f"{command} SPAMC/1.5\r\nContent-length: {len(message)}\r\n"
    if user:
        head += f"User: {user}\r\n"
    return head.encode("ascii") + b"\r\n" + message


def parse_answer(answer: bytes, what: str) -> tuple[float, str]:
    """(score, body) of a spamd answer; anything unexpected is ScannerUnavailable."""
    head, _, body = answer.replace(b"\r\n", b"\n").partition(b"\n\n")
    lines = head.decode("utf-8", "replace").split("\n")
    status = _STATUS.match(lines[0]) if lines else None
    if status is None:
        raise ScannerUnavailable(f"{what}: not a spamd answer: {lines[0][:80]!r}")
    if status.group(1) != "0":
        raise ScannerUnavailable(f"{what}: spamd error {status.group(1)} {status.group(2)}")
    for line in lines[1:]:
        spam = _SPAM.match(line)
        if spam:
            return float(spam.group(2)), body.decode("utf-8", "replace")
    raise ScannerUnavailable(f"{what}: spamd answer without a Spam: line")


def parse_symbols(body: str) -> list[RuleHit]:
    return [RuleHit(name.strip(), 0.0) for name in body.replace("\n", ",").split(",") if name.strip()]


def parse_report(body: str) -> list[RuleHit]:
    """The 'pts rule name description' table of a REPORT answer."""
    hits: list[RuleHit] = []
    for line in body.split("\n"):
        match = _REPORT_LINE.match(line)
        if match:
            hits.append(RuleHit(match.group(2), float(match.group(1)), match.group(3).strip()))
        elif hits and line.startswith("      ") and line.strip():
            last = hits[-1]
            hits[-1] = RuleHit(last.name, last.score, f"{last.description} {line.strip()}")
    return hits


def scan(message: bytes, address: str, user: str, timeout: float, explain: bool = False) -> ScanResult:
    """Score one message; REPORT when the rules' points are wanted, else the shorter SYMBOLS."""
    what = f"spamd at {address}"
    deadline = Deadline(timeout, what)
    command = "REPORT" if explain else "SYMBOLS"
    with connect(address, deadline) as sock:
        send_all(sock, request(command, message, user), deadline)
        try:
            sock.shutdown(socket.SHUT_WR)  # spamd reads to Content-length; say the end plainly
        except OSError:
            pass
        answer = receive_all(sock, deadline, MAX_ANSWER)
    score, body = parse_answer(answer, what)
    hits = parse_report(body) if explain else parse_symbols(body)
    return ScanResult(score, "spamd", hits)
