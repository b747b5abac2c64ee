"""Debian's miltertest drives the real daemon over its unix socket."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

import milterscript
from conftest import needs_root_and_postfix
from sealgate.testbed.milter import MilterProcess, write_config
from sealgate.testbed.zones import txt

pytestmark = needs_root_and_postfix()

ZONE = txt("a.test", "v=spf1 ip4:192.0.2.0/24 -all") + txt("_dmarc.a.test", "v=DMARC1; p=reject")

@pytest.fixture(scope="module")
def milter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilterProcess]:
    tmp_path = tmp_path_factory.mktemp("miltertest")
    zone = tmp_path / "t.zone"
    zone.write_text(ZONE)
    socket = tmp_path / "milter.sock"
    conf = write_config(tmp_path / "m.conf", {
        "milter": {"socket": f"unix:{socket}", "internal_hosts": [], "use_keystore": False},
        "dns": {"backend": "zone", "zone_files": [str(zone)]},
        "verify": {"authserv_id": "mx.test"}})
    with MilterProcess(conf, socket, tmp_path / "milter.log") as proc:
        yield proc


def run_script(tmp_path: Path, milter: MilterProcess, ip: str, expected: str) -> str:
    return milterscript.run(tmp_path / "t.lua", milter.socket_path, ip, expected)


def test_pass_adds_our_header_and_removes_the_forged_one(tmp_path: Path,
                                                         milter: MilterProcess) -> None:
    expected = (" mx.test; x-tls=none; spf=none smtp.helo=mx.a.test; spf=pass smtp.mailfrom=a.test; "
                "dkim=none reason=\"message not signed\"; "
                "dmarc=pass (p=reject) header.from=a.test policy.dmarc=reject")
    out = run_script(tmp_path, milter, "192.0.2.1", expected)
    assert "REPLY continue" in out
    assert "INSERTED expected header" in out
    assert "DELETED forged" in out
    assert "queue_id=4F00D client=mx.a.test[192.0.2.1] direction=incoming" in milter.log_text()


def test_dmarc_reject_is_refused_and_daemon_keeps_serving(tmp_path: Path,
                                                         milter: MilterProcess) -> None:
    out = run_script(tmp_path, milter, "198.51.100.7", "unused")
    assert "REPLY replycode" in out
    assert "action=reject" in milter.log_text()
    assert "REPLY continue" in run_script(tmp_path, milter, "192.0.2.1", "unused")
    assert milter.alive()
