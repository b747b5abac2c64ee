"""Forked worker processes for the daemons (milter, keystore).

Python runs one thread at a time, so a process per CPU is how a daemon uses
them all, as Postfix does: the parent opens the socket, forks the workers
that answer it, replaces one that exits unasked and passes signals on. A
worker dies with its parent, so a killed parent leaves no orphans holding the
socket.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
from typing import Callable

log = logging.getLogger("sealgate")

PR_SET_PDEATHSIG = 1


def cpus() -> list[int]:
    """The CPUs this process may run on (a cpuset or taskset may allow fewer than exist)."""
    return sorted(os.sched_getaffinity(0))


def count(configured: int) -> int:
    """The configured number of workers; 0 means one per CPU this process may use."""
    return configured or len(cpus()) or 1


def batch_scheduling(name: str) -> None:
    """Put this thread, and every thread and process it starts from now on, under Linux's
    SCHED_BATCH policy: a thread woken by input then waits for the running one's time slice
    instead of preempting it. In a worker the running thread mostly holds Python's interpreter
    lock, so a woken one preempting it would only find the lock taken and sleep again (two
    context switches for nothing; a quarter fewer of them a message, bench/README.md). A policy
    other than the default one was chosen by someone (a unit's CPUSchedulingPolicy=, chrt) and
    is kept."""
    try:
        if os.sched_getscheduler(0) == os.SCHED_OTHER:
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except OSError as exc:  # a seccomp filter or an unusual kernel: run as before
        log.warning("%s: SCHED_BATCH refused (%s); scheduled as usual", name, exc.strerror)


def _die_with_parent(parent: int) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(0)


def _pin(name: str, cpu: int) -> None:
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError as exc:  # the CPU went offline or out of our cpuset since start
        log.warning("%s worker %d not kept on CPU %d: %s", name, os.getpid(), cpu, exc.strerror)


def spawn(name: str, target: Callable[[], int], cpu: int | None = None) -> int:
    """Fork a worker running `target` (on `cpu` only, when given); its return value is the
    worker's exit status."""
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            _die_with_parent(parent)
            if cpu is not None:  # before any thread starts: threads inherit it
                _pin(name, cpu)
            code = target()
        except BaseException:  # never return into the parent's code
            log.exception("%s worker failed", name)
        finally:
            logging.shutdown()
            os._exit(code)
    return pid


class Workers:
    """`size` forked copies of one worker function.

    Pinned, worker n runs on the n-th CPU only (round robin when there are more workers than
    CPUs), as does the worker that replaces it: each keeps its interpreter's code and data warm
    in one CPU's caches instead of following the scheduler from CPU to CPU between the MTA's
    processes (~9 % less CPU a message for the milter, bench/README.md)."""

    def __init__(self, name: str, target: Callable[[], int], size: int, pin: bool = False) -> None:
        self.name = name
        self.target = target
        self.cpus = cpus() if pin else []
        self.pids = [spawn(name, target, self._cpu(n)) for n in range(size)]

    def _cpu(self, n: int) -> int | None:
        return self.cpus[n % len(self.cpus)] if self.cpus else None

    def replace_exited(self) -> None:
        """Start a new worker for each that exited (call while the daemon is not stopping)."""
        for n, pid in enumerate(self.pids):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                log.error("%s worker %d exited (%s); starting another", self.name, pid,
                          f"status {os.waitstatus_to_exitcode(status)}" if os.WIFEXITED(status)
                          else f"signal {os.WTERMSIG(status)}")
                self.pids[n] = spawn(self.name, self.target, self._cpu(n))

    def signal(self, signum: int) -> None:
        for pid in self.pids:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:  # exited, not yet reaped
                pass

    def wait(self) -> int:
        """Wait for every worker to exit; 0 when all exited with status 0."""
        worst = 0
        for pid in self.pids:
            _, status = os.waitpid(pid, 0)
            worst = worst or os.waitstatus_to_exitcode(status)
        return worst
