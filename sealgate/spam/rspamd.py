"""rspamd's scanning API: POST the message to /checkv2, with the SMTP facts as request headers.

Plain HTTP/1.0 over our deadline-bound socket rather than http.client,
whose timeout applies per read and so cannot bound a whole scan. rspamd's
score is used with our thresholds; its own action is recorded, not obeyed.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

from sealgate.spam.deadline import Deadline, connect, receive_all, send_all
from sealgate.spam.result import RuleHit, ScannerUnavailable, ScanResult

MAX_ANSWER = 4 << 20
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


def smtp_headers(client_ip: str, helo: str, hostname: str, mail_from: str,
                 recipients: list[str], queue_id: str, user: str) -> list[tuple[str, str]]:
    """rspamd's request headers for what the MTA told us; control characters removed (they come
    from the SMTP client and must not split our request)."""
    headers = [("IP", client_ip), ("Helo", helo), ("From", mail_from), ("Queue-Id", queue_id),
               ("User", user)]
    if hostname and hostname != "unknown" and not hostname.startswith("["):
        headers.append(("Hostname", hostname))
    headers += [("Rcpt", r) for r in recipients]
    return [(n, _UNSAFE.sub("", v)) for n, v in headers if v]


def request(url: str, message: bytes, headers: list[tuple[str, str]], password: str) -> bytes:
    parts = urlsplit(url)
    path = parts.path.rstrip("/") + "/checkv2"
    lines = [f"POST {path} HTTP/1.0", f"Host: {parts.netloc}", f"Content-Length: {len(message)}",
             "Connection: close"]
    lines += [f"{n}: {v}" for n, v in headers]
    if password:
        lines.append(f"Password: {_UNSAFE.sub('', password)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + message


def parse_answer(answer: bytes, what: str) -> ScanResult:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    fields = status_line.split(" ", 2)
    if len(fields) < 2 or not fields[0].startswith("HTTP/"):
        raise ScannerUnavailable(f"{what}: not an HTTP answer: {status_line[:80]!r}")
    if fields[1] != "200":
        raise ScannerUnavailable(f"{what}: HTTP {' '.join(fields[1:])[:120]}")
    if b"transfer-encoding: chunked" in head.lower():
        body = _dechunk(body)
    try:
        data = json.loads(body)
        score = float(data["score"])
        symbols = data.get("symbols") or {}
        hits = [RuleHit(str(name), float(s.get("score", 0.0)), str(s.get("description", "")))
                for name, s in symbols.items() if isinstance(s, dict)]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ScannerUnavailable(f"{what}: unreadable answer ({exc.__class__.__name__})") from None
    if data.get("action"):
        hits.append(RuleHit(f"RSPAMD_ACTION_{str(data['action']).upper().replace(' ', '_')}", 0.0,
                            "the action rspamd itself would take"))
    return ScanResult(score, "rspamd", hits)


def _dechunk(body: bytes) -> bytes:
    out, rest = [], body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            break
        out.append(rest[:size])
        rest = rest[size + 2:]
    return b"".join(out)


def address_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 80}"


def scan(message: bytes, url: str, headers: list[tuple[str, str]], password: str,
         timeout: float) -> ScanResult:
    what = f"rspamd at {url}"
    deadline = Deadline(timeout, what)
    try:
        address = address_of(url)
    except ValueError:
        raise ScannerUnavailable(f"{what}: not a usable URL") from None
    with connect(address, deadline) as sock:
        send_all(sock, request(url, message, headers, password), deadline)
        answer = receive_all(sock, deadline, MAX_ANSWER)
    try:
        return parse_answer(answer, what)
    except ValueError:  # a broken chunk size
        raise ScannerUnavailable(f"{what}: malformed HTTP body") from None
