"""The DNS module: zone-file answers, the answer cache against a real DNS server on loopback, and
real timeouts from a resolver that never answers."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import dns.message
import dns.rcode
import dns.rrset
import pytest

from sealgate.auth import spf
from sealgate.dns import Answer, DNSTempError
from sealgate.dns.cache import CachingResolver
from sealgate.dns.network import NetworkResolver
from sealgate.dns.zonefile import ZoneFileResolver
from sealgate.testbed.zones import txt


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A UDP socket on loopback that reads queries and never answers: a real DNS timeout."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


class CountingServer:
    """A DNS server on loopback: TXT "hello" (TTL 120) at known.test, NXDOMAIN with an SOA whose
    negative TTL is 30 for every other name; it counts the queries it answers."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.queries = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                wire, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            query = dns.message.from_wire(wire)
            self.queries += 1
            response = dns.message.make_response(query)
            qname = query.question[0].name
            if qname.to_text() == "known.test.":
                response.answer.append(dns.rrset.from_text(qname, 120, "IN", "TXT", '"hello"'))
            else:
                response.set_rcode(dns.rcode.NXDOMAIN)
                response.authority.append(dns.rrset.from_text(
                    "test.", 3600, "IN", "SOA", "ns.test. host.test. 1 2 3 4 30"))
            self.sock.sendto(response.to_wire(), peer)


@pytest.fixture
def counting_server() -> Iterator[CountingServer]:
    server = CountingServer()
    yield server
    server.sock.close()


def test_answers_are_cached_for_their_ttl_and_negative_ones_for_the_soa_minimum(
        counting_server: CountingServer) -> None:
    now = [1000.0]
    resolver = CachingResolver(NetworkResolver(["127.0.0.1"], counting_server.port, 2.0), 10,
                               clock=lambda: now[0])
    assert resolver.lookup("known.test", "TXT").texts() == [b"hello"]
    missing = resolver.lookup("missing.test", "TXT")
    assert missing.nxdomain and missing.ttl == 30
    assert resolver.lookup("KNOWN.test.", "TXT").texts() == [b"hello"]  # same name, any spelling
    assert resolver.lookup("missing.test", "TXT").nxdomain
    assert counting_server.queries == 2
    now[0] += 31  # the negative answer has expired, the positive one has not
    resolver.lookup("missing.test", "TXT")
    resolver.lookup("known.test", "TXT")
    assert counting_server.queries == 3
    now[0] += 120
    resolver.lookup("known.test", "TXT")
    assert counting_server.queries == 4


def test_the_cache_keeps_at_most_its_size(counting_server: CountingServer) -> None:
    resolver = CachingResolver(NetworkResolver(["127.0.0.1"], counting_server.port, 2.0), 2)
    for name in ("a.test", "b.test", "c.test", "c.test", "b.test"):
        resolver.lookup(name, "TXT")
    assert counting_server.queries == 3
    resolver.lookup("a.test", "TXT")  # the oldest entry made room for c.test
    assert counting_server.queries == 4


def test_timeout_is_temperror_within_the_bound_and_never_cached(silent_server: int) -> None:
    resolver = CachingResolver(NetworkResolver(["127.0.0.1"], silent_server, timeout=0.5), 10)
    for _ in range(2):
        started = time.monotonic()
        with pytest.raises(DNSTempError, match="timeout"):
            resolver.lookup("example.org", "TXT")
        assert time.monotonic() - started < 1.5


def test_verify_reports_temperror_when_dns_is_down(tmp_path: Path, silent_server: int) -> None:
    conf = tmp_path / "c.conf"
    conf.write_text(f'[dns]\nnameservers = ["127.0.0.1"]\nport = {silent_server}\ntimeout = 0.3\n'
                    '[verify]\nauthserv_id = "mx.test"\n')
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "sealgate", "verify", "--config", str(conf),
                           "--client-ip", "192.0.2.1", "--helo", "h.example",
                           "--mail-from", "a@example.org"],
                          input=b"From: a@example.org\r\nSubject: x\r\n\r\nbody\r\n",
                          capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    line = done.stdout.decode()
    assert "spf=temperror" in line and "dmarc=temperror" in line
    assert b"the milter would answer: tempfail 451 4.7.1" in done.stderr
    assert time.monotonic() - started < 10


def test_zone_file_answers_follow_cnames_and_tell_nxdomain_from_nodata(tmp_path: Path) -> None:
    zone = tmp_path / "z.zone"
    zone.write_text(txt("target.test", "hello") + "alias.test. 60 IN CNAME target.test.\n"
                    "a.b.test. 60 IN A 192.0.2.1\n")
    resolver = ZoneFileResolver([str(zone)])
    assert resolver.lookup("alias.test", "TXT").texts() == [b"hello"]
    assert resolver.lookup("b.test", "TXT").nxdomain is False  # empty non-terminal
    assert resolver.lookup("nope.test", "TXT").nxdomain is True
    assert resolver.lookup("a.b.test", "A").ttl == 60


def test_a_real_zone_with_origin_and_soa_is_read(tmp_path: Path) -> None:
    zone = tmp_path / "real.zone"
    zone.write_text("$ORIGIN ex.test.\n$TTL 600\n@ IN SOA ns hostmaster 1 2 3 4 5\n@ IN NS ns\n"
                    '@ IN TXT "hello"\nwww 60 IN A 192.0.2.1\n')
    resolver = ZoneFileResolver([str(zone)])
    assert resolver.lookup("ex.test", "TXT").texts() == [b"hello"]
    assert resolver.lookup("www.ex.test", "A").ttl == 60


def test_a_broken_zone_file_names_the_line(tmp_path: Path) -> None:
    zone = tmp_path / "bad.zone"
    zone.write_text("this is not a record\n")
    with pytest.raises(ValueError, match=r"bad.zone:1: unknown rdatatype"):
        ZoneFileResolver([str(zone)])


def test_a_computation_is_remembered_until_the_first_answer_it_read_expires(
        counting_server: CountingServer) -> None:
    now = [0.0]
    resolver = CachingResolver(NetworkResolver(["127.0.0.1"], counting_server.port, timeout=2),
                               100, clock=lambda: now[0])
    runs = []

    def compute() -> tuple[list[bytes], bool]:
        runs.append(now[0])
        return (resolver.lookup("known.test", "TXT").texts(),  # TTL 120
                resolver.lookup("other.test", "TXT").nxdomain)  # negative TTL 30
    assert resolver.remembered("key", compute) == ([b"hello"], True)
    now[0] = 29
    assert resolver.remembered("key", compute) == ([b"hello"], True)
    assert runs == [0.0] and counting_server.queries == 2
    now[0] = 31  # the NXDOMAIN has expired, so the result may have changed
    assert resolver.remembered("key", compute) == ([b"hello"], True)
    assert runs == [0.0, 31] and counting_server.queries == 3  # known.test still cached


def test_a_computation_that_saw_a_dns_failure_is_not_remembered(silent_server: int) -> None:
    resolver = CachingResolver(NetworkResolver(["127.0.0.1"], silent_server, timeout=0.2), 100)
    runs = []

    def compute() -> str:
        runs.append(1)
        try:
            resolver.lookup("example.org", "TXT")
        except DNSTempError:
            return "temperror"
        return "answered"
    assert [resolver.remembered("key", compute) for _ in range(2)] == ["temperror"] * 2
    assert len(runs) == 2


class CountingCache(CachingResolver):
    """The answer cache, counting the lookups asked of it (hits included)."""

    asked = 0

    def lookup(self, name: str, rdtype: str) -> Answer:
        self.asked += 1
        return super().lookup(name, rdtype)


def test_spf_results_are_remembered_but_never_a_temperror(tmp_path: Path) -> None:
    zone = tmp_path / "spf.zone"
    zone.write_text(txt("spf.test", "v=spf1 a:host.spf.test -all")
                    + "host.spf.test. 300 IN A 192.0.2.1\n")
    resolver = CountingCache(ZoneFileResolver([str(zone)]), 100)
    for _ in range(2):
        assert spf.check(resolver, "192.0.2.1", "a@spf.test", "mx.spf.test", 20) == ("pass", "sender SPF authorized")
    assert resolver.asked == 2  # the record and the A lookup, once
    # A lookup time too short for two lookups: pyspf's own temperror, every answer it got valid.
    for _ in range(2):
        before = resolver.asked
        result, _ = spf.check(resolver, "192.0.2.1", "b@spf.test", "mx.spf.test", 1e-9)
        assert result == "temperror"
        assert resolver.asked > before  # evaluated again, not remembered
