"""Destination policy decisions, without any daemon: who must get ciphertext, who may not get
plaintext, and how a mixed message leaves."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sealgate.policy.outbound import DomainKeys, destination_policy, plan, recipient_verdict


def outbound(**overrides: object) -> SimpleNamespace:
    settings = {"default_policy": "opportunistic", "require_domains": [], "never_domains": [],
                "mixed": "plaintext"}
    settings.update(overrides)
    return SimpleNamespace(**settings)


def test_a_record_saying_required_overrides_our_config() -> None:
    keys = DomainKeys("strict.test", "none", encryption_required=True)
    assert destination_policy(keys, outbound(never_domains=["strict.test"])) == "require"


@pytest.mark.parametrize("status, expected", [
    ("found", None), ("local", None),
    ("none", ("reject", "550", "5.7.5")), ("refused", ("reject", "550", "5.7.5")),
    ("temporary", ("tempfail", "451", "4.7.5"))])
def test_require_refuses_only_what_cannot_be_encrypted(status: str, expected: object) -> None:
    verdict = recipient_verdict(DomainKeys("x.test", status, "why"),
                                outbound(require_domains=["x.test"]))
    assert (verdict and (verdict.action, verdict.code, verdict.dsn)) == expected
    if verdict is not None:
        assert "x.test" in verdict.text


def test_opportunistic_never_refuses() -> None:
    assert recipient_verdict(DomainKeys("x.test", "none"), outbound()) is None


KEYS = {"k.test": DomainKeys("k.test", "found"), "p.test": DomainKeys("p.test", "none"),
        "n.test": DomainKeys("n.test", "found")}


def test_all_keyed_is_one_envelope() -> None:
    result = plan(["a@k.test"], KEYS, outbound())
    assert (result.encrypted, result.plaintext, result.split) == (("a@k.test",), (), False)


def test_mixed_goes_plaintext_to_all_or_splits_by_config() -> None:
    rcpts = ["a@k.test", "b@p.test"]
    assert plan(rcpts, KEYS, outbound()).plaintext == tuple(rcpts)
    split = plan(rcpts, KEYS, outbound(mixed="split"))
    assert (split.encrypted, split.plaintext, split.split) == (("a@k.test",), ("b@p.test",), True)


def test_a_required_keyed_domain_is_never_sent_plaintext_even_in_plaintext_mode() -> None:
    result = plan(["a@k.test", "b@p.test"], KEYS, outbound(require_domains=["k.test"]))
    assert result.encrypted == ("a@k.test",) and result.split


def test_never_keeps_a_keyed_domain_in_plaintext() -> None:
    result = plan(["a@n.test"], KEYS, outbound(never_domains=["n.test"]))
    assert (result.encrypted, result.plaintext) == ((), ("a@n.test",))
