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
import queue
import selectors
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
        self.watched = False  # registered with the selector (not while a worker has its request)


class SocketService:
    """One worker process's loop: one thread reads its connections and answers each request
    itself, except remote bundle lookups (they may fetch over the network), which go to a
    few threads.

    A thread per connection would cost a GIL hand-over per operation, dearer than most
    operations. A connection whose request is with a thread is not read until the answer
    has gone out, so answers keep the order of requests. Only the loop touches the selector.
    """

    def __init__(self, sock: socket.socket, operations: Operations, limit: int,
                 housekeeping: tuple[float, Callable[[], None]] | None = None,
                 workers: int = 4) -> None:
        self._sock = sock
        self._operations = operations
        self._limit = limit
        self._housekeeping = housekeeping
        self._next_housekeeping = time.monotonic() + (housekeeping[0] if housekeeping else 0)
        self._stopping = threading.Event()
        self._selector = selectors.DefaultSelector()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="keystore-op")
        self._returned: queue.SimpleQueue[_Connection] = queue.SimpleQueue()
        self._wake_reader, self._wake_writer = socket.socketpair()

    def serve_forever(self) -> None:
        self._sock.setblocking(False)  # several processes wait on it; one gets each connection
        self._selector.register(self._sock, selectors.EVENT_READ)
        self._selector.register(self._wake_reader, selectors.EVENT_READ)
        while not self._stopping.is_set():
            for key, _ in self._selector.select(timeout=0.5):
                if key.fileobj is self._sock:
                    self._accept()
                elif key.fileobj is self._wake_reader:
                    self._wake_reader.recv(4096)
                    while not self._returned.empty():
                        self._answer(self._returned.get())
                else:
                    self._receive(key.data)
            if self._housekeeping and time.monotonic() >= self._next_housekeeping:
                self._next_housekeeping = time.monotonic() + self._housekeeping[0]
                self._housekeeping[1]()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._sock.close()

    def stop(self) -> None:
        self._stopping.set()

    def _accept(self) -> None:
        try:
            sock, _ = self._sock.accept()
        except OSError:
            return
        sock.setblocking(True)
        # A client that stops reading its answers cannot stall everyone for long.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 2, 0))
        self._watch(_Connection(sock, self._limit))

    def _watch(self, conn: _Connection) -> None:
        self._selector.register(conn.sock, selectors.EVENT_READ, conn)
        conn.watched = True

    def _close(self, conn: _Connection) -> None:
        if conn.watched:
            self._selector.unregister(conn.sock)
            conn.watched = False
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
        """Answer every complete request buffered on `conn`, or hand the next one to a worker."""
        if conn.sock.fileno() == -1:
            return  # a worker found it broken and closed it
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
                if not conn.watched:
                    self._watch(conn)
                return
            try:
                request = json.loads(payload)
            except ValueError as exc:
                response = {"ok": False, "error": "bad-request",
                            "message": f"request is not UTF-8 JSON: {exc}"}
            else:
                if _slow(request):
                    if conn.watched:
                        self._selector.unregister(conn.sock)
                        conn.watched = False
                    self._pool.submit(self._work, conn, request)
                    return
                response = self._operations.handle(request)
            if not _send(conn.sock, response):
                self._close(conn)
                return

    def _work(self, conn: _Connection, request: dict[str, object]) -> None:
        if _send(conn.sock, self._operations.handle(request)):
            self._returned.put(conn)
            self._wake_writer.send(b"\0")
        else:
            conn.sock.close()  # not watched while with a worker: safe to close here


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
    service.serve_forever()
    return 0


def _spawn(target: Callable[[], int]) -> int:
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = target()
        except BaseException:  # never return into the parent's code
            log.exception("keystore worker failed")
        finally:
            os._exit(code)
    return pid


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

    workers = [_spawn(answer) for _ in range(settings.workers or os.cpu_count() or 1)]
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    public = directory.start(store, settings.directory_listen) if settings.directory_listen else None
    threading.Thread(target=_maintenance_loop, args=(store, config, clock, stop),
                     name="maintenance", daemon=True).start()
    log.info("keystore ready on %s (%d workers)%s, domains: %s", socket_path, len(workers),
             f", directory on http://{settings.directory_listen}" if public else "",
             ", ".join(store.domains()) or "none yet")
    while not stop.wait(1.0):
        for n, pid in enumerate(workers):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                log.error("keystore worker %d exited (%s); starting another", pid,
                          f"status {os.waitstatus_to_exitcode(status)}" if os.WIFEXITED(status)
                          else f"signal {os.WTERMSIG(status)}")
                workers[n] = _spawn(answer)
    for pid in workers:
        os.kill(pid, signal.SIGTERM)
    for pid in workers:
        os.waitpid(pid, 0)
    socket_path.unlink(missing_ok=True)
    if public is not None:
        public.shutdown()
    log.info("keystore stopped")
    return 0
