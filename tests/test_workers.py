"""Worker placement: a CPU that cannot be had costs the pinning, never the worker."""

from __future__ import annotations

import logging
import os

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
