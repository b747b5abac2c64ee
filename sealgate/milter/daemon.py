"""`sealgate milter`: socket set-up, worker processes, signals (SIGHUP reloads, SIGTERM drains)
and the libmilter loop.

libmilter runs in a thread of its own and blocks SIGHUP/SIGTERM there; the main
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
from sealgate.config import Config, load
from sealgate.logsetup import configure_logging
from sealgate.milter.adapter import SealgateMilter
from sealgate.workers import Workers, batch_scheduling, count as worker_count

log = logging.getLogger("sealgate")


def libmilter_address(spec: str) -> str:
    """Our config says unix:/path or inet:PORT@HOST; libmilter wants the same (local: is an alias)."""
    return "unix:" + spec.split(":", 1)[1] if spec.startswith("local:") else spec


def _tune_listener(shared: bool) -> None:
    """libmilter never sets TCP_NODELAY, and Nagle plus delayed ACK costs ~40 ms a message: set it
    on a TCP listening socket (accepted sockets inherit it on Linux). A socket that several
    workers share is made non-blocking: every worker's poll wakes for a new connection, and the
    ones that lose the race must get EAGAIN from accept (libmilter then polls again) rather than
    block in it holding the lock its stop needs. Accepted sockets stay blocking (Linux does not
    pass O_NONBLOCK on). libmilter keeps the socket to itself; it is found among our descriptors
    as the one that listens."""
    for fd in map(int, os.listdir("/proc/self/fd")):
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            sock = socket.socket(fileno=fd)
        except OSError:
            continue
        try:
            if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                continue
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if shared:
                sock.setblocking(False)
        finally:
            sock.detach()


def _open_socket(spec: str, timeout: int) -> None:
    """Register our callbacks and open the listening socket, without entering libmilter's loop,
    so that workers forked afterwards share the socket. Milter.runmilter does both, then calls
    libmilter's main; it runs here with that call left out."""
    main = libmilter.main
    libmilter.main = lambda: None
    try:
        Milter.runmilter("sealgate", spec, timeout)
    finally:
        libmilter.main = main


def serve(config_path: Path | None) -> int:
    """Open the socket, then answer it in this process ([milter] workers = 1) or in forked
    workers, this process passing signals on and replacing a worker that dies."""
    config = load(config_path)
    configure_logging(config.log)
    if config.milter.batch_scheduling:  # before any thread or worker starts: they inherit it
        batch_scheduling("sealgate milter")
    SealgateMilter.services = services.build(config)
    spec = libmilter_address(config.milter.socket)
    if spec.startswith("unix:"):
        Path(spec[5:]).parent.mkdir(parents=True, exist_ok=True)
        # libmilter creates the socket with mode 0777 & ~umask.
        os.umask(0o777 & ~int(config.milter.socket_mode, 8))
    Milter.factory = SealgateMilter
    libmilter.set_exception_policy(Milter.TEMPFAIL)  # a crash in a callback must not pass mail
    try:
        _open_socket(spec, config.milter.timeout)
    except libmilter.error as exc:
        log.error("milter cannot listen on %s: %s", config.milter.socket, exc)
        return 1
    size = worker_count(config.milter.workers)
    _tune_listener(shared=size > 1)
    log.info("sealgate milter listening on %s (config %s, %d worker%s)", config.milter.socket,
             config.source, size, "s" if size > 1 else "")
    code = _answer(config_path, config, spec, worker=False) if size == 1 \
        else _supervise(config_path, config, spec, size)
    log.info("sealgate milter stopped")
    return code


def _supervise(config_path: Path | None, config: Config, spec: str, size: int) -> int:
    """The parent of forked workers: SIGTERM (or SIGINT) stops new connections and lets each
    worker drain its own, a second one stops them now; SIGHUP makes each worker reload."""
    workers = Workers("milter", lambda: _answer(config_path, config, spec, worker=True), size,
                      config.milter.pin_workers)
    stopping = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        if stopping.is_set():
            workers.signal(signal.SIGQUIT)
            return
        stopping.set()
        _refuse_new(spec)
        workers.signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGHUP, lambda signum, frame: workers.signal(signum))
    while not stopping.wait(1.0):
        workers.replace_exited()
    return workers.wait()


def _refuse_new(spec: str) -> None:
    """libmilter's own stop would abandon open sessions mid-message; instead refuse new
    connections (the MTA then applies milter_default_action) and let open ones finish."""
    if spec.startswith("unix:"):
        Path(spec[5:]).unlink(missing_ok=True)


def _answer(config_path: Path | None, config: Config, spec: str, worker: bool) -> int:
    """Run libmilter's loop on the open socket until SIGTERM and the drain that follows it.

    Alone, a second SIGTERM (or SIGINT) stops at once. A worker is told that by its parent with
    SIGQUIT, and takes every SIGTERM as the first: one sent to the whole process group (as
    `timeout` and some supervisors do) also arrives passed on by the parent. It ignores SIGINT,
    which a terminal's Ctrl-C sends to the parent as well."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            libmilter.main()
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)

    stopping = threading.Event()

    def stop_now(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping now", signum)
        libmilter.stop()

    def on_term(signum: int, frame: FrameType | None) -> None:
        if stopping.is_set():
            if not worker:
                stop_now(signum, frame)
            return
        stopping.set()
        _refuse_new(spec)
        log.info("signal %d: no new connections; draining open ones (at most %d s)",
                 signum, config.milter.drain_timeout)

    def on_hup(signum: int, frame: FrameType | None) -> None:
        services.reload(config_path, config,
                        ("milter.socket", "milter.workers", "milter.pin_workers",
                         "milter.batch_scheduling"),
                        lambda new: setattr(SealgateMilter, "services", new))

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN if worker else on_term)
    signal.signal(signal.SIGHUP, on_hup)
    if worker:
        signal.signal(signal.SIGQUIT, stop_now)

    loop = threading.Thread(target=run, name="libmilter", daemon=True)
    loop.start()
    drain_deadline = None
    while loop.is_alive():
        loop.join(0.2)
        if stopping.is_set():
            drain_deadline = drain_deadline or time.monotonic() + config.milter.drain_timeout
            if SealgateMilter.connections.wait_idle(0) or time.monotonic() > drain_deadline:
                if not SealgateMilter.connections.wait_idle(0):
                    log.warning("drain timeout: stopping with connections still open")
                libmilter.stop()
    if failure:
        log.error("milter stopped: %s (socket %s)", failure[0], config.milter.socket)
        return 1
    return 0
