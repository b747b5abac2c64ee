"""Debian's miltertest drives the real daemon over its unix socket."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from conftest import needs_root_and_postfix
from sealgate.testbed.milter import MilterProcess, write_config
from zones import txt

pytestmark = needs_root_and_postfix()

ZONE = txt("a.test", "v=spf1 ip4:192.0.2.0/24 -all") + txt("_dmarc.a.test", "v=DMARC1; p=reject")

SCRIPT = """
local ok, err = pcall(function()
  local conn = mt.connect("unix:{socket}")
  assert(conn, "connect failed")
  assert(mt.conninfo(conn, "mx.a.test", "{ip}") == nil)
  assert(mt.helo(conn, "mx.a.test") == nil)
  mt.macro(conn, SMFIC_MAIL, "i", "4F00D")
  assert(mt.mailfrom(conn, "<alice@a.test>") == nil)
  assert(mt.rcptto(conn, "<bob@b.test>") == nil)
  assert(mt.header(conn, "Authentication-Results", " mx.test; dmarc=pass") == nil)
  assert(mt.header(conn, "From", " Alice <alice@a.test>") == nil)
  assert(mt.header(conn, "Subject", " hello") == nil)
  assert(mt.eoh(conn) == nil)
  assert(mt.bodystring(conn, "hello\\r\\n") == nil)
  assert(mt.eom(conn) == nil)
  local reply = mt.getreply(conn)
  if reply == SMFIR_CONTINUE then print("REPLY continue")
  elseif reply == SMFIR_REPLYCODE then print("REPLY replycode")
  else print("REPLY other " .. tostring(reply)) end
  if mt.eom_check(conn, MT_HDRINSERT, "Authentication-Results", [[{expected}]]) then
    print("INSERTED expected header")
  end
  if mt.eom_check(conn, MT_HDRCHANGE, "Authentication-Results", "") then print("DELETED forged") end
  mt.disconnect(conn)
end)
if not ok then print("LUAERROR " .. tostring(err)); os.exit(1) end
"""


@pytest.fixture(scope="module")
def milter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilterProcess]:
    tmp_path = tmp_path_factory.mktemp("miltertest")
    zone = tmp_path / "t.zone"
    zone.write_text(ZONE)
    socket = tmp_path / "milter.sock"
    conf = write_config(tmp_path / "m.conf", {
        "milter": {"socket": f"unix:{socket}", "internal_hosts": []},
        "dns": {"backend": "zone", "zone_files": [str(zone)]},
        "verify": {"authserv_id": "mx.test"}})
    with MilterProcess(conf, socket, tmp_path / "milter.log") as proc:
        yield proc


def run_script(tmp_path: Path, milter: MilterProcess, ip: str, expected: str) -> str:
    script = tmp_path / "t.lua"
    script.write_text(SCRIPT.replace("{socket}", str(milter.socket_path)).replace("{ip}", ip)
                      .replace("{expected}", expected))
    done = subprocess.run(["miltertest", "-s", str(script)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_pass_adds_our_header_and_removes_the_forged_one(tmp_path: Path,
                                                         milter: MilterProcess) -> None:
    expected = (" mx.test; spf=none smtp.helo=mx.a.test; spf=pass smtp.mailfrom=a.test; "
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
