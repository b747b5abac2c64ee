"""The socketmap protocol (Sendmail's, as Postfix's socketmap_table(5) speaks it), independent of
what is looked up: a request is a netstring "NAME KEY", a reply a netstring "OK VALUE",
"NOTFOUND ", "TEMP reason" or "PERM reason". A client may send many requests on one connection.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from io import BufferedIOBase
from typing import Callable

from sealgate.tlspolicy import netstring

log = logging.getLogger("sealgate")

MAX_REQUEST = 1000  # a map name, a space and a destination (a domain is at most 255 bytes)
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


@dataclass(frozen=True)
class Reply:
    status: str  # "OK" | "NOTFOUND" | "TEMP" | "PERM"
    text: str = ""

    def encode(self) -> bytes:
        # Reason texts may quote client input: keep them one printable line.
        return netstring.encode(f"{self.status} {_UNPRINTABLE.sub('?', self.text)}".encode())


NOTFOUND = Reply("NOTFOUND")
Lookup = Callable[[str], Reply]


def answer(request: bytes, map_name: str, lookup: Lookup) -> Reply:
    """The reply to one well-framed request."""
    try:
        text = request.decode("utf-8")
    except UnicodeDecodeError:
        return Reply("PERM", "malformed request: not UTF-8")
    name, space, key = text.partition(" ")
    if not space or not name or not key:
        return Reply("PERM", f"malformed request {text[:80]!r}: expected 'NAME KEY'")
    if name != map_name:
        return Reply("PERM", f"unknown map name {name[:40]!r}: this server answers {map_name!r}")
    return lookup(key)


def serve_stream(rfile: BufferedIOBase, wfile: BufferedIOBase, map_name: str, lookup: Lookup,
                 peer: str) -> None:
    """Answer requests until the client closes; a framing error gets a PERM reply and ends the
    connection (the stream cannot be resynchronised), a crash in `lookup` gets TEMP."""
    while True:
        try:
            request = netstring.read(rfile, MAX_REQUEST)
        except netstring.NetstringError as exc:
            log.warning("socketmap client %s: %s; closing the connection", peer, exc)
            wfile.write(Reply("PERM", f"malformed request: {exc}").encode())
            wfile.flush()
            return
        if request is None:
            return
        try:
            reply = answer(request, map_name, lookup)
        except Exception:  # noqa: BLE001 - one bad lookup must not end the server or the connection
            log.exception("socketmap client %s: internal error answering %r", peer, request[:80])
            reply = Reply("TEMP", "internal error, see the sealgate log")
        wfile.write(reply.encode())
        wfile.flush()
