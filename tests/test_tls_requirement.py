"""The inbound TLS requirement without an MTA: who must use TLS (config lists, sealgate records
from a zone file), what a session that did not is told, and the x-tls Authentication-Results
entry as authres parses it back."""

from __future__ import annotations

from typing import Callable

import authres
import pytest

from sealgate import verify
from sealgate.auth.header import header_value
from sealgate.config import Config
from sealgate.dns import Answer, DNSTempError, Resolver
from sealgate.dns.cache import CachingResolver
from sealgate.dns.zonefile import ZoneFileResolver
from sealgate.message import Message
from sealgate.pipeline import Services, Session, Transaction
from sealgate.policy.tls import (Requirement, TlsFacts, auth_result, configured_reason, decide,
                                 meets, version_key)
from sealgate.tlspolicy import requirement
from sealgate.tlspolicy.requirement import RequiredMemory, check, peer_names, stage, walk
from sealgate.testbed.zones import txt

HASH = "ab" * 32
TLS13 = {"{tls_version}": "TLSv1.3", "{cipher}": "TLS_AES_256_GCM_SHA384", "{cipher_bits}": "256"}
TLS11 = {"{tls_version}": "TLSv1.1", "{cipher}": "ECDHE-RSA-AES256-SHA", "{cipher_bits}": "256"}


def record(domain: str, tls: str) -> str:
    return txt(f"_sealgate.{domain}", f"v=SG1; h={HASH}; t={tls}; u=https://{domain}/bundle.json")


ZONE = "".join([record("req.test", "req"), record("opt.test", "opt"),
                record("sub.req.test", "opt"), txt("_sealgate.junk.test", "v=SG1; h=12"),
                txt("_sealgate.junk.req.test", "v=SG1; t=maybe")])


@pytest.fixture
def services(make_config: Callable[..., Config]) -> Callable[..., Services]:
    def build(resolver: Resolver | None = None, now: float = 1000.0, **tls: object) -> Services:
        config = make_config(ZONE, tls=tls)
        return Services(config, resolver or ZoneFileResolver(config.dns.zone_files),
                        clock=lambda: now)
    return build


def session(tls: dict[str, str] | None = None, helo: str = "mx1.other.test",
            ip: str = "192.0.2.1") -> Session:
    return Session(client_ip=ip, client_name="peer", helo=helo, tls=dict(tls or {}))


class FailingResolver:
    """DNS that is down: every lookup is a temporary error."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def lookup(self, name: str, rdtype: str) -> Answer:
        self.asked.append(name)
        raise DNSTempError(f"DNS timeout looking up {name} {rdtype}")


def test_versions_order_and_unknown_ones_fail_closed() -> None:
    assert [version_key(v) for v in ("SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")] \
        == [(0, 3, 0), (1, 1, 0), (1, 1, 1), (1, 1, 2), (1, 1, 3)]
    assert meets(TlsFacts("TLSv1.3"), "TLSv1.2") and meets(TlsFacts("TLSv1.2"), "TLSv1.2")
    assert not meets(TlsFacts("TLSv1.1"), "TLSv1.2")
    assert not meets(TlsFacts(), "TLSv1")
    assert not meets(TlsFacts("QUIC?"), "TLSv1")


def test_configured_lists_match_networks_and_domains_with_subdomains() -> None:
    assert configured_reason("192.0.2.9", [], ["192.0.2.0/24"], []) \
        == "client 192.0.2.9 is in required_networks 192.0.2.0/24"
    assert configured_reason("2001:db8::1", [], ["2001:db8::/32"], []) != ""
    assert configured_reason("", ["mx1.bank.test"], [], ["Bank.test."]) \
        == "mx1.bank.test is under required_domains Bank.test."
    assert not configured_reason("198.51.100.1", ["notbank.test"], ["192.0.2.0/24"],
                                 ["bank.test"])


@pytest.mark.parametrize("macros, code, action, dsn, text", [
    ({}, "530", "reject", "5.7.0", "Must issue a STARTTLS command first"),
    ({}, "454", "tempfail", "4.7.0", "Must issue a STARTTLS command first"),
    (TLS11, "530", "reject", "5.7.0", "TLS version TLSv1.1 is too old: TLSv1.2 or later required"),
])
def test_a_required_peer_without_good_enough_tls_is_refused(
        services: Callable[..., Services], macros: dict[str, str], code: str, action: str,
        dsn: str, text: str) -> None:
    tls = services(refusal_code=code).config.tls
    verdict = decide(TlsFacts.from_macros(macros), Requirement("listed"), tls)
    assert verdict is not None
    assert (verdict.action, verdict.code, verdict.dsn, verdict.text) == (action, code, dsn, text)
    assert decide(TlsFacts.from_macros(TLS13), Requirement("listed"), tls) is None
    assert decide(TlsFacts.from_macros(macros), Requirement(), tls) is None


@pytest.mark.parametrize("action, known, refused", [
    ("tempfail-if-known", False, False), ("tempfail-if-known", True, True),
    ("tempfail", False, True), ("accept", True, False)])
def test_dns_failure_follows_dns_error_action(services: Callable[..., Services], action: str,
                                              known: bool, refused: bool) -> None:
    tls = services(dns_error_action=action).config.tls
    verdict = decide(TlsFacts(), Requirement("", ("a.test",), known), tls)
    assert (verdict is not None) == refused
    if verdict is not None:
        assert (verdict.action, verdict.code, verdict.dsn) == ("tempfail", "451", "4.4.3")
        assert verdict.text.startswith("Cannot look up whether a.test requires TLS")


def test_names_asked_are_helo_and_mail_from_domain_walked_up_to_two_labels() -> None:
    assert peer_names("MX1.Example.ORG.", "alice@example.org") == ["mx1.example.org", "example.org"]
    assert peer_names("[192.0.2.1]", "") == []
    assert peer_names("localhost", "<bounce@b.example.org>") == ["b.example.org"]
    assert walk("example.org") == ["example.org"]
    assert walk("mx1.example.org") == ["mx1.example.org", "example.org"]
    assert walk("a.b.c.d.example.org") == ["a.b.c.d.example.org", "c.d.example.org",
                                           "d.example.org", "example.org"]


@pytest.mark.parametrize("helo, mail_from, refused", [
    ("mx1.other.test", "alice@req.test", True),        # sender domain publishes t=req
    ("mx1.req.test", "", True),                         # a bounce from a host under it
    ("mx1.other.test", "x@bounces.req.test", True),     # a subdomain without a record of its own
    ("mx1.other.test", "x@sub.req.test", False),        # the closest record says t=opt
    ("mx1.other.test", "x@opt.test", False),
    ("mx1.other.test", "x@junk.test", False),           # an unusable record counts as none
    ("mx1.other.test", "x@junk.req.test", True),        # ... and the walk goes on to the parent
    ("[192.0.2.1]", "x@nothing.test", False),
])
def test_published_records_put_peers_on_the_list(services: Callable[..., Services], helo: str,
                                                 mail_from: str, refused: bool) -> None:
    verdict = check(session(helo=helo), mail_from, services(), RequiredMemory())
    assert (verdict is not None and verdict.code == "530") == refused


def test_config_lists_need_no_dns_and_good_tls_needs_no_lookup(
        services: Callable[..., Services]) -> None:
    dead = FailingResolver()
    listed = services(dead, required_networks=["192.0.2.0/28"], dns_error_action="tempfail")
    verdict = check(session(), "a@other.test", listed, RequiredMemory())
    assert verdict is not None and verdict.code == "530"
    assert check(session(TLS13), "a@req.test", listed, RequiredMemory()) is None
    assert dead.asked == []


def test_our_own_mail_is_never_refused(services: Callable[..., Services]) -> None:
    svc = services(required_networks=["0.0.0.0/0"])
    outgoing = session()
    outgoing.outgoing = True
    assert check(outgoing, "me@req.test", svc, RequiredMemory()) is None
    assert check(session(ip=""), "me@req.test", svc, RequiredMemory()) is None  # local pickup


def test_dns_failure_tempfails_only_a_domain_seen_requiring_tls(
        services: Callable[..., Services]) -> None:
    memory = RequiredMemory()
    dead = FailingResolver()
    assert check(session(), "a@req.test", services(dead, now=1000.0), memory) is None
    assert dead.asked == ["_sealgate.mx1.other.test", "_sealgate.req.test"]
    check(session(), "a@req.test", services(now=1000.0), memory)  # DNS up: t=req is seen
    later = check(session(), "a@req.test", services(dead, now=1000.0 + 3600), memory)
    assert later is not None and (later.code, later.dsn) == ("451", "4.4.3")
    expired = services(dead, now=1000.0 + 3600, known_required_seconds=60)
    assert check(session(), "a@req.test", expired, memory) is None
    assert check(session(), "a@req.test", services(dead, dns_error_action="accept"), memory) is None


def test_a_peers_requirement_is_kept_as_long_as_the_records_it_read(
        services: Callable[..., Services], monkeypatch: pytest.MonkeyPatch) -> None:
    walked: list[str] = []
    original = requirement.published_requirement

    def counted(resolver: Resolver, name: str, memory: RequiredMemory, now: float) -> str:
        walked.append(name)
        return original(resolver, name, memory, now)

    monkeypatch.setattr(requirement, "published_requirement", counted)
    now = [0.0]
    zone = ZoneFileResolver(services().config.dns.zone_files)
    cache = CachingResolver(zone, 100, clock=lambda: now[0])
    memory = RequiredMemory()
    for seconds in (1000.0, 1010.0):  # within the records' TTL the second message walks none
        verdict = check(session(), "a@req.test", services(cache, now=seconds), memory)
        assert verdict is not None and verdict.code == "530"
        assert walked == ["mx1.other.test", "req.test"]
    assert memory.knows("req.test", 1010.0, 0)  # seen by the second message too
    now[0] = 301.0  # the TTL is 300 s
    verdict = check(session(), "a@req.test", services(cache), memory)
    assert verdict is not None and verdict.code == "530"
    assert walked == ["mx1.other.test", "req.test"] * 2


def test_a_record_turned_to_opt_is_forgotten(services: Callable[..., Services]) -> None:
    memory = RequiredMemory()
    memory.remember("opt.test", 999.0)
    check(session(), "a@opt.test", services(), memory)
    assert not memory.knows("opt.test", 1000.0, 3600)


def test_stage_records_tls_first_and_refuses_like_mail_from(
        services: Callable[..., Services]) -> None:
    svc = services()
    assert verify.incoming_stages(svc.config.verify)[0] == ("tls", stage)
    txn = Transaction(session(), Message.from_bytes(b"Subject: x\r\n\r\nx\r\n",
                                                    mail_from="a@req.test"))
    verdict = stage(txn, svc)
    assert verdict is not None and (verdict.code, verdict.dsn) == ("530", "5.7.0")
    assert [(r.method, r.result) for r in txn.results] == [("x-tls", "none")]


def parsed(results: list) -> list[tuple[str, str, list[tuple[str, str, str]]]]:  # type: ignore[type-arg]
    header = authres.AuthenticationResultsHeader.parse(
        "Authentication-Results: " + header_value("mx.test", results))
    return [(r.method, r.result, [(p.type, p.name, p.value) for p in r.properties])
            for r in header.results]


def test_authentication_results_forms_parse_back_with_authres() -> None:
    tls = auth_result(TlsFacts.from_macros(TLS13))
    assert header_value("mx.test", [tls]) == (
        "mx.test; x-tls=pass smtp.tlsversion=TLSv1.3 smtp.tlscipher=TLS_AES_256_GCM_SHA384 "
        "smtp.tlsbits=256")
    assert parsed([tls]) == [("x-tls", "pass", [("smtp", "tlsversion", "TLSv1.3"),
                                                ("smtp", "tlscipher", "TLS_AES_256_GCM_SHA384"),
                                                ("smtp", "tlsbits", "256")])]
    assert header_value("mx.test", [auth_result(TlsFacts())]) == "mx.test; x-tls=none"


def test_client_certificate_names_go_into_a_comment_that_cannot_break_the_header() -> None:
    facts = TlsFacts.from_macros({**TLS13, "{cert_subject}": 'evil) x-tls=pass ("\\',
                                  "{cert_issuer}": "Test CA\r\nX-Injected: 1"})
    value = header_value("mx.test", [auth_result(facts)])
    assert value.startswith("mx.test; x-tls=pass (client certificate evil? x-tls=pass ??? "
                            "issued by Test CA??X-Injected: 1) smtp.tlsversion=TLSv1.3")
    assert parsed([auth_result(facts)])[0][2][0] == ("smtp", "tlsversion", "TLSv1.3")
