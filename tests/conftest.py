"""Shared fixtures: config files, zone files, and the public corpora beside the project."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest

from sealgate.config import Config, load_text
from sealgate.testbed.milter import write_config

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ROOT.parent / "shared" / "corpora"


def needs_root_and_postfix() -> pytest.MarkDecorator:
    missing = [tool for tool in ("postfix", "postconf", "swaks", "miltertest")
               if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists()]
    reason = "needs root" if os.geteuid() != 0 else f"missing {', '.join(missing)}" if missing else ""
    return pytest.mark.skipif(bool(reason), reason=reason)


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Config]:
    """make_config(zone="...records...", verify={...}) -> Config on the zone-file backend."""

    def make(zone: str = "", **sections: dict[str, Any]) -> Config:
        zone_path = tmp_path / "test.zone"
        zone_path.write_text(zone)
        sections.setdefault("dns", {}).update(backend="zone", zone_files=[str(zone_path)])
        sections.setdefault("verify", {}).setdefault("authserv_id", "mx.test")
        path = write_config(tmp_path / "sealgate.conf", sections)
        return load_text(path.read_text(), str(path))

    return make
