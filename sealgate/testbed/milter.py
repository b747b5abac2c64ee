"""Run the real `sealgate milter` daemon as a subprocess (tests, demo, benchmarks)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from sealgate.config.render import toml_value
from sealgate.testbed.process import Daemon


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
        return self.socket_path.is_socket()

    @property
    def address(self) -> str:
        return f"unix:{self.socket_path}"
