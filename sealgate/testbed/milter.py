"""Run the real `sealgate milter` daemon as a subprocess (tests, demo, benchmarks)."""

from __future__ import annotations

import re
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable

from sealgate.config.render import toml_value
from sealgate.testbed.process import Daemon, DaemonError, children_by_parent


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    """A TOML config file from {section: {key: value}}."""
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


class MilterProcess(Daemon):
    """`sealgate milter --config FILE`, started and stopped the way an init system would."""

    name = "sealgate milter"

    def __init__(self, config: Path, socket_path: Path, log_path: Path) -> None:
        super().__init__(log_path)
        self.config = config
        self.socket_path = socket_path

    def command(self) -> list[str]:
        return [sys.executable, "-m", "sealgate", "milter", "--config", str(self.config)]

    def ready(self) -> bool:
        """Listening, with every worker forked."""
        if not self.socket_path.is_socket() or (workers := worker_count(self.log_text())) is None:
            return False
        assert self.proc is not None
        return workers == 1 or len(child_pids(self.proc.pid)) >= workers

    @property
    def address(self) -> str:
        return f"unix:{self.socket_path}"

    def workers(self) -> list[int]:
        """Pids of the processes answering the socket: its forked workers, or itself."""
        assert self.proc is not None
        return child_pids(self.proc.pid) or [self.proc.pid]

    def reload(self, timeout: float = 20) -> None:
        """SIGHUP; returns once every worker has reloaded or refused the new file."""
        reload_and_wait(lambda: self.signal(signal.SIGHUP), self.log_text, timeout)


def reload_and_wait(send: Callable[[], None], log_text: Callable[[], str],
                    timeout: float = 20) -> None:
    """Have a running milter reload (`send`: SIGHUP, however the caller delivers it) and return
    once each of its workers has logged that it reloaded or refused the new file."""
    text = log_text()
    expected = reload_lines(text) + (worker_count(text) or 1)
    send()
    deadline = time.monotonic() + timeout
    while reload_lines(log_text()) < expected:
        if time.monotonic() > deadline:
            raise DaemonError(f"milter did not reload:\n{log_text()[-2000:]}")
        time.sleep(0.05)


def worker_count(log_text: str) -> int | None:
    """The worker count of the daemon's start line ("listening on ... (config ..., N workers)"),
    1 for a tree that starts no workers (bench/compare runs older ones), None before the line."""
    found = re.findall(r"listening on .*?(?:, (\d+) workers?\))?$", log_text, re.MULTILINE)
    return int(found[-1] or 1) if found else None


def reload_lines(log_text: str) -> int:
    """One line a worker and SIGHUP: either reloaded or refused."""
    return log_text.count("configuration reloaded") + log_text.count("reload refused")


def child_pids(pid: int) -> list[int]:
    return children_by_parent().get(pid, [])
