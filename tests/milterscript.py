"""Drive the daemon with Debian's miltertest: one incoming message, then print what came back."""

from __future__ import annotations

import subprocess
from pathlib import Path

TEMPLATE = """
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
  print("SENT headers")
  io.stdout:flush()
  mt.sleep({pause})
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


def script(path: Path, socket: Path, ip: str, expected: str = "", pause: int = 0) -> Path:
    path.write_text(TEMPLATE.replace("{socket}", str(socket)).replace("{ip}", ip)
                    .replace("{expected}", expected).replace("{pause}", str(pause)))
    return path


def run(path: Path, socket: Path, ip: str, expected: str = "") -> str:
    done = subprocess.run(["miltertest", "-s", str(script(path, socket, ip, expected))],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout
