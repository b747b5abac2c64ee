"""`sealgate policy serve`: the socketmap server Postfix's smtp_tls_policy_maps queries.

One thread per client connection (Postfix keeps a connection open per smtp process and sends
many requests on it). SIGHUP reloads the configuration, SIGTERM stops: the unix socket is
removed first, so Postfix sees "no server" rather than a half-closed one.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import socketserver
import threading
from pathlib import Path
from types import FrameType

from sealgate import services as services_module
from sealgate.config import load
from sealgate.logsetup import configure_logging
from sealgate.pipeline import Services
from sealgate.tlspolicy import outbound, socketmap

log = logging.getLogger("sealgate")

IDLE_TIMEOUT = 300.0  # seconds a connection may sit without a request; Postfix reconnects


class _Handler(socketserver.StreamRequestHandler):
    server: "PolicyServer"
    timeout = IDLE_TIMEOUT

    def handle(self) -> None:
        current = self.server.services  # a connection keeps the config it started with
        peer = self.client_address[0] if isinstance(self.client_address, tuple) else "unix"
        if isinstance(self.request, socket.socket) and self.request.family != socket.AF_UNIX:
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            socketmap.serve_stream(self.rfile, self.wfile, current.config.tls.policy_map_name,
                                   lambda key: outbound.lookup(key, current), peer)
        except (TimeoutError, ConnectionError):
            pass  # an idle or vanished client: nothing to answer


class PolicyServer(socketserver.ThreadingMixIn, socketserver.BaseServer):
    """Answers on a unix socket or TCP, as [tls] policy_socket says."""

    daemon_threads = True
    services: Services


class UnixPolicyServer(PolicyServer, socketserver.UnixStreamServer):
    pass


class TcpPolicyServer(PolicyServer, socketserver.TCPServer):
    allow_reuse_address = True


class Tcp6PolicyServer(TcpPolicyServer):
    address_family = socket.AF_INET6


def listen(spec: str, mode: str) -> PolicyServer:
    """Bind unix:/path (replacing a stale socket file) or inet:PORT@HOST."""
    kind, _, where = spec.partition(":")
    if kind in ("unix", "local"):
        path = Path(where)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_socket():
            path.unlink()
        unix = UnixPolicyServer(str(path), _Handler)
        os.chmod(path, int(mode, 8))
        return unix
    port, _, host = where.partition("@")
    server_class = Tcp6PolicyServer if kind == "inet6" or ":" in host else TcpPolicyServer
    return server_class((host.strip("[]"), int(port)), _Handler)


def serve(config_path: Path | None) -> int:
    config = load(config_path)
    configure_logging(config.log)
    spec = config.tls.policy_socket
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # Before the socket exists: whoever sees it may already send SIGTERM.
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    built = services_module.build(config)
    try:
        server = listen(spec, config.tls.policy_socket_mode)
    except OSError as exc:
        log.error("cannot listen on %s: %s", spec, exc.strerror or exc)
        return 1
    server.services = built

    def on_hup(signum: int, frame: FrameType | None) -> None:
        services_module.reload(config_path, config, ("tls.policy_socket",),
                               lambda new: setattr(server, "services", new))

    signal.signal(signal.SIGHUP, on_hup)
    worker = threading.Thread(target=server.serve_forever, name="socketmap", daemon=True)
    worker.start()
    log.info("sealgate tls policy server listening on %s (map name %s, config %s)",
             spec, config.tls.policy_map_name, config.source)
    stop.wait()
    if isinstance(server, UnixPolicyServer):
        Path(server.server_address).unlink(missing_ok=True)  # type: ignore[arg-type]
    server.shutdown()
    server.server_close()
    log.info("sealgate tls policy server stopped")
    return 0
