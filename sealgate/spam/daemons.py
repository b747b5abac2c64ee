"""Real spamd and rspamd on loopback, for the tests and bench/spam_accuracy (Debian packages).

Both run offline: spamd with local tests only (-L, no DNS or network
rules, no Bayes, no auto-learning), rspamd with its resolver pointed at a
closed loopback port so every DNS check fails at once instead of timing
out against the unreachable system resolver. Each is started in the
foreground as our child, and stopped by its own pid.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
from pathlib import Path
from typing import Self

from sealgate.testbed.ports import LOOPBACK, free_port
from sealgate.testbed.process import Daemon

SPAMD = "/usr/sbin/spamd"
RSPAMD = "/usr/bin/rspamd"
# rspamd compiles its Hyperscan regexp databases at first start (~20 s here) and caches them in
# its DBDIR; a cache kept across runs makes later starts take well under a second.
RSPAMD_CACHE = Path(f"/var/tmp/sealgate-rspamd-cache-{os.geteuid()}")


def missing(program: str, package: str) -> str:
    """Why a daemon cannot run here, or "" when it can."""
    return "" if Path(program).exists() else f"{program} not installed (apt-get install {package})"


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


class _Daemon(Daemon):
    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir / f"{self.name}.out")
        self.workdir = workdir
        self.port = 0

    def start(self, timeout: float = 120) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        return super().start(timeout)

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.workdir.glob("*.log"))
                       + [self.log_path] if p.exists())


class Spamd(_Daemon):
    """SpamAssassin's spamd: local rules only, two children."""

    name = "spamd"

    def __init__(self, workdir: Path, children: int = 2, bayes_path: Path | None = None,
                 extra: tuple[str, ...] = ()) -> None:
        """`bayes_path`: a Bayes database made by `sa-learn --dbpath`, used read-only;
        `extra`: more --listen addresses (a unix socket path) or options."""
        super().__init__(workdir)
        self.children = children
        self.bayes_path = bayes_path
        self.extra = extra

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def command(self) -> list[str]:
        home = self.workdir / "home"
        home.mkdir(exist_ok=True)
        cmd = [SPAMD, "-L", "-x", "-i", self.address, "-A", LOOPBACK, "-m", str(self.children),
               "--min-children", str(self.children), "-H", str(home),
               "-s", str(self.workdir / "spamd.log"), "-r", str(self.workdir / "spamd.pid"),
               "--cf", "bayes_auto_learn 0"]
        if self.bayes_path is None:
            cmd += ["--cf", "use_bayes 0"]
        else:
            # A model of a few hundred messages: SpamAssassin's floor is 200 of each.
            cmd += ["--cf", "use_bayes 1", "--cf", f"bayes_path {self.bayes_path}",
                    "--cf", "bayes_min_ham_num 50", "--cf", "bayes_min_spam_num 50"]
        if os.geteuid() == 0:
            cmd += ["-u", "nobody"]
            for path in [home] + ([self.bayes_path.parent] if self.bayes_path else []):
                for item in [path, *path.rglob("*")]:
                    shutil.chown(item, "nobody")
        return cmd + list(self.extra)

    def ready(self) -> bool:
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=1) as sock:
                sock.sendall(b"PING SPAMC/1.5\r\n\r\n")
                return b"PONG" in sock.recv(100)
        except OSError:
            return False


class Rspamd(_Daemon):
    """rspamd with one normal worker (the /checkv2 API) and no controller or proxy."""

    name = "rspamd"

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def _config(self) -> Path:
        conf = self.workdir / "rspamd.conf"
        conf.write_text(f"""
.include "$CONFDIR/common.conf"
options {{
    pidfile = "$RUNDIR/rspamd.pid";
    .include "$CONFDIR/options.inc"
    dns {{ nameserver = ["127.0.0.1:1"]; timeout = 0.1s; retransmits = 1; }}
}}
logging {{ type = "file"; filename = "$LOGDIR/rspamd.log"; level = "info"; }}
worker "normal" {{
    bind_socket = "{LOOPBACK}:{self.port}";
    .include "$CONFDIR/worker-normal.inc"
    count = 1;
}}
""")
        return conf

    def command(self) -> list[str]:
        local = self.workdir / "local"
        (local / "local.d").mkdir(parents=True, exist_ok=True)
        RSPAMD_CACHE.mkdir(parents=True, exist_ok=True)
        cmd = [RSPAMD, "-f", "-c", str(self._config()), f"--var=LOCAL_CONFDIR={local}",
               f"--var=DBDIR={RSPAMD_CACHE}", f"--var=RUNDIR={self.workdir}",
               f"--var=LOGDIR={self.workdir}"]
        if os.geteuid() == 0:
            user = "_rspamd" if _user_exists("_rspamd") else "nobody"
            for path in (self.workdir, RSPAMD_CACHE):
                shutil.chown(path, user)
            cmd += ["-u", user, "-g", user if user == "_rspamd" else "nogroup"]
        return cmd

    def ready(self) -> bool:
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=1) as sock:
                sock.sendall(b"GET /ping HTTP/1.0\r\n\r\n")
                return b"pong" in sock.recv(1000)
        except OSError:
            return False
