"""A message from a file or stdin as the spam stage sees it in the milter (for the CLI).

A delivered message carries this gateway's Authentication-Results header;
its results are what the milter's rules used, so they are read back into
the transaction. Headers claiming another authserv-id are not trusted.
"""

from __future__ import annotations

import authres

from sealgate.message import Message
from sealgate.pipeline import AuthResult, Session, Transaction

HEADER = "Authentication-Results"


def results_from_headers(msg: Message, authserv_id: str) -> list[AuthResult]:
    """Our own recorded results, from the first header with our authserv-id."""
    for value in msg.header_values(HEADER):
        text = " ".join(value.decode("utf-8", "replace").split())
        try:
            parsed = authres.AuthenticationResultsHeader.parse(f"{HEADER}: {text}")
        except Exception:  # noqa: BLE001 - authres raises several types on malformed input
            parsed = None
        if parsed is None or str(parsed.authserv_id).lower() != authserv_id.lower():
            continue
        return [AuthResult(str(r.method), str(r.result),
                           [(str(p.type), str(p.name), str(p.value)) for p in r.properties],
                           reason=str(r.reason or "")) for r in parsed.results]
    return []


def transaction(raw: bytes, authserv_id: str) -> Transaction:
    if raw.startswith(b"From "):  # an mbox From_ line, as when piping one message from a mail file
        raw = raw.partition(b"\n")[2]
    msg = Message.from_bytes(raw)
    txn = Transaction(Session(), msg)
    txn.results = results_from_headers(msg, authserv_id)
    return txn
