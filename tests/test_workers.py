"""Worker placement and scheduling: a CPU that cannot be had costs the pinning, never the
worker; SCHED_BATCH reaches later threads, and a policy someone chose is kept."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from sealgate import workers


def test_a_cpu_that_cannot_be_had_leaves_the_worker_unpinned(
        caplog: pytest.LogCaptureFixture) -> None:
    before = os.sched_getaffinity(0)
    log = logging.getLogger("sealgate")
    log.addHandler(caplog.handler)  # the CLI's logging set-up may have stopped propagation
    try:
        with caplog.at_level(logging.WARNING, logger="sealgate"):
            workers._pin("milter", 1 << 20)  # no such CPU
    finally:
        log.removeHandler(caplog.handler)
    assert os.sched_getaffinity(0) == before
    assert f"milter worker {os.getpid()} not kept on CPU {1 << 20}: Invalid argument" in caplog.text


# In a process of its own: the test runner keeps its policy.
BATCH_THEN_THREAD = """
import os, sys, threading
from sealgate import workers
if sys.argv[1] == "idle":
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
workers.batch_scheduling("test")
seen = []
thread = threading.Thread(target=lambda: seen.append(os.sched_getscheduler(0)))
thread.start()
thread.join()
print(os.sched_getscheduler(0), seen[0])
"""


@pytest.mark.parametrize("start, policy", [("default", os.SCHED_BATCH), ("idle", os.SCHED_IDLE)])
def test_batch_scheduling_reaches_later_threads_and_keeps_a_chosen_policy(start: str,
                                                                          policy: int) -> None:
    if os.sched_getscheduler(0) != os.SCHED_OTHER:
        pytest.skip("the runner itself is not under the default policy")
    out = subprocess.run([sys.executable, "-c", BATCH_THEN_THREAD, start], capture_output=True,
                         text=True, check=True).stdout
    assert out.split() == [str(policy), str(policy)]
