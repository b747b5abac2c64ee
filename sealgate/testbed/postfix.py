"""A private Postfix instance (and an smtp-sink) on loopback, for tests,
the demo and benchmarks.

Postfix refuses to run as a plain user, so this needs root. The instance
lives beside the system one: its own config_directory, queue_directory and
data_directory under a work directory, its own listener on 127.0.0.1:PORT,
every service unchrooted, logging to WORKDIR/postfix.log. Every Postfix
command is run with `-c WORKDIR/etc`, so it only ever touches this
instance. See /work/shared/FIELD-NOTES.md for the measurements behind the
defaults.

Layout under `workdir`::

    etc/           main.cf, master.cf (config_directory)
    queue/         queue_directory (master.pid lives in queue/pid/)
    data/          data_directory (master.lock), owned by postfix
    mail/Maildir/  maildir mode: every recipient of `domain` lands here
    postfix.log    maillog_file
"""

from __future__ import annotations

import atexit
import grp
import os
import pwd
import re
import signal
import stat
import subprocess
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Self

from .ports import LOOPBACK, free_port, port_accepts, smtp_greets, wait_until

POSTFIX = "/usr/sbin/postfix"
POSTCONF = "/usr/sbin/postconf"
SMTP_SINK = "/usr/sbin/smtp-sink"
POSTFIX_FILES = "/etc/postfix/postfix-files"  # in meta_directory, shared by all instances

Delivery = Literal["maildir", "relay"]

# Queues that hold mail Postfix still has to deliver ("hold" is excluded:
# mail there never leaves by itself, so waiting for it would only time out).
_LIVE_QUEUES = ("maildrop", "incoming", "active", "deferred")

# Longest path Postfix must bind a unix socket to (queue/private/...);
# sockaddr_un allows 108 bytes including the terminating NUL.
_UNIX_PATH_MAX = 107

# Every service Postfix needs for SMTP in, relay out and virtual delivery,
# none chrooted (a chroot would need copies of /etc files inside it). The
# system master.cf is not copied: an admin's edits there must not change
# what the tests run.
_MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command + args
{listen} inet n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class TestbedError(RuntimeError):
    """A test server could not be started, stopped or did not deliver."""

    __test__ = False  # not a pytest test class, despite the name


def require_root() -> None:
    """Postfix's master, smtp-sink -u and virtual(8) uid switching need root."""
    if os.geteuid() != 0:
        raise TestbedError("a private Postfix instance needs root (Postfix refuses other users)")


def postfix_available() -> bool:
    """True when the Postfix programs this module runs are installed."""
    return all(os.access(p, os.X_OK) for p in (POSTFIX, POSTCONF))


def make_traversable(path: Path) -> None:
    """Let other users (postfix, nobody) reach `path`: add o+x on it and its parents.

    Postfix daemons run as user `postfix` and chdir into the queue
    directory; virtual(8) writes the Maildir as another uid. A work
    directory under a 0700 parent (pytest's tmp_path, mkdtemp) is
    unreachable for them and Postfix fails with obscure "permission
    denied" errors. Only search permission is added, never read: names
    inside the parents stay unlistable.
    """
    for directory in [path, *path.parents]:
        try:
            mode = directory.stat().st_mode
        except FileNotFoundError:
            continue
        if not mode & stat.S_IXOTH:
            os.chmod(directory, stat.S_IMODE(mode) | stat.S_IXOTH)


def _pid_alive(pid: int) -> bool:
    """True while `pid` runs. A zombie counts as gone.

    Postfix's master is daemonized and reparented to PID 1; an init that
    does not reap would leave a zombie that kill(pid, 0) still finds.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # Field 3, after the parenthesised command name (which may contain spaces).
    state = status.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X")


def _master_alive(pid: int) -> bool:
    """True while `pid` is a live Postfix master: a stale master.pid whose
    number now belongs to another process must never be waited on or killed."""
    if not _pid_alive(pid):
        return False
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "master"
    except OSError:
        return False


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path} not readable)"
    return "\n".join(text.splitlines()[-lines:])


def _clean_env() -> dict[str, str]:
    """Environment for Postfix commands: no inherited MAIL_CONFIG/MAIL_DEBUG.

    A MAIL_CONFIG left over from the caller would point a command at
    another instance; `-c` is passed explicitly instead.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("MAIL_CONFIG", "MAIL_DEBUG", "MAIL_VERBOSE")}
    env["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin"
    return env


# Instances still running when the interpreter exits (a test crashed
# between start and stop): stop them so no master outlives the run.
_RUNNING: weakref.WeakSet[PrivatePostfix | SmtpSink] = weakref.WeakSet()


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_RUNNING):
        try:
            server.stop()
        except Exception:  # noqa: BLE001, S110 - best effort at interpreter exit
            pass


class PrivatePostfix:
    """A second Postfix instance on 127.0.0.1:`port`, all state under `workdir`.

    `delivery="maildir"`: every recipient at `domain` is delivered by
    virtual(8) into one Maildir (`self.maildir`). `delivery="relay"`:
    everything is relayed to 127.0.0.1:`relay_port` (an SmtpSink, or
    another PrivatePostfix). `milter`, when given, is set as both
    smtpd_milters and non_smtpd_milters with a tempfail default action,
    as a production gateway would run it.

    `checks=True` runs Postfix's own start-up integrity checks (what
    `postfix check` does: +0.3 s a start); by default the queue layout is
    created here and the checks are skipped, as the configuration is
    generated. Start-up then takes ~0.1 s.

    Use as a context manager, or call start() and stop().
    """

    def __init__(
        self,
        workdir: Path | str,
        *,
        port: int | None = None,
        domain: str = "example.test",
        milter: str | None = None,
        delivery: Delivery = "maildir",
        relay_port: int | None = None,
        relay_host: str = LOOPBACK,
        extra_main: Mapping[str, str] | None = None,
        extra_master: Sequence[str] | None = None,
        name: str | None = None,
        mailbox_user: str = "nobody",
        checks: bool = False,
        start_timeout: float = 20.0,
    ) -> None:
        if delivery not in ("maildir", "relay"):
            raise ValueError(f"delivery must be 'maildir' or 'relay', not {delivery!r}")
        if delivery == "relay" and relay_port is None:
            raise ValueError("delivery='relay' needs relay_port (the port of the next hop)")
        self.workdir = Path(workdir).absolute()
        self.port = port if port is not None else free_port()
        self.host = LOOPBACK
        self.domain = domain
        self.milter = milter
        self.delivery: Delivery = delivery
        self.relay_port = relay_port
        self.relay_host = relay_host
        self.extra_main = dict(extra_main or {})
        self.extra_master = list(extra_master or [])
        # Names must differ between instances: they prefix every log line
        # and postmulti would refuse duplicates.
        self.name = name or f"postfix-tb{self.port}"
        self.mailbox_user = mailbox_user
        self.checks = checks
        self.start_timeout = start_timeout
        self._master_pid: int | None = None

    # -- paths -----------------------------------------------------------

    @property
    def config_dir(self) -> Path:
        return self.workdir / "etc"

    @property
    def queue_dir(self) -> Path:
        return self.workdir / "queue"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        return self.workdir / "postfix.log"

    @property
    def mail_base(self) -> Path:
        return self.workdir / "mail"

    @property
    def maildir(self) -> Path:
        """The one Maildir every recipient of `domain` is delivered to."""
        return self.mail_base / "Maildir"

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def running(self) -> bool:
        pid = self._read_master_pid()
        return pid is not None and _master_alive(pid)

    @property
    def master_pid(self) -> int | None:
        """The running master's pid (its children are every Postfix process of this instance)."""
        return self._read_master_pid()

    # -- configuration ---------------------------------------------------

    def main_settings(self) -> dict[str, str]:
        """The main.cf this instance runs with (defaults, mode, milter, extra_main)."""
        workdir = str(self.workdir)
        settings: dict[str, str] = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.queue_dir),
            "data_directory": str(self.data_dir),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "multi_instance_name": self.name,
            "syslog_name": self.name,
            # postlogd only writes below maillog_file_prefixes (default
            # /var, /dev/stdout); without this it refuses the file.
            "maillog_file": str(self.log_path),
            "maillog_file_prefixes": workdir,
            "myhostname": f"mx.{self.domain}",
            "mydomain": self.domain,
            "myorigin": "$myhostname",
            "mydestination": "localhost",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_banner": "$myhostname ESMTP",
            # No DNS: the system resolver is unreachable here.
            "smtp_dns_support_level": "disabled",
            "lmtp_dns_support_level": "disabled",
            "smtp_host_lookup": "native",
            "in_flow_delay": "0",
            "alias_maps": "",
            "alias_database": "",
            "biff": "no",
            "append_dot_mydomain": "no",
            "delay_warning_time": "0",
            # Retry soon: a test whose next hop starts late should not wait minutes.
            "queue_run_delay": "2s",
            "minimal_backoff_time": "2s",
            "maximal_backoff_time": "10s",
            "smtp_connect_timeout": "5s",
        }
        if self.delivery == "maildir":
            user = pwd.getpwnam(self.mailbox_user)
            settings.update(
                {
                    "virtual_mailbox_domains": self.domain,
                    "virtual_mailbox_base": str(self.mail_base),
                    # Trailing slash: Maildir format, one for all recipients.
                    "virtual_mailbox_maps": "static:Maildir/",
                    "virtual_uid_maps": f"static:{user.pw_uid}",
                    "virtual_gid_maps": f"static:{user.pw_gid}",
                    "virtual_transport": "virtual",
                }
            )
        else:
            nexthop = f"[{self.relay_host}]:{self.relay_port}"
            settings.update(
                {
                    "relay_domains": self.domain,
                    "relayhost": nexthop,
                    "default_transport": f"smtp:{nexthop}",
                    "relay_transport": f"smtp:{nexthop}",
                }
            )
        if self.milter:
            settings.update(
                {
                    "smtpd_milters": self.milter,
                    "non_smtpd_milters": self.milter,
                    "milter_default_action": "tempfail",
                    "milter_protocol": "6",
                }
            )
        settings.update(self.extra_main)
        return settings

    def master_lines(self) -> list[str]:
        """master.cf: the standard services, unchrooted, plus extra_master."""
        text = _MASTER_CF.format(listen=f"{self.host}:{self.port}")
        return text.splitlines() + self.extra_master

    def _write_config(self) -> None:
        longest = self.queue_dir / "private" / "proxywrite"
        if len(str(longest)) > _UNIX_PATH_MAX - 4:
            raise TestbedError(
                f"work directory {self.workdir} is too long: Postfix binds unix sockets "
                f"such as {longest} ({len(str(longest))} bytes, limit {_UNIX_PATH_MAX}); "
                "use a shorter path"
            )
        # Postfix creates the queue subdirectories, not the queue directory.
        for directory in (self.workdir, self.config_dir, self.queue_dir, self.data_dir):
            directory.mkdir(parents=True, exist_ok=True)
            os.chmod(directory, 0o755)
        make_traversable(self.workdir)
        if not self.checks and self._create_queue_layout():
            # postfix-script skips its integrity checks once when this file
            # exists (post-install alone runs ~40 postconf commands).
            (self.queue_dir / "quick-start").touch()
        postfix_user = pwd.getpwnam("postfix")
        os.chown(self.data_dir, postfix_user.pw_uid, postfix_user.pw_gid)
        os.chmod(self.data_dir, 0o700)
        if self.delivery == "maildir":
            user = pwd.getpwnam(self.mailbox_user)
            self.mail_base.mkdir(exist_ok=True)
            # virtual(8) creates Maildir/{new,cur,tmp} as the mailbox uid.
            os.chown(self.mail_base, user.pw_uid, user.pw_gid)
            os.chmod(self.mail_base, 0o755)
        main_cf = "".join(f"{key} = {value}\n" for key, value in self.main_settings().items())
        (self.config_dir / "main.cf").write_text(main_cf)
        (self.config_dir / "master.cf").write_text("\n".join(self.master_lines()) + "\n")
        # Lines from extra_master may ask for a chroot; there is none to use.
        self._postconf("-F", "*/*/chroot = n")
        self._backdate_config()

    def _backdate_config(self) -> None:
        """Set main.cf/master.cf mtimes 10 s into the past.

        Postfix rereads a table file whose mtime is within the last second
        ("being edited"), every 0.3 s: a freshly written main.cf costs each
        Postfix command ~2 s. A past mtime makes start-up immediate.
        """
        past = time.time() - 10
        for name in ("main.cf", "master.cf"):
            os.utime(self.config_dir / name, (past, past))

    def _create_queue_layout(self) -> bool:
        """Create the queue directories as postfix-files lists them.

        This is what `post-install create-missing` does at start, done
        without its dozens of postconf calls. Returns False (the caller
        then lets postfix-script do it) when postfix-files is unreadable.
        """
        try:
            entries = Path(POSTFIX_FILES).read_text().splitlines()
        except OSError:
            return False
        users = {"$mail_owner": "postfix", "root": "root"}
        groups = {"$setgid_group": "postdrop", "-": "root"}
        created = False
        for entry in entries:
            fields = entry.split(":")
            if len(fields) < 5 or fields[1] != "d" or not fields[0].startswith("$queue_directory/"):
                continue
            path = self.queue_dir / fields[0].removeprefix("$queue_directory/")
            try:
                uid = pwd.getpwnam(users[fields[2]]).pw_uid
                gid = grp.getgrnam(groups[fields[3]]).gr_gid
            except KeyError:
                return False
            path.mkdir(exist_ok=True)
            os.chown(path, uid, gid)
            os.chmod(path, int(fields[4], 8))
            created = True
        return created

    # -- commands --------------------------------------------------------

    def _run(self, argv: Sequence[str], check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, env=_clean_env(), timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise TestbedError(
                f"{' '.join(argv)} exited {proc.returncode}\n"
                f"stdout: {proc.stdout.strip()}\nstderr: {proc.stderr.strip()}\n"
                f"--- {self.log_path} (tail) ---\n{self.log_tail()}"
            )
        return proc

    def _postconf(self, *args: str) -> str:
        return self._run([POSTCONF, "-c", str(self.config_dir), *args]).stdout

    def postfix_command(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `postfix -c CONFIG_DIR ARGS...`: this instance only."""
        return self._run([POSTFIX, "-c", str(self.config_dir), *args], check=check)

    def set_main(self, settings: Mapping[str, str]) -> None:
        """Change main.cf settings (postconf -e) and reload when running."""
        self.extra_main.update(settings)
        self._postconf("-e", *(f"{k}={v}" for k, v in settings.items()))
        self._backdate_config()
        if self.running:
            self.postfix_command("reload")

    # -- lifecycle -------------------------------------------------------

    def start(self) -> Self:
        """Write the configuration, start master, wait for the 220 greeting."""
        require_root()
        if not postfix_available():
            raise TestbedError(f"Postfix is not installed ({POSTFIX}, {POSTCONF} missing)")
        if self.running:
            raise TestbedError(f"instance in {self.workdir} is already running")
        self._write_config()
        # `postfix start` reports problems only to a tty or the log: the
        # error carries the log's tail (master's own fatal line is there).
        try:
            self.postfix_command("start")
        except TestbedError as exc:
            raise TestbedError(f"Postfix {self.name} in {self.workdir} did not start: {exc}") from None
        self._master_pid = self._read_master_pid()
        _RUNNING.add(self)
        if not wait_until(lambda: smtp_greets(self.host, self.port), self.start_timeout, 0.05):
            detail = self.log_tail()
            self.stop()
            raise TestbedError(
                f"Postfix {self.name} did not answer on {self.host}:{self.port} within "
                f"{self.start_timeout:.0f} s\n--- {self.log_path} (tail) ---\n{detail}"
            )
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Stop this instance (postfix stop) and wait until its master is gone."""
        pid = self._read_master_pid() or self._master_pid
        if pid is None or not _master_alive(pid):
            _RUNNING.discard(self)
            return
        self.postfix_command("stop", check=False)
        if not wait_until(lambda: not _master_alive(pid), timeout, 0.02):
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: not _master_alive(pid), 5.0, 0.02)
        # master's children go with it; the listener is free once they are.
        wait_until(lambda: not port_accepts(self.host, self.port, 0.2), 5.0, 0.02)
        _RUNNING.discard(self)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _read_master_pid(self) -> int | None:
        try:
            return int((self.queue_dir / "pid" / "master.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    # -- queue -----------------------------------------------------------

    def flush(self) -> None:
        """Ask the queue manager to retry deferred mail now (postfix flush)."""
        self.postfix_command("flush")

    def queue_size(self) -> int:
        """Messages Postfix still has to deliver (maildrop, incoming, active, deferred)."""
        count = 0
        for queue in _LIVE_QUEUES:
            root = self.queue_dir / queue
            if not root.is_dir():
                continue
            for _dirpath, _dirnames, filenames in os.walk(root):
                count += len(filenames)
        return count

    def wait_queue_empty(self, timeout: float = 10.0) -> None:
        """Wait until Postfix has delivered (or bounced) everything it accepted."""
        if not wait_until(lambda: self.queue_size() == 0, timeout, 0.05):
            raise TestbedError(
                f"queue of {self.name} still holds {self.queue_size()} message(s) after "
                f"{timeout:.0f} s\n--- {self.log_path} (tail) ---\n{self.log_tail()}"
            )

    # -- delivered mail --------------------------------------------------

    def maildir_messages(self) -> list[Path]:
        """Delivered message files (new/ and cur/), oldest first."""
        files: list[Path] = []
        for sub in ("new", "cur"):
            directory = self.maildir / sub
            if directory.is_dir():
                files.extend(p for p in directory.iterdir() if p.is_file())
        return sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name))

    def wait_for_messages(self, n: int, timeout: float = 10.0) -> list[bytes]:
        """Wait until at least `n` messages are in the Maildir; return their bytes.

        Maildir delivery writes to tmp/ and renames into new/, so every
        file seen here is complete.
        """
        if self.delivery != "maildir":
            raise TestbedError("wait_for_messages reads the Maildir: only for delivery='maildir'")
        if not wait_until(lambda: len(self.maildir_messages()) >= n, timeout, 0.05):
            raise TestbedError(
                f"{len(self.maildir_messages())} of {n} message(s) delivered to {self.maildir} "
                f"after {timeout:.0f} s\n--- {self.log_path} (tail) ---\n{self.log_tail()}"
            )
        return [p.read_bytes() for p in self.maildir_messages()]

    # -- logs ------------------------------------------------------------

    def log_text(self) -> str:
        """The whole maillog of this instance."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines)

    def __repr__(self) -> str:
        return f"PrivatePostfix(name={self.name!r}, port={self.port}, workdir={str(self.workdir)!r})"


@dataclass(frozen=True)
class SinkMessage:
    """One transaction captured by smtp-sink: envelope and message bytes."""

    path: Path
    mail_from: str  # argument of MAIL FROM, e.g. "<a@b.test> SIZE=123"
    rcpt_to: list[str]  # one entry per RCPT TO argument
    data: bytes  # the message as the client sent it, headers and body, LF line ends
    raw: bytes  # the dump file: smtp-sink's X-* and Received headers first


_SINK_COUNTER = re.compile(rb"mesg=(\d+)")


def parse_sink_dump(path: Path) -> SinkMessage:
    """Split an smtp-sink dump file into envelope and message.

    The dump starts with X-Client-Addr/X-Mail-Args/X-Rcpt-Args lines and a
    three-line Received header that smtp-sink adds, and ends with one empty
    line it appends; `data` is what lies between.
    """
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    mail_from = ""
    rcpt_to: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if line.startswith(b"X-Mail-Args: "):
            mail_from = line[len(b"X-Mail-Args: "):].decode(errors="replace")
        elif line.startswith(b"X-Rcpt-Args: "):
            rcpt_to.append(line[len(b"X-Rcpt-Args: "):].decode(errors="replace"))
        elif line.startswith(b"Received: "):
            while index < len(lines) and lines[index][:1] in (b" ", b"\t"):
                index += 1
            break
    body = b"\n".join(lines[index:])
    if body.endswith(b"\n\n"):
        body = body[:-1]
    return SinkMessage(path=path, mail_from=mail_from, rcpt_to=rcpt_to, data=body, raw=raw)


class SmtpSink:
    """/usr/sbin/smtp-sink on 127.0.0.1:`port`: the next hop for a relay-mode Postfix.

    It counts messages (smtp-sink -c, read from WORKDIR/sink.out) and, with
    `dump=True`, writes each transaction to WORKDIR/dump/ (smtp-sink -d).
    Dumping costs disk writes: leave it off for throughput runs.
    """

    def __init__(
        self,
        workdir: Path | str,
        *,
        port: int | None = None,
        dump: bool = False,
        user: str = "nobody",
        backlog: int = 256,
        extra_args: Sequence[str] = (),
        start_timeout: float = 10.0,
    ) -> None:
        self.workdir = Path(workdir).absolute()
        self.host = LOOPBACK
        self.port = port if port is not None else free_port()
        self.dump = dump
        self.user = user
        self.backlog = backlog
        self.extra_args = list(extra_args)
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def dump_dir(self) -> Path:
        return self.workdir / "dump"

    @property
    def output_path(self) -> Path:
        return self.workdir / "sink.out"

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def argv(self) -> list[str]:
        argv = [SMTP_SINK, "-c"]
        if os.geteuid() == 0:
            # smtp-sink refuses to run as root without -u.
            argv += ["-u", self.user]
        if self.dump:
            # strftime template plus an 8-hex-digit random suffix per file.
            argv += ["-d", f"{self.dump_dir}/%Y%m%d%H%M%S."]
        return argv + self.extra_args + [f"{self.host}:{self.port}", str(self.backlog)]

    def start(self) -> Self:
        """Start smtp-sink and wait until it accepts connections."""
        if not os.access(SMTP_SINK, os.X_OK):
            raise TestbedError(f"{SMTP_SINK} is not installed (it comes with postfix)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.dump:
            self.dump_dir.mkdir(exist_ok=True)
            if os.geteuid() == 0:
                make_traversable(self.dump_dir)
                user = pwd.getpwnam(self.user)
                os.chown(self.dump_dir, user.pw_uid, user.pw_gid)
        with open(self.output_path, "wb") as out:
            self._proc = subprocess.Popen(
                self.argv(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        _RUNNING.add(self)
        proc = self._proc
        if not wait_until(
            lambda: proc.poll() is not None or port_accepts(self.host, self.port, 0.2),
            self.start_timeout,
        ) or proc.poll() is not None:
            self.stop()
            raise TestbedError(
                f"smtp-sink did not start on {self.host}:{self.port}: {' '.join(self.argv())}\n"
                f"{_tail(self.output_path)}"
            )
        return self

    def stop(self, timeout: float = 5.0) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _RUNNING.discard(self)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def received_count(self) -> int:
        """Messages completed so far (smtp-sink's running "mesg=" counter)."""
        try:
            with open(self.output_path, "rb") as out:
                size = out.seek(0, os.SEEK_END)
                out.seek(max(0, size - 256))
                tail = out.read()
        except OSError:
            return 0
        counts = _SINK_COUNTER.findall(tail)
        return int(counts[-1]) if counts else 0

    def wait_for_count(self, n: int, timeout: float = 10.0, interval: float = 0.02) -> int:
        """Wait until smtp-sink has received at least `n` messages."""
        if not wait_until(lambda: self.received_count() >= n, timeout, interval):
            raise TestbedError(
                f"smtp-sink on port {self.port} received {self.received_count()} of {n} "
                f"message(s) in {timeout:.0f} s"
            )
        return self.received_count()

    def messages(self) -> list[SinkMessage]:
        """Dumped transactions, oldest first (needs dump=True)."""
        if not self.dump:
            raise TestbedError("SmtpSink(dump=False) keeps no messages: pass dump=True")
        if not self.dump_dir.is_dir():
            return []
        files = [p for p in self.dump_dir.rglob("*") if p.is_file()]
        files.sort(key=lambda p: (p.stat().st_mtime_ns, p.name))
        return [parse_sink_dump(p) for p in files]

    def wait_for_messages(self, n: int, timeout: float = 10.0) -> list[SinkMessage]:
        """Wait until `n` transactions are complete; return the dumped messages.

        smtp-sink writes a dump file while the DATA phase runs; its counter
        moves when the final "." arrives, so counting first avoids reading
        half-written files.
        """
        self.wait_for_count(n, timeout)
        wait_until(lambda: len(self.messages()) >= n, 2.0)
        return self.messages()

    def __repr__(self) -> str:
        return f"SmtpSink(port={self.port}, dump={self.dump}, workdir={str(self.workdir)!r})"


__all__ = [
    "Delivery",
    "PrivatePostfix",
    "SinkMessage",
    "SmtpSink",
    "TestbedError",
    "make_traversable",
    "parse_sink_dump",
    "postfix_available",
    "require_root",
]
