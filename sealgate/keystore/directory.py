"""The public key directory: a read-only HTTP listener serving each domain's signed bundles.

Meant to sit behind the site's web server (which adds TLS). Paths:
  /.well-known/sealgate/<domain>.json              the current bundle
  /.well-known/sealgate/<domain>/<sha256>.json     any bundle ever published (what DNS names)
  /.well-known/sealgate/<domain>/revocations.json  every signed revocation record
"""

from __future__ import annotations

import logging
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sealgate.keystore import names
from sealgate.keystore.encoding import canonical_json
from sealgate.keystore.errors import KeystoreError
from sealgate.keystore.store import KeyStore

log = logging.getLogger("sealgate.keystore")
PREFIX = "/.well-known/sealgate/"
_ROUTE = re.compile(r"^(?P<domain>[^/]+?)(?:\.json|/(?P<leaf>[0-9a-f]{64}|revocations)\.json)$")


def bundle_path(domain: str, digest: str | None = None) -> str:
    return f"{PREFIX}{domain}/{digest}.json" if digest else f"{PREFIX}{domain}.json"


def parse_listen(text: str) -> tuple[str, int]:
    """host:port or [v6]:port; ValueError saying what is expected."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r}: expected host:port such as 127.0.0.1:8470")
    return host, int(port)


class _Handler(BaseHTTPRequestHandler):
    server_version = "sealgate-keystore"
    timeout = 10  # a slow client does not hold a thread for ever
    store: KeyStore

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        match = _ROUTE.match(path[len(PREFIX):]) if path.startswith(PREFIX) else None
        if match is None:
            self._send(404, b"not found: expected " + PREFIX.encode() +
                       b"<domain>.json, <domain>/<sha256>.json or <domain>/revocations.json\n")
            return
        try:
            domain = names.domain(match["domain"])
        except KeystoreError as exc:
            self._send(400, f"{exc}\n".encode())
            return
        leaf = match["leaf"]
        if leaf == "revocations":
            if self.store.mailbox_policy(domain) is None:
                body = None
            else:
                body = canonical_json({"domain": domain,
                                       "revocations": self.store.records("revocations", domain)})
            cache = "max-age=300"
        elif leaf:
            body = self.store.bundle_by_hash(domain, leaf)
            cache = "max-age=31536000, immutable"  # a hash names exactly one body
        else:
            latest = self.store.latest_bundle(domain)
            body = latest[1] if latest else None
            cache = "max-age=300"
        if body is None:
            self._send(404, f"no such bundle for {domain} here\n".encode())
        else:
            self._send(200, body, "application/json", cache)

    def _send(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8",
              cache: str = "no-store") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("directory: %s %s", self.address_string(), format % args)


def start(store: KeyStore, listen: str) -> ThreadingHTTPServer:
    """Bind and serve in a background thread; the caller shuts it down."""
    host, port = parse_listen(listen)
    handler = type("DirectoryHandler", (_Handler,), {"store": store})
    server_class = ThreadingHTTPServer if ":" not in host else type(
        "DirectoryServer6", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
    server: ThreadingHTTPServer = server_class((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="directory", daemon=True).start()
    return server
