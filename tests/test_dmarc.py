"""DMARC: policy discovery (tree walk and PSL), alignment, p/sp/np, and what a failure does."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from sealgate import services
from sealgate.auth import dmarc
from sealgate.dns import Answer, DNSTempError
from sealgate.message import Message
from sealgate.pipeline import AuthResult, Services, Session, Transaction
from sealgate.policy.authentication import decide
from sealgate.testbed.zones import txt

ZONE = "".join([
    txt("_dmarc.a.test", "v=DMARC1; p=reject; sp=quarantine; np=reject"),
    txt("_dmarc.strict.test", "v=DMARC1; p=reject; aspf=s; adkim=s"),
    txt("_dmarc.psd", "v=DMARC1; p=none; psd=y"),
    txt("_dmarc.two.test", "v=DMARC1; p=reject"), txt("_dmarc.two.test", "v=DMARC1; p=none"),
    txt("_dmarc.example.co.uk", "v=DMARC1; p=quarantine"),
    "sub.a.test. 300 IN A 192.0.2.1\n",
    "mail.strict.test. 300 IN A 192.0.2.2\n",
    "org.psd. 300 IN A 192.0.2.3\n",
])


@pytest.fixture
def svc(make_config: Callable[..., Any]) -> Services:
    return services.build(make_config(ZONE))


def txn(from_header: str, spf: tuple[str, str] | None = None,
        dkim: list[tuple[str, str]] = (), mail_from: str = "x@bounce.test") -> Transaction:  # type: ignore[assignment]
    msg = Message.from_bytes(f"From: {from_header}\r\nSubject: t\r\n\r\nbody\r\n".encode(),
                             mail_from=mail_from)
    t = Transaction(Session(client_ip="192.0.2.9", helo="h.test"), msg)
    if spf:
        t.results.append(AuthResult("spf", spf[0], [("smtp", "mailfrom", spf[1])]))
    for result, domain in dkim:
        t.results.append(AuthResult("dkim", result, [("header", "d", domain)]))
    return t


def outcome(t: Transaction, svc: Services) -> tuple[str, str, str]:
    r = dmarc.evaluate(t, svc)
    return r.result, r.prop("policy", "dmarc"), r.comment


def test_spf_aligned_pass(svc: Services) -> None:
    assert outcome(txn("a@a.test", spf=("pass", "a.test")), svc) == ("pass", "reject", "p=reject")


def test_relaxed_alignment_accepts_a_subdomain_signature(svc: Services) -> None:
    assert outcome(txn("a@a.test", dkim=[("pass", "mail.a.test")]), svc)[0] == "pass"


def test_unaligned_is_fail_under_p(svc: Services) -> None:
    assert outcome(txn("a@a.test", spf=("pass", "other.test"),
                       dkim=[("pass", "other.test")]), svc) == ("fail", "reject", "p=reject")


def test_existing_subdomain_gets_sp_and_nonexistent_gets_np(svc: Services) -> None:
    assert outcome(txn("a@sub.a.test"), svc) == ("fail", "quarantine", "sp=quarantine")
    assert outcome(txn("a@ghost.a.test"), svc) == ("fail", "reject", "np=reject")


def test_strict_alignment_refuses_subdomains(svc: Services) -> None:
    t = txn("a@strict.test", spf=("pass", "mail.strict.test"), dkim=[("pass", "mail.strict.test")])
    assert outcome(t, svc)[0] == "fail"
    assert outcome(txn("a@strict.test", dkim=[("pass", "strict.test")]), svc)[0] == "pass"


def test_psd_record_makes_the_level_below_the_org_domain(svc: Services) -> None:
    # org.psd is the organizational domain: mail.org.psd aligns with it, other.psd does not.
    assert outcome(txn("a@org.psd", dkim=[("pass", "mail.org.psd")]), svc)[0] == "pass"
    assert outcome(txn("a@org.psd", dkim=[("pass", "other.psd")]), svc)[0] == "fail"


def test_tree_walk_targets() -> None:
    assert dmarc.walk_targets("a.b.c") == ["a.b.c", "b.c", "c"]
    long = ".".join(f"l{i}" for i in range(10))
    assert dmarc.walk_targets(long)[1] == ".".join(f"l{i}" for i in range(3, 10))


def test_two_records_count_as_none(svc: Services) -> None:
    assert outcome(txn("a@two.test"), svc)[0] == "none"


@pytest.mark.parametrize("from_header, reason", [
    ("a@a.test, b@other.test", "several From domains"),
    ("", "no From address"),
    ("undisclosed-recipients:;", "no From address"),
])
def test_zero_or_several_from_addresses_is_permerror(svc: Services, from_header: str,
                                                       reason: str) -> None:
    r = dmarc.evaluate(txn(from_header), svc)
    assert (r.result, r.reason) == ("permerror", reason)


def test_psl_discovery(make_config: Callable[..., Any]) -> None:
    svc = services.build(make_config(ZONE, verify={"dmarc_discovery": "psl"}))
    assert outcome(txn("a@mail.example.co.uk", dkim=[("pass", "example.co.uk")]), svc) == \
        ("pass", "quarantine", "p=quarantine")


class Timeouts:
    def lookup(self, name: str, rdtype: str) -> Answer:
        raise DNSTempError(f"DNS timeout looking up {name} {rdtype}")


def test_dns_timeout_is_temperror_and_tempfails(svc: Services) -> None:
    broken = Services(config=svc.config, resolver=Timeouts())
    r = dmarc.evaluate(txn("a@a.test"), broken)
    assert r.result == "temperror"
    verdict = decide([r], svc.config.verify)
    assert verdict is not None and (verdict.action, verdict.code, verdict.dsn) == \
        ("tempfail", "451", "4.7.1")


def results(dmarc_result: str, policy: str, *extra: AuthResult) -> list[AuthResult]:
    return [*extra, AuthResult("dmarc", dmarc_result, [("header", "from", "a.test"),
                                                       ("policy", "dmarc", policy)])]


@pytest.mark.parametrize("action, expected", [
    ("reject", ("reject", "550", "5.7.1")), ("quarantine", ("quarantine", "", "")), ("record", None)])
def test_failed_reject_policy_follows_config(make_config: Callable[..., Any], action: str,
                                             expected: tuple[str, str, str] | None) -> None:
    cfg = make_config(verify={"dmarc_reject_action": action}).verify
    verdict = decide(results("fail", "reject"), cfg)
    assert (verdict and (verdict.action, verdict.code, verdict.dsn)) == expected


def test_temperror_default_tempfails_only_where_reject_could_apply(
        make_config: Callable[..., Any]) -> None:
    cfg = make_config().verify
    spf_temp = AuthResult("spf", "temperror")
    assert decide(results("none", "", spf_temp), cfg) is None
    assert decide(results("fail", "quarantine", spf_temp), cfg).action == "quarantine"  # type: ignore[union-attr]
    assert decide(results("fail", "reject", spf_temp), cfg).action == "tempfail"  # type: ignore[union-attr]
    always = make_config(verify={"temperror_action": "tempfail"}).verify
    assert decide(results("none", "", spf_temp), always).action == "tempfail"  # type: ignore[union-attr]
