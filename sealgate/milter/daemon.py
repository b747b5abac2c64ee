"""`sealgate milter`: socket set-up, signals (SIGHUP reloads, SIGTERM drains) and the libmilter loop.

libmilter runs in a worker thread and blocks SIGHUP/SIGTERM there; the main
thread keeps them unblocked, so Linux delivers them to it and Python's own
handlers run: that is what lets SIGHUP reload instead of stopping.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import stat
import threading
import time
from pathlib import Path
from types import FrameType

import Milter
import milter as libmilter

from sealgate import services
from sealgate.config import load
from sealgate.logsetup import configure_logging
from sealgate.milter.adapter import SealgateMilter

log = logging.getLogger("sealgate")


def libmilter_address(spec: str) -> str:
    """Our config says unix:/path or inet:PORT@HOST; libmilter wants the same (local: is an alias)."""
    return "unix:" + spec.split(":", 1)[1] if spec.startswith("local:") else spec


def _set_nodelay(port: int) -> None:
    """libmilter never sets TCP_NODELAY, and Nagle plus delayed ACK costs ~40 ms a message; set it
    on the listening socket (accepted sockets inherit it on Linux), found among our descriptors."""
    for fd in map(int, os.listdir("/proc/self/fd")):
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            sock = socket.socket(fileno=fd)
        except OSError:
            continue
        try:
            if sock.type == socket.SOCK_STREAM and sock.family in (socket.AF_INET, socket.AF_INET6) \
                    and sock.getsockname()[1] == port:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        finally:
            sock.detach()


def _wait_listening(spec: str, worker: threading.Thread, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    path = Path(spec.split(":", 1)[1]) if spec.startswith("unix:") else None
    while worker.is_alive() and time.monotonic() < deadline:
        if path is not None and path.is_socket():
            return
        if path is None:
            port = int(spec.split(":", 1)[1].partition("@")[0])
            _set_nodelay(port)
            return
        time.sleep(0.02)


def serve(config_path: Path | None) -> int:
    config = load(config_path)
    configure_logging(config.log)
    SealgateMilter.services = services.build(config)
    spec = libmilter_address(config.milter.socket)
    if spec.startswith("unix:"):
        Path(spec[5:]).parent.mkdir(parents=True, exist_ok=True)
        # libmilter creates the socket with mode 0777 & ~umask.
        os.umask(0o777 & ~int(config.milter.socket_mode, 8))

    Milter.factory = SealgateMilter
    libmilter.set_exception_policy(Milter.TEMPFAIL)  # a crash in a callback must not pass mail
    failure: list[BaseException] = []

    def run() -> None:
        try:
            Milter.runmilter("sealgate", spec, config.milter.timeout)
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)

    stopping = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        if stopping.is_set():
            log.info("signal %d again: stopping now", signum)
            libmilter.stop()
            return
        stopping.set()
        # libmilter's own stop would abandon open sessions mid-message; instead refuse new
        # connections (the MTA then applies milter_default_action) and let open ones finish.
        if spec.startswith("unix:"):
            Path(spec[5:]).unlink(missing_ok=True)
        log.info("signal %d: no new connections; draining open ones (at most %d s)",
                 signum, config.milter.drain_timeout)

    def on_hup(signum: int, frame: FrameType | None) -> None:
        services.reload(config_path, config, "milter.socket",
                        lambda new: setattr(SealgateMilter, "services", new))

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGHUP, on_hup)

    worker = threading.Thread(target=run, name="libmilter", daemon=True)
    worker.start()
    _wait_listening(spec, worker)
    if worker.is_alive():
        log.info("sealgate milter listening on %s (config %s)", config.milter.socket, config.source)
    drain_deadline = None
    while worker.is_alive():
        worker.join(0.2)
        if stopping.is_set():
            drain_deadline = drain_deadline or time.monotonic() + config.milter.drain_timeout
            if SealgateMilter.connections.wait_idle(0) or time.monotonic() > drain_deadline:
                if not SealgateMilter.connections.wait_idle(0):
                    log.warning("drain timeout: stopping with connections still open")
                libmilter.stop()
    if failure:
        log.error("milter stopped: %s (socket %s)", failure[0], config.milter.socket)
        return 1
    log.info("sealgate milter stopped")
    return 0
