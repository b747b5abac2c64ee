"""`sealgate policy serve`: Postfix's own socketmap client (postmap -q) asks it, malformed
requests get PERM and do not stop it, DNS failures answer TEMP."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

from sealgate.config import Config
from sealgate.dns import Answer, DNSTempError
from sealgate.pipeline import Services
from sealgate.testbed.milter import write_config
from sealgate.testbed.ports import free_port, port_accepts, wait_until
from sealgate.tlspolicy import netstring, outbound, socketmap
from sealgate.testbed.zones import txt

POSTMAP = "/usr/sbin/postmap"
HASH = "cd" * 32
ZONE = "".join(txt(f"_sealgate.{domain}", f"v=SG1; h={HASH}; t={flag}; u=https://{domain}/b.json")
               for domain, flag in (("req.test", "req"), ("opt.test", "opt")))


class PolicyServer:
    """`sealgate policy serve --config FILE` as a subprocess."""

    def __init__(self, workdir: Path, socket_spec: str, **tls: object) -> None:
        zone = workdir / "policy.zone"
        zone.write_text(ZONE)
        self.log = workdir / "policy.log"
        self.config = write_config(workdir / "policy.conf", {
            "dns": {"backend": "zone", "zone_files": [str(zone)]},
            "tls": {"policy_socket": socket_spec, "policy_socket_mode": "0666", **tls}})
        self.spec = socket_spec
        self.proc = subprocess.Popen([sys.executable, "-m", "sealgate", "policy", "serve",
                                      "--config", str(self.config)],
                                     stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        if not wait_until(self.listening, 10) or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError(f"policy server did not start:\n{self.log.read_text()}")

    @property
    def path(self) -> Path:
        return Path(self.spec.split(":", 1)[1])

    def listening(self) -> bool:
        if self.spec.startswith("unix:"):
            return self.path.is_socket()
        port, _, host = self.spec.split(":", 1)[1].partition("@")
        return port_accepts(host, int(port))

    def table(self, name: str = "sealgate") -> str:
        if self.spec.startswith("unix:"):
            return f"socketmap:unix:{self.path}:{name}"
        port, _, host = self.spec.split(":", 1)[1].partition("@")
        return f"socketmap:inet:{host}:{port}:{name}"

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(10)


@pytest.fixture(scope="module")
def postfix_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """postmap needs a main.cf to read; an empty one gives Postfix's defaults."""
    if not os.access(POSTMAP, os.X_OK):
        pytest.skip("needs postmap (the postfix package)")
    directory = tmp_path_factory.mktemp("postfix-etc")
    (directory / "main.cf").write_text("")
    return directory


@pytest.fixture(scope="module")
def unix_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PolicyServer]:
    workdir = tmp_path_factory.mktemp("policy")
    server = PolicyServer(workdir, f"unix:{workdir}/run/policy.sock")
    yield server
    server.stop()


def postmap(config_dir: Path, table: str, key: str) -> tuple[int, str]:
    done = subprocess.run([POSTMAP, "-c", str(config_dir), "-q", key, table],
                          capture_output=True, text=True, timeout=20)
    return done.returncode, (done.stdout + done.stderr).strip()


@pytest.mark.parametrize("key, answer", [
    ("req.test", (0, "encrypt")),
    ("REQ.test", (0, "encrypt")),
    ("req.test:587", (0, "encrypt")),
    ("opt.test", (1, "")),
    ("unknown.test", (1, "")),
    (".req.test", (1, "")),          # a parent-domain lookup: a record covers its own domain only
    ("[req.test]", (1, "")),         # an explicit host, not a mail domain
    ("[192.0.2.1]:25", (1, "")),
])
def test_postmap_queries_through_postfix_socketmap_client(
        unix_server: PolicyServer, postfix_config: Path, key: str,
        answer: tuple[int, str]) -> None:
    assert postmap(postfix_config, unix_server.table(), key) == answer


def exchange(path: Path, data: bytes, replies: int) -> tuple[list[bytes], bool]:
    """Send raw bytes; return the replies read and whether the server then closed the connection."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(data)
        stream = sock.makefile("rb")
        got = [netstring.read(stream, 10000) or b"" for _ in range(replies)]
        sock.settimeout(0.3)
        try:
            closed = stream.read(1) == b""
        except TimeoutError:
            closed = False
    return got, closed


@pytest.mark.parametrize("request_bytes, reply, closed", [
    (b"abc:", b"PERM malformed request: malformed netstring length 'a'", True),
    (b"11:sealgate req,", b"PERM malformed request: netstring not terminated by ','", True),
    (b"99999999999:", b"PERM malformed request: malformed netstring length '9999999999'", True),
    (b"9999:", b"PERM malformed request: netstring of 9999 bytes, more than the 1000 allowed",
     True),
    (b"8:sealgate,", b"PERM malformed request 'sealgate': expected 'NAME KEY'", False),
    (b"3:\xff x,", b"PERM malformed request: not UTF-8", False),
    (b"14:other req.test,", b"PERM unknown map name 'other': this server answers 'sealgate'",
     False),
])
def test_malformed_requests_get_perm_and_the_server_keeps_running(
        unix_server: PolicyServer, postfix_config: Path, request_bytes: bytes, reply: bytes,
        closed: bool) -> None:
    assert exchange(unix_server.path, request_bytes, 1) == ([reply], closed)
    assert postmap(postfix_config, unix_server.table(), "req.test") == (0, "encrypt")


def test_many_requests_on_one_connection(unix_server: PolicyServer) -> None:
    requests = b"".join(netstring.encode(b"sealgate " + key)
                        for key in (b"req.test", b"opt.test", b"bad key", b"req.test"))
    assert exchange(unix_server.path, requests, 4) == (
        [b"OK encrypt", b"NOTFOUND ", b"NOTFOUND ", b"OK encrypt"], False)


def test_wrong_map_name_is_a_postfix_lookup_error(unix_server: PolicyServer,
                                                  postfix_config: Path) -> None:
    status, output = postmap(postfix_config, unix_server.table("other"), "req.test")
    assert status != 0
    assert "permanent error: unknown map name 'other'" in output


def test_inet_listener_and_sighup_reload(tmp_path: Path, postfix_config: Path) -> None:
    spec = f"inet:{free_port()}@127.0.0.1"
    server = PolicyServer(tmp_path, spec, policy_map_name="sg")
    try:
        assert postmap(postfix_config, server.table("sg"), "req.test") == (0, "encrypt")
        text = server.config.read_text()
        server.config.write_text(text.replace('policy_map_name = "sg"',
                                              'policy_map_name = "sg"\npolicy_level = "secure"'))
        server.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: postmap(postfix_config, server.table("sg"), "req.test")
                          == (0, "secure"), 10)
        server.config.write_text(text.replace('policy_map_name = "sg"', 'policy_level = "bogus"'))
        server.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "reload refused" in server.log.read_text(), 10)
        assert postmap(postfix_config, server.table("sg"), "req.test") == (0, "secure")
    finally:
        assert server.stop() == 0


def test_socket_made_with_its_directory_and_mode_removed_at_sigterm(tmp_path: Path) -> None:
    server = PolicyServer(tmp_path, f"unix:{tmp_path}/deep/run/p.sock")
    assert server.path.is_socket() and server.path.stat().st_mode & 0o777 == 0o666
    assert server.stop() == 0
    assert not server.path.exists()
    assert "tls policy server stopped" in server.log.read_text()


def test_an_unusable_socket_path_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    spec = f"unix:{tmp_path}/file/x"
    conf = write_config(tmp_path / "bad.conf", {"tls": {"policy_socket": spec}})
    done = subprocess.run([sys.executable, "-m", "sealgate", "policy", "serve", "--config",
                           str(conf)], capture_output=True, text=True, timeout=20)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and f"cannot listen on {spec}" in done.stderr


class DownResolver:
    def lookup(self, name: str, rdtype: str) -> Answer:
        raise DNSTempError(f"DNS timeout looking up {name} {rdtype}")


def test_dns_failure_answers_temp_so_postfix_defers(make_config: Callable[..., Config]) -> None:
    services = Services(make_config(), DownResolver())
    reply = outbound.lookup("req.test", services)
    assert reply == socketmap.Reply("TEMP", "sealgate record of req.test: "
                                            "DNS timeout looking up _sealgate.req.test TXT")
    assert reply.encode().startswith(b"79:TEMP sealgate record of req.test")


def test_a_crashing_lookup_answers_temp_and_the_connection_goes_on() -> None:
    def lookup(key: str) -> socketmap.Reply:
        if key == "boom":
            raise RuntimeError("bug")
        return socketmap.Reply("OK", "encrypt")

    out = io.BytesIO()
    socketmap.serve_stream(io.BytesIO(b"7:sg boom,9:sg a.test,"), out, "sg", lookup, "test")
    assert out.getvalue() == b"41:TEMP internal error, see the sealgate log,10:OK encrypt,"


def test_policy_query_command(tmp_path: Path) -> None:
    zone = tmp_path / "z.zone"
    zone.write_text(ZONE)
    conf = write_config(tmp_path / "q.conf",
                        {"dns": {"backend": "zone", "zone_files": [str(zone)]}})
    results = [subprocess.run([sys.executable, "-m", "sealgate", "policy", "query", "--config",
                               str(conf), key], capture_output=True, text=True, timeout=20)
               for key in ("req.test", "opt.test")]
    assert [(r.returncode, r.stdout) for r in results] == [(0, "OK encrypt\n"), (1, "NOTFOUND\n")]


def test_netstring_round_trip() -> None:
    assert netstring.encode(b"") == b"0:,"
    stream = io.BytesIO(netstring.encode(b"hello world") + netstring.encode(b""))
    assert [netstring.read(stream, 100), netstring.read(stream, 100), netstring.read(stream, 100)] \
        == [b"hello world", b"", None]
    for bad in (b"01:a,", b":a,", b"5:abc", b"3"):
        with pytest.raises(netstring.NetstringError):
            netstring.read(io.BytesIO(bad), 100)

