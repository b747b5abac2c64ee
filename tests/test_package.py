"""The Debian package: its sources checked everywhere, and as root the .deb built, installed
with apt, its daemons run as their systemd units say, mail sent through them by a private
Postfix with the one main.cf line, then `apt-get remove` (state kept) and `purge` (gone).

No systemd runs here, so the units are carried out by hand: each daemon is started with the
unit's exact ExecStart line, as its User=/Group= (setpriv, no capabilities, no new
privileges), with its UMask and the RuntimeDirectory created as systemd would.

The machine is CI's too: the package is purged at the end whatever happened, and a test run
never touches a sealgate package it did not install itself.
"""

from __future__ import annotations

import argparse
import grp
import os
import pwd
import re
import shlex
import shutil
import signal
import smtplib
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from email.parser import BytesHeaderParser
from pathlib import Path

import pytest

from sealgate import __version__
from sealgate.cli import parser
from sealgate.config import load_text
from sealgate.config.render import toml_value
from sealgate.config.schema import OPTIONS, SECTIONS
from sealgate.testbed.milter import reload_and_wait
from sealgate.testbed.ports import port_accepts
from sealgate.testbed.postfix import PrivatePostfix, make_traversable, postfix_available

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "packaging"
UNITS = PACKAGING / "systemd"
DEB = ROOT / "dist" / f"sealgate_{__version__}_all.deb"

# What the installed package must provide, and where its state lives.
CONF = Path("/etc/sealgate/sealgate.conf")
MASTER_KEY = Path("/etc/sealgate/keystore.key")
STATE = Path("/var/lib/sealgate")
RUNTIME = Path("/run/sealgate")
UNIT_DIR = Path("/lib/systemd/system")
MILTER_LINE = "unix:/run/sealgate/milter.sock"   # the README's one main.cf line
MARKER = STATE / "installed-by-test_package"      # a crashed run's leftover, safe to purge

# A clean environment for installed programs: Debian's python3, never a pyenv or the venv.
SYSTEM_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}
APT = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "-y", "-q"]

OUR_DOMAIN = "a.test"        # keys initialised with `sealgate keys init`
MAIL_DOMAIN = "b.test"       # what the private Postfix delivers to a Maildir
SENDER_DOMAIN = "c.test"     # a stranger whose SPF allows 127.0.0.1
AUTHSERV = "mx.b.test"
OUTGOING_FROM = "127.0.0.2"  # [milter] internal_hosts: mail from here is ours, DKIM-signed


# -- the package's sources: no root needed ---------------------------------------------------

def generate(what: str) -> str:
    return subprocess.run([sys.executable, str(PACKAGING / "generate.py"), what], check=True,
                          capture_output=True, text=True, timeout=60).stdout


def unit_settings(path: Path) -> dict[str, list[str]]:
    """A unit file as {"Section.Key": [values in order]} (a key may repeat, as systemd allows)."""
    settings: dict[str, list[str]] = {}
    section = ""
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        settings.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return settings


def test_default_config_file_lists_every_option_commented_out_and_loads_as_the_defaults() -> None:
    text = generate("conf")
    config = load_text(text, "sealgate.conf")
    assert config.values == load_text("", "empty").values
    for option in OPTIONS:
        assert f"\n#{option.name} = {toml_value(option.default)}\n" in text, option.key
    assert [line for line in text.splitlines() if line.startswith("[")] == \
        [f"[{section}]" for section in SECTIONS]


def test_config_man_page_documents_every_option() -> None:
    page = generate("man5")
    for section in SECTIONS:
        block = page.split(f".SS [{section}]\n", 1)[1].split(".SS ", 1)[0]
        for option in (o for o in OPTIONS if o.section == section):
            assert f'.BR "{option.name}" " = ' in block, option.key


def test_command_man_page_names_every_command() -> None:
    page = (PACKAGING / "man" / "sealgate.8").read_text()
    commands = next(action.choices for action in parser()._actions
                    if isinstance(action, argparse._SubParsersAction))
    missing = [name for name in commands if not re.search(rf"sealgate {re.escape(name)}\b",
                                                          page.replace("\\-", "-"))]
    assert not missing, f"packaging/man/sealgate.8 does not describe: {', '.join(missing)}"


def test_package_version_is_the_code_version() -> None:
    first = (PACKAGING / "debian" / "changelog").read_text().splitlines()[0]
    assert first.startswith(f"sealgate ({__version__}) "), \
        f"packaging/debian/changelog starts with {first!r}; sealgate/__init__.py says {__version__}"


@pytest.mark.parametrize("unit", ["sealgate-keystore", "sealgate-milter", "sealgate-policy"])
def test_units_run_a_real_command_unprivileged_and_hardened(unit: str) -> None:
    settings = unit_settings(UNITS / f"{unit}.service")

    def one(key: str) -> str:
        assert key in settings, f"{unit}: no {key}"
        return settings[key][-1]

    argv = shlex.split(one("Service.ExecStart"))
    assert argv[0] == "/usr/bin/sealgate" and argv[-2:] == ["--config", str(CONF)]
    parser().parse_args(argv[1:])  # the command and its options exist
    assert one("Service.User") == one("Service.Group") == "sealgate"
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "CapabilityBoundingSet": "", "AmbientCapabilities": "",
                       "RuntimeDirectory": "sealgate", "RuntimeDirectoryPreserve": "yes",
                       "UMask": "0007"}.items():
        assert one(f"Service.{key}") == value, f"{unit}: {key}"
    writable = " ".join(settings["Service.ReadWritePaths"]).split()
    assert "/run/sealgate" in writable
    assert set(writable) <= {"/run/sealgate", "/var/lib/sealgate", "-/var/spool/postfix/sealgate"}
    assert one("Install.WantedBy") == "multi-user.target"
    if unit == "sealgate-keystore":
        assert "/var/lib/sealgate" in writable
    else:  # the processes that parse what others send never see the keys
        assert "/var/lib/sealgate" not in writable
        assert set(" ".join(settings["Service.InaccessiblePaths"]).split()) >= \
            {"-/var/lib/sealgate/keystore.db", "-/etc/sealgate/keystore.key"}
    if unit == "sealgate-milter":
        assert one("Unit.Requires") == "sealgate-keystore.service"
        assert "sealgate-keystore.service" in one("Unit.After").split()


# -- the package, built and installed: root, dpkg and Postfix --------------------------------

def install_problem() -> str:
    if os.geteuid() != 0:
        return "needs root: installs the .deb with apt-get and runs its daemons as user sealgate"
    missing = [tool for tool in ("dpkg-buildpackage", "apt-get", "setpriv", "lintian", "make")
               if shutil.which(tool, path=SYSTEM_ENV["PATH"]) is None]
    if missing:
        return f"missing {', '.join(missing)} (`make deps` installs them)"
    if not postfix_available():
        return "needs Postfix (`make deps` installs it)"
    if package_status() and not MARKER.exists():
        return ("a sealgate package that this test did not install is present; "
                "the test would purge it")
    return ""


def package_status() -> str:
    """dpkg's status of the sealgate package ("" when dpkg knows nothing of it)."""
    result = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "sealgate"], capture_output=True,
                            text=True, env=SYSTEM_ENV, check=False)
    return result.stdout.strip() if result.returncode == 0 else ""


def run(argv: list[str], timeout: float = 300, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """An installed program, in a clean environment; its output is in the failure message."""
    result = subprocess.run(argv, capture_output=True, text=True, env=SYSTEM_ENV, cwd="/",
                            timeout=timeout, check=False, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, \
        f"{' '.join(argv)} exited {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def purge() -> None:
    if package_status():
        subprocess.run([*APT, "purge", "sealgate"], capture_output=True, env=SYSTEM_ENV,
                       timeout=300, check=False)


class UnitProcess:
    """One installed unit, started as systemd would start it (the parts that matter here)."""

    def __init__(self, name: str, log: Path) -> None:
        self.name = name
        self.settings = unit_settings(UNIT_DIR / f"{name}.service")
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def value(self, key: str, default: str = "") -> str:
        return self.settings.get(f"Service.{key}", [default])[-1]

    def start(self, ready: Path, timeout: float = 30) -> None:
        user, group = self.value("User"), self.value("Group")
        for directory in self.value("RuntimeDirectory").split():
            path = Path("/run") / directory
            path.mkdir(exist_ok=True)
            os.chown(path, pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid)
            path.chmod(int(self.value("RuntimeDirectoryMode", "0755"), 8))
        argv = shlex.split(self.value("ExecStart"))
        privileges = ["setpriv", f"--reuid={user}", f"--regid={group}", "--init-groups",
                      "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--"]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(privileges + argv, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=SYSTEM_ENV, cwd="/",
                                         umask=int(self.value("UMask", "0022"), 8))
        deadline = time.monotonic() + timeout
        while not ready.is_socket():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not start:\n{self.log_text()}")
            time.sleep(0.05)

    def reload(self) -> None:
        """ExecReload=, with $MAINPID; returns once every worker has reloaded (or refused)."""
        assert self.proc is not None
        command = self.value("ExecReload").replace("$MAINPID", str(self.proc.pid))
        reload_and_wait(lambda: run(shlex.split(command)), self.log_text)

    def stop(self, timeout: float = 30) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def set_options(text: str, sections: dict[str, dict[str, object]]) -> str:
    """What an admin does to the shipped file: a line under each [section] header."""
    for section, values in sections.items():
        lines = "".join(f"{key} = {toml_value(value)}\n" for key, value in values.items())
        header = f"\n[{section}]\n"
        assert header in text, f"no [{section}] in {CONF}"
        text = text.replace(header, header + lines, 1)
    return text


def mode(path: Path) -> tuple[str, str, int]:
    info = path.stat()
    return (pwd.getpwuid(info.st_uid).pw_name, grp.getgrgid(info.st_gid).gr_name,
            stat.S_IMODE(info.st_mode))


@pytest.fixture(scope="module")
def package() -> Iterator[dict[str, float]]:
    """Build and install the .deb; purge it afterwards, whatever happened."""
    problem = install_problem()
    if problem:
        pytest.skip(problem)
    purge()  # a crashed run's leftover (install_problem checked it is ours)
    timings: dict[str, float] = {}
    try:
        started = time.monotonic()
        build = subprocess.run(["make", "-C", str(ROOT), "deb"], capture_output=True, text=True,
                               timeout=600, check=False)
        assert build.returncode == 0, f"make deb failed:\n{build.stdout[-3000:]}\n{build.stderr[-3000:]}"
        timings["build"] = time.monotonic() - started
        assert DEB.is_file(), f"make deb did not produce {DEB}"
        started = time.monotonic()
        run([*APT, "install", str(DEB)], timeout=600)
        timings["install"] = time.monotonic() - started
        MARKER.touch()
        yield timings
    finally:
        purge()
        shutil.rmtree(RUNTIME, ignore_errors=True)


def test_installed_package_has_its_files_user_and_state(package: dict[str, float]) -> None:
    assert package_status() == "install ok installed"
    assert shutil.which("sealgate", path=SYSTEM_ENV["PATH"]) == "/usr/bin/sealgate"
    assert run(["sealgate", "--version"]).stdout.strip() == f"sealgate {__version__}"
    # every module imports with Debian's python3 and Debian's libraries
    run(["python3", "-c", (
        "import importlib, pkgutil, sealgate\n"
        "for m in pkgutil.walk_packages(sealgate.__path__, 'sealgate.'):\n"
        "    if not m.name.endswith('__main__'): importlib.import_module(m.name)\n"
        "assert sealgate.__file__.startswith('/usr/lib/python3/dist-packages/'), sealgate.__file__")])

    conffiles = Path("/var/lib/dpkg/info/sealgate.conffiles").read_text().split()
    assert conffiles == [str(CONF)]
    assert CONF.read_text() == generate("conf")
    assert mode(CONF) == ("root", "sealgate", 0o640)  # dpkg-statoverride: it may hold secrets
    run(["sealgate", "config", "check"])
    for page in ("/usr/share/man/man8/sealgate.8.gz", "/usr/share/man/man5/sealgate.conf.5.gz"):
        assert Path(page).is_file(), page
    assert Path("/usr/share/doc/sealgate/install.md").is_file()
    units = [UNIT_DIR / f"sealgate-{name}.service" for name in ("keystore", "milter", "policy")]
    assert [u.read_text() for u in units] == [(UNITS / u.name).read_text() for u in units]
    if shutil.which("systemd-analyze"):
        run(["systemd-analyze", "verify", "--man=no", *map(str, units)])

    assert pwd.getpwnam("sealgate").pw_shell in ("/usr/sbin/nologin", "/bin/false")
    assert "postfix" in grp.getgrnam("sealgate").gr_mem
    assert mode(STATE) == ("sealgate", "sealgate", 0o750)
    assert mode(STATE / "keystore.db") == ("sealgate", "sealgate", 0o600)
    assert mode(MASTER_KEY) == ("sealgate", "sealgate", 0o600)
    assert len(MASTER_KEY.read_text().strip()) == 44  # 32 bytes, base64

    lint = subprocess.run(["lintian", "--fail-on", "error", str(DEB)], capture_output=True,
                          text=True, env=SYSTEM_ENV, timeout=300, check=False)
    errors = [line for line in lint.stdout.splitlines() if line.startswith("E:")]
    assert lint.returncode == 0 and not errors, lint.stdout + lint.stderr


def test_mail_through_the_installed_daemons_then_reinstall_remove_and_purge(
        package: dict[str, float]) -> None:
    work = Path(tempfile.mkdtemp(prefix="sgpkg", dir="/tmp"))  # short: Postfix's socket paths
    make_traversable(work)
    zone = work / "test.zone"
    zone.write_text(f'{SENDER_DOMAIN}. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"\n')
    zone.chmod(0o644)
    keystore = UnitProcess("sealgate-keystore", work / "keystore.log")
    milter = UnitProcess("sealgate-milter", work / "milter.log")
    postfix = PrivatePostfix(work / "postfix", domain=MAIL_DOMAIN, milter=MILTER_LINE)
    try:
        # The admin's edits: DNS from the test's zone file instead of the network, a fixed
        # authserv-id, and which clients send our outgoing mail.
        sections: dict[str, dict[str, object]] = {
            "milter": {"internal_hosts": [f"{OUTGOING_FROM}/32"]},
            "dns": {"backend": "zone", "zone_files": [str(zone)]},
            "verify": {"authserv_id": AUTHSERV}}
        if port_accepts("127.0.0.1", 8470, 0.2):  # the default directory port is taken here
            sections["keystore"] = {"directory_listen": ""}
        CONF.write_text(set_options(CONF.read_text(), sections))

        # Started as at installation, before any key exists.
        keystore.start(RUNTIME / "keystore.sock")
        milter.start(RUNTIME / "milter.sock")
        assert mode(RUNTIME) == ("sealgate", "sealgate", 0o750)
        assert mode(RUNTIME / "milter.sock") == ("sealgate", "sealgate", 0o660)
        assert mode(RUNTIME / "keystore.sock") == ("sealgate", "sealgate", 0o660)

        # The README's steps: keys init as root while the keystore runs, publish the records.
        run(["sealgate", "keys", "init", OUR_DOMAIN])
        records = run(["sealgate", "keys", "dns", OUR_DOMAIN]).stdout
        assert f"_sealgate.{OUR_DOMAIN}." in records and "._domainkey." in records
        zone.write_text(zone.read_text() + records)
        milter.reload()  # the milter reads zone files when it (re)loads
        assert "reload refused" not in milter.log_text()
        assert mode(STATE / "keystore.db") == ("sealgate", "sealgate", 0o600)

        postfix.start()
        assert postfix.main_settings()["smtpd_milters"] == MILTER_LINE
        incoming = (f"From: <x@{SENDER_DOMAIN}>\r\nTo: <postmaster@{MAIL_DOMAIN}>\r\n"
                    f"Subject: incoming\r\nMessage-ID: <in@{SENDER_DOMAIN}>\r\n\r\nHello.\r\n")
        with smtplib.SMTP(*postfix.address, local_hostname=f"mail.{SENDER_DOMAIN}",
                          timeout=60) as smtp:
            smtp.sendmail(f"x@{SENDER_DOMAIN}", [f"postmaster@{MAIL_DOMAIN}"], incoming)
        outgoing = (f"From: <alice@{OUR_DOMAIN}>\r\nTo: <bob@{MAIL_DOMAIN}>\r\n"
                    f"Subject: outgoing\r\nMessage-ID: <out@{OUR_DOMAIN}>\r\n\r\nHello.\r\n")
        with smtplib.SMTP(*postfix.address, local_hostname=f"mail.{OUR_DOMAIN}", timeout=60,
                          source_address=(OUTGOING_FROM, 0)) as smtp:
            smtp.sendmail(f"alice@{OUR_DOMAIN}", [f"bob@{MAIL_DOMAIN}"], outgoing)
        delivered = {BytesHeaderParser().parsebytes(raw)["Subject"]: raw
                     for raw in postfix.wait_for_messages(2, timeout=30)}

        headers = BytesHeaderParser().parsebytes(delivered["incoming"])
        results = [" ".join(v.split()) for v in headers.get_all("Authentication-Results", [])]
        assert len(results) == 1 and results[0].startswith(f"{AUTHSERV};"), results
        assert f"spf=pass smtp.mailfrom={SENDER_DOMAIN}" in results[0], results

        # Outgoing mail was DKIM-signed by the keystore, through its socket, as user sealgate;
        # the installed `sealgate verify` checks it against the published records.
        signed = delivered["outgoing"]
        assert signed.count(b"DKIM-Signature:") == 2, signed.decode(errors="replace")
        verdict = run(["sealgate", "verify", "--zone", str(zone), "--client-ip", "192.0.2.1",
                       "--helo", f"mail.{OUR_DOMAIN}", "--mail-from", f"alice@{OUR_DOMAIN}"],
                      input=signed.decode()).stdout
        assert verdict.count(f"dkim=pass header.d={OUR_DOMAIN}") == 2, verdict
        for log in (milter.log_text(), keystore.log_text()):
            assert "Traceback" not in log, log
    finally:
        postfix.stop()
        milter.stop()
        keystore.stop()
        shutil.rmtree(work, ignore_errors=True)

    # Installing again (as an upgrade does) redoes nothing and overwrites nothing.
    key = MASTER_KEY.read_bytes()
    run([*APT, "install", "--reinstall", str(DEB)])
    assert MASTER_KEY.read_bytes() == key
    assert mode(CONF) == ("root", "sealgate", 0o640)
    assert f'authserv_id = "{AUTHSERV}"' in CONF.read_text()  # the admin's edit

    run([*APT, "remove", "sealgate"])
    assert package_status() == "deinstall ok config-files"
    assert not Path("/usr/bin/sealgate").exists()
    assert mode(STATE / "keystore.db") == ("sealgate", "sealgate", 0o600)
    assert (STATE / "keystore.db").stat().st_size > 0
    assert mode(MASTER_KEY) == ("sealgate", "sealgate", 0o600)
    assert f'authserv_id = "{AUTHSERV}"' in CONF.read_text()

    run([*APT, "purge", "sealgate"])
    assert package_status() in ("", "unknown ok not-installed")
    for path in (STATE, MASTER_KEY, CONF, CONF.parent):
        assert not path.exists(), f"{path} survived purge"
    for lookup in (pwd.getpwnam, grp.getgrnam):
        with pytest.raises(KeyError):
            lookup("sealgate")
    print(f"\npackage: build {package['build']:.1f} s, install {package['install']:.1f} s")
