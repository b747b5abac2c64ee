"""Run the real `sealgate milter` daemon as a subprocess (tests, demo, benchmarks)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sealgate.config.render import toml_value


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    """A TOML config file from {section: {key: value}}."""
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


class MilterProcess:
    """`sealgate milter --config FILE`, started and stopped the way an init system would."""

    def __init__(self, config: Path, socket_path: Path, log_path: Path) -> None:
        self.config = config
        self.socket_path = socket_path
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15) -> "MilterProcess":
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "sealgate", "milter",
                                      "--config", str(self.config)],
                                     stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not self.socket_path.is_socket():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sealgate milter did not start:\n{self.log_text()}")
            time.sleep(0.05)
        return self

    @property
    def address(self) -> str:
        return f"unix:{self.socket_path}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM and wait for the pid: libmilter takes a few seconds to let go of its socket."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> "MilterProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
