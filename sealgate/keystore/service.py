"""`sealgate keystore serve`: the unix socket for the milter and admins, the public directory,
and the schedule that rotates and destroys keys.

The parent process checks the master key, binds the socket, runs the schedule
and the directory, and forks the workers that answer the socket (a process
per CPU: Python runs one thread at a time). A malformed request gets an
error answer and the connection stays usable; an oversized one is refused
and that connection closed.
"""

from __future__ import annotations

import grp
import json
import logging
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from sealgate.config import Config, load
from sealgate.dns import Resolver
from sealgate.keystore import directory, lifecycle
from sealgate.keystore.clock import Clock, clock_from_env
from sealgate.keystore.db import Database
from sealgate.keystore.discovery import Discovery
from sealgate.keystore.masterkey import MasterKeyError, Sealer
from sealgate.keystore.operations import Operations
from sealgate.keystore.protocol import FrameBuffer, FrameTooLarge, write_frame
from sealgate.keystore.runtime import open_store, resolver, schedule
from sealgate.keystore.store import KeyStore
from sealgate.logsetup import configure_logging
from sealgate.workers import Workers, count as worker_count

log = logging.getLogger("sealgate.keystore")


def bind_unix(path: Path, mode: int, group: str) -> socket.socket:
    """Listen on `path` with `mode`, group `group` when that group exists."""
    if path.is_socket():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # left over from a process that is gone
        else:
            raise SystemExit(f"sealgate keystore: another keystore already listens on {path}")
        finally:
            probe.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    umask = os.umask(0o177)  # never reachable by others, not even between bind and chmod
    try:
        sock.bind(str(path))
    finally:
        os.umask(umask)
    try:
        os.chown(path, -1, grp.getgrnam(group).gr_gid)
    except KeyError:
        log.info("group %s does not exist; %s keeps group %s", group, path,
                 grp.getgrgid(path.stat().st_gid).gr_name)
    os.chmod(path, mode)
    sock.listen(128)
    return sock


class _Connection:
    def __init__(self, sock: socket.socket, limit: int) -> None:
        self.sock = sock
        self.frames = FrameBuffer(limit)


_ARMED = select.EPOLLIN | select.EPOLLONESHOT


class SocketService:
    """One worker process's socket: `readers` threads wait on one epoll, and the thread that
    picks up a request answers it, with no hand-over to another thread on the way.

    Connections are armed one-shot: the kernel gives each request to one thread, and a
    connection is not read again until its answer has gone out, so answers keep the order of
    requests. Two readers because an RSA signature (~1 ms) runs in OpenSSL without the GIL:
    while one thread signs, the other answers the cheap requests that would otherwise wait
    behind it. Remote bundle lookups (DNS and HTTP, up to seconds) go to a pool of threads, so
    they never take a reader away.
    """

    def __init__(self, sock: socket.socket, operations: Operations, limit: int,
                 housekeeping: tuple[float, Callable[[], None]] | None = None,
                 readers: int = 2, fetchers: int = 4) -> None:
        self._sock = sock
        self._operations = operations
        self._limit = limit
        self._housekeeping = housekeeping
        self._readers = readers
        self._stopping = threading.Event()
        self._epoll = select.epoll()
        self._connections: dict[int, _Connection] = {}
        self._fetchers = ThreadPoolExecutor(fetchers, thread_name_prefix="keystore-fetch")

    def serve_forever(self) -> None:
        # Several processes and threads wait on it; one gets each connection.
        self._sock.setblocking(False)
        self._epoll.register(self._sock.fileno(), select.EPOLLIN)
        others = [threading.Thread(target=self._read, name=f"keystore-reader-{n}", daemon=True)
                  for n in range(1, self._readers)]
        for thread in others:
            thread.start()
        self._read(self._housekeeping)
        for thread in others:
            thread.join()
        self._fetchers.shutdown(wait=False, cancel_futures=True)
        self._sock.close()
        self._epoll.close()

    def stop(self) -> None:
        self._stopping.set()

    def _read(self, housekeeping: tuple[float, Callable[[], None]] | None = None) -> None:
        """One reader: a single event at a time, so a request waiting behind one this thread
        is answering goes to the other reader."""
        listener = self._sock.fileno()
        next_housekeeping = time.monotonic() + (housekeeping[0] if housekeeping else 0)
        try:
            while not self._stopping.is_set():
                for fd, _ in self._epoll.poll(0.5, 1):
                    if fd == listener:
                        self._accept()
                    else:
                        self._receive(self._connections[fd])
                        self._operations.between_requests()
                if housekeeping and time.monotonic() >= next_housekeeping:
                    next_housekeeping = time.monotonic() + housekeeping[0]
                    housekeeping[1]()
        finally:
            self._stopping.set()  # one reader failing stops the worker; the parent replaces it

    def _accept(self) -> None:
        try:
            sock, _ = self._sock.accept()
        except OSError:
            return  # another process or reader took it
        sock.setblocking(True)
        # A client that stops reading its answers cannot stall everyone for long.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 2, 0))
        self._connections[sock.fileno()] = _Connection(sock, self._limit)
        self._epoll.register(sock.fileno(), _ARMED)

    def _close(self, conn: _Connection) -> None:
        fd = conn.sock.fileno()
        self._epoll.unregister(fd)
        del self._connections[fd]
        conn.sock.close()

    def _receive(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(1 << 16)
        except OSError:
            data = b""
        if not data:
            self._close(conn)
            return
        conn.frames.feed(data)
        self._answer(conn)

    def _answer(self, conn: _Connection) -> None:
        """Answer every complete request buffered on `conn`, or hand the next one to the pool;
        then arm the connection again (after which another thread may own it)."""
        while True:
            try:
                payload = conn.frames.next()
            except FrameTooLarge as exc:
                log.warning("keystore socket: request refused: %s", exc)
                _send(conn.sock, {"ok": False, "error": "too-large",
                                  "message": f"request refused: {exc} ([keystore] max_request); "
                                             f"connection closed"})
                self._close(conn)
                return
            if payload is None:
                self._epoll.modify(conn.sock.fileno(), _ARMED)
                return
            try:
                request = json.loads(payload)
            except ValueError as exc:
                response = {"ok": False, "error": "bad-request",
                            "message": f"request is not UTF-8 JSON: {exc}"}
            else:
                if _slow(request):
                    self._fetchers.submit(self._fetch, conn, request)
                    return
                response = self._operations.handle(request)
            if not _send(conn.sock, response):
                self._close(conn)
                return

    def _fetch(self, conn: _Connection, request: dict[str, object]) -> None:
        if _send(conn.sock, self._operations.handle(request)):
            self._answer(conn)
        else:
            self._close(conn)


def _send(sock: socket.socket, response: dict[str, object]) -> bool:
    try:
        write_frame(sock, response)
        return True
    except OSError:
        return False


def _slow(request: object) -> bool:
    """Operations that would hold up everyone if answered in the reading thread."""
    if not isinstance(request, dict):
        return False
    return request.get("op") == "bundle"


def maintain_all(store: KeyStore, config: Config, clock: Clock) -> None:
    for domain in store.domains():
        for change in lifecycle.maintain(store, domain, schedule(config), clock()):
            log.info("%s", change)


def _maintenance_loop(store: KeyStore, config: Config, clock: Clock, stop: threading.Event) -> None:
    while not stop.wait(config.keystore.maintenance_interval):
        try:
            maintain_all(store, config, clock)
        except Exception:  # the next round tries again; serving must go on
            log.exception("keystore maintenance failed")


def _worker(sock: socket.socket, config: Config, sealer: Sealer, dns: Resolver, clock: Clock) -> int:
    """One answering process: its own database connection, caches and loop."""
    settings = config.keystore
    store = KeyStore(Database(Path(settings.database)), sealer)
    operations = Operations(store, Discovery(store, dns, clock, settings.fetch_timeout,
                                             settings.max_bundle_size),
                            clock, settings.encryption_required, settings.tls_required)
    service = SocketService(sock, operations, settings.max_request,
                            housekeeping=(settings.maintenance_interval, operations.forget_unusable))
    signal.signal(signal.SIGTERM, lambda *_: service.stop())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    log.info("keystore worker %d ready, %d keys loaded", os.getpid(), operations.preload())
    service.serve_forever()
    return 0


def serve(config_path: Path | None) -> int:
    """Parent: checks, publishes, keeps the schedule and the directory; forks the workers
    that answer the socket (one per CPU by default: Python runs one thread at a time, and
    a process per CPU is the way to use them all, as Postfix does)."""
    config = load(config_path)
    configure_logging(config.log)
    clock = clock_from_env()
    settings = config.keystore
    try:
        store = open_store(config, with_master_key=True)
    except MasterKeyError as exc:
        log.error("%s", exc)
        print(f"sealgate keystore: {exc}", file=sys.stderr)
        return 2
    assert store.sealer is not None
    dns = resolver(config)
    maintain_all(store, config, clock)
    store.db.close()  # no SQLite connection may cross a fork
    socket_path = Path(settings.socket)
    sock = bind_unix(socket_path, int(settings.socket_mode, 8), settings.socket_group)
    sealer = store.sealer

    def answer() -> int:
        return _worker(sock, config, sealer, dns, clock)

    workers = Workers("keystore", answer, worker_count(settings.workers))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    public = directory.start(store, settings.directory_listen) if settings.directory_listen else None
    threading.Thread(target=_maintenance_loop, args=(store, config, clock, stop),
                     name="maintenance", daemon=True).start()
    log.info("keystore ready on %s (%d workers)%s, domains: %s", socket_path, len(workers.pids),
             f", directory on http://{settings.directory_listen}" if public else "",
             ", ".join(store.domains()) or "none yet")
    while not stop.wait(1.0):
        workers.replace_exited()
    workers.signal(signal.SIGTERM)
    workers.wait()
    socket_path.unlink(missing_ok=True)
    if public is not None:
        public.shutdown()
    log.info("keystore stopped")
    return 0
