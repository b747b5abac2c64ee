"""The daemon's life: SIGHUP reloads (and refuses a bad file), SIGTERM drains open connections,
an inet socket gets TCP_NODELAY, and a big body is spooled to disk."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

import milterscript
from conftest import needs_root_and_postfix
from sealgate.message import Message
from sealgate.testbed.milter import MilterProcess, write_config
from sealgate.testbed.zones import txt

T = TypeVar("T")

pytestmark = needs_root_and_postfix()

ZONE = txt("a.test", "v=spf1 ip4:192.0.2.0/24 -all")


def config(tmp_path: Path, authserv_id: str, **milter: object) -> Path:
    zone = tmp_path / "t.zone"
    zone.write_text(ZONE)
    return write_config(tmp_path / "m.conf", {
        "milter": {"socket": f"unix:{tmp_path}/milter.sock", "internal_hosts": [],
                   "use_keystore": False, **milter},
        "dns": {"backend": "zone", "zone_files": [str(zone)]},
        "verify": {"authserv_id": authserv_id}})


def wait_for(predicate, timeout: float = 10) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("workers", [1, 2])
def test_sighup_reloads_and_a_bad_file_keeps_the_running_config(tmp_path: Path, workers: int) -> None:
    conf = config(tmp_path, "mx.one", workers=workers)
    sock = tmp_path / "milter.sock"
    with MilterProcess(conf, sock, tmp_path / "milter.log") as milter:
        assert len(milter.workers()) == workers
        assert "INSERTED" in milterscript.run(tmp_path / "a.lua", sock, "192.0.2.1",
                                              milterscript_expected("mx.one"))
        config(tmp_path, "mx.two", workers=workers + 1)
        milter.reload()
        assert milter.log_text().count("configuration reloaded") == workers
        assert milter.log_text().count("[milter] workers changed; takes effect at restart") == workers
        assert len(milter.workers()) == workers
        for n in range(3 * workers):  # whichever worker answers
            assert "INSERTED" in milterscript.run(tmp_path / f"b{n}.lua", sock, "192.0.2.1",
                                                  milterscript_expected("mx.two"))
        conf.write_text("[verify]\nspf = 3\n")
        milter.reload()
        assert milter.log_text().count("reload refused") == workers
        assert "[verify] spf = 3: expected true or false" in milter.log_text()
        for n in range(3 * workers):
            assert "INSERTED" in milterscript.run(tmp_path / f"c{n}.lua", sock, "192.0.2.1",
                                                  milterscript_expected("mx.two"))


def milterscript_expected(authserv_id: str) -> str:
    return (f" {authserv_id}; x-tls=none; spf=none smtp.helo=mx.a.test; spf=pass smtp.mailfrom=a.test; "
            'dkim=none reason="message not signed"; dmarc=none reason="no DMARC record" '
            "header.from=a.test")


def mid_transaction(tmp_path: Path, workers: int, pause: int
                    ) -> tuple[MilterProcess, subprocess.Popen[str]]:
    """A running milter, and a miltertest client that has sent the headers of a message and
    waits `pause` seconds before its body."""
    sock = tmp_path / "milter.sock"
    milter = MilterProcess(config(tmp_path, "mx.test", workers=workers), sock,
                           tmp_path / "milter.log").start()
    lua = milterscript.script(tmp_path / "slow.lua", sock, "192.0.2.1", pause=pause)
    client = subprocess.Popen(["miltertest", "-s", str(lua)], stdout=subprocess.PIPE, text=True)
    assert client.stdout is not None
    assert client.stdout.readline().strip() == "SENT headers"
    return milter, client


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_lets_an_open_transaction_finish(tmp_path: Path, workers: int) -> None:
    milter, client = mid_transaction(tmp_path, workers, pause=2)
    assert client.stdout is not None
    milter.signal(signal.SIGTERM)
    for pid in set(milter.workers()) - {milter.proc.pid}:  # type: ignore[union-attr]
        os.kill(pid, signal.SIGTERM)  # as a SIGTERM to the whole process group: still a drain
    assert wait_for(lambda: not milter.socket_path.exists())  # new connections refused at once
    rest = client.stdout.read()
    assert client.wait(30) == 0
    assert "REPLY continue" in rest
    assert milter.proc is not None and milter.proc.wait(30) == 0  # exits by itself once drained
    assert "draining open ones" in milter.log_text()
    assert "sealgate milter stopped" in milter.log_text()
    assert "stopping now" not in milter.log_text()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_second_sigterm_stops_at_once(tmp_path: Path, workers: int) -> None:
    milter, client = mid_transaction(tmp_path, workers, pause=20)
    try:
        milter.signal(signal.SIGTERM)
        assert wait_for(lambda: "draining open ones" in milter.log_text())
        milter.signal(signal.SIGTERM)
        assert milter.proc is not None and milter.proc.wait(10) == 0  # not the 20 s pause
        assert "stopping now" in milter.log_text()
    finally:
        client.kill()
        client.wait()


def test_a_dead_worker_is_replaced_and_workers_die_with_the_parent(tmp_path: Path) -> None:
    sock = tmp_path / "milter.sock"
    milter = MilterProcess(config(tmp_path, "mx.test", workers=2), sock,
                           tmp_path / "milter.log").start()
    try:
        first = milter.workers()
        assert len(first) == 2 and milter.proc is not None and milter.proc.pid not in first
        os.kill(first[0], signal.SIGKILL)
        assert wait_for(lambda: len(set(milter.workers()) - set(first)) == 1)
        assert f"milter worker {first[0]} exited (signal 9); starting another" in milter.log_text()
        for n in range(4):
            assert "INSERTED" in milterscript.run(tmp_path / f"a{n}.lua", sock, "192.0.2.1",
                                                  milterscript_expected("mx.test"))
        now = milter.workers()
    finally:
        milter.proc.kill()  # type: ignore[union-attr]
        milter.proc.wait()  # type: ignore[union-attr]
    assert wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in now))


def of_threads(pid: int, ask: Callable[[int], T]) -> list[T]:
    """`ask` of every thread of a process (one that ends meanwhile is left out)."""
    answers = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            answers.append(ask(int(tid)))
        except ProcessLookupError:
            continue
    return answers


def cpus_of(pid: int) -> list[tuple[int, ...]]:
    """The CPU set of every thread of a process."""
    return of_threads(pid, lambda tid: tuple(sorted(os.sched_getaffinity(tid))))


def policies_of(pid: int) -> set[int]:
    """The scheduling policies of a process's threads."""
    return set(of_threads(pid, os.sched_getscheduler))


@pytest.mark.parametrize("tuned", [True, False])
def test_worker_placement_and_policy_and_a_replacement_keeps_both(tmp_path: Path,
                                                                  tuned: bool) -> None:
    allowed = tuple(sorted(os.sched_getaffinity(0)))
    slots = [(allowed[0],), (allowed[1 % len(allowed)],)] if tuned else [allowed, allowed]
    policy = os.SCHED_BATCH if tuned else os.sched_getscheduler(0)  # untuned: what it inherits
    sock = tmp_path / "milter.sock"
    milter = MilterProcess(config(tmp_path, "mx.test", workers=2, pin_workers=tuned,
                                  batch_scheduling=tuned), sock, tmp_path / "milter.log").start()
    try:
        for n in range(4):  # libmilter's connection threads exist now, and inherit both
            assert "INSERTED" in milterscript.run(tmp_path / f"a{n}.lua", sock, "192.0.2.1",
                                                  milterscript_expected("mx.test"))
        placed = {pid: cpus_of(pid) for pid in milter.workers()}
        assert all(len(set(threads)) == 1 for threads in placed.values())
        assert sorted(threads[0] for threads in placed.values()) == sorted(slots)
        parent = milter.proc.pid  # type: ignore[union-attr]
        assert all(policies_of(pid) == {policy} for pid in [parent, *placed])
        first = next(pid for pid, threads in placed.items() if threads[0] == slots[0])
        os.kill(first, signal.SIGKILL)
        assert wait_for(lambda: first not in milter.workers() and len(milter.workers()) == 2)
        assert sorted(cpus_of(pid)[0] for pid in milter.workers()) == sorted(slots)
        assert all(policies_of(pid) == {policy} for pid in milter.workers())
    finally:
        milter.stop()


def test_inet_socket_sets_tcp_nodelay(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conf = config(tmp_path, "mx.test")
    conf.write_text(conf.read_text().replace(f'unix:{tmp_path}/milter.sock',
                                             f"inet:{port}@127.0.0.1"))
    proc = subprocess.Popen([sys.executable, "-m", "sealgate", "milter", "--config", str(conf)],
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        assert "listening on inet:" in proc.stderr.readline()
        with socket.create_connection(("127.0.0.1", port)) as conn:
            # Linux: accepted sockets inherit TCP_NODELAY from the listener; ask via ss.
            time.sleep(0.2)
            listing = subprocess.run(["ss", "-tnlpi", f"sport = :{port}"], capture_output=True,
                                     text=True).stdout
            assert conn and str(port) in listing
        nodelay = subprocess.run(
            [sys.executable, "-c", NODELAY_CHECK, str(proc.pid), str(port)],
            capture_output=True, text=True)
        assert nodelay.stdout.strip() == "1", nodelay.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


# Reads TCP_NODELAY off the daemon's own listening socket through pidfd_getfd.
NODELAY_CHECK = """
import os, socket, sys
pid, port = int(sys.argv[1]), int(sys.argv[2])
pidfd = os.pidfd_open(pid)
for name in os.listdir(f"/proc/{pid}/fd"):
    target = os.readlink(f"/proc/{pid}/fd/{name}")
    if not target.startswith("socket:"):
        continue
    fd = __import__("ctypes").CDLL(None, use_errno=True).syscall(438, pidfd, int(name), 0)
    if fd < 0:
        continue
    s = socket.socket(fileno=fd)
    try:
        if s.family == socket.AF_INET and s.type == socket.SOCK_STREAM and s.getsockname()[1] == port:
            print(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) and 1)
            break
    finally:
        s.close()
"""


def test_big_body_is_spooled_to_a_file(tmp_path: Path) -> None:
    msg = Message.spooling(threshold=1024, spool_dir=str(tmp_path))
    msg.body.write(b"x" * 4096)
    assert list(tmp_path.iterdir()) or msg.body._rolled  # type: ignore[attr-defined]
    assert msg.body._rolled  # type: ignore[attr-defined]
    small = Message.spooling(threshold=1 << 20)
    small.body.write(b"x" * 4096)
    assert not small.body._rolled  # type: ignore[attr-defined]
