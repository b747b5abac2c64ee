"""Our Authentication-Results header: authres parses it back to the same results, and forged
copies claiming our authserv-id are found (the authres corpus cases)."""

from __future__ import annotations

import json
from typing import Any

import authres
import authres.dmarc
import pytest

from conftest import CORPORA
from sealgate.auth.header import authserv_id_of, forged_edits, header_value
from sealgate.message import Message
from sealgate.pipeline import AuthResult, Session, Transaction

PARSE_CASES = json.loads((CORPORA / "authres" / "authres-parse-cases.json").read_text())["cases"]
PARSEABLE = [c for c in PARSE_CASES if "error" not in c["core"]]
CONTEXT = authres.FeatureContext(authres.dmarc)


def _ours(case: dict[str, Any]) -> list[AuthResult]:
    return [AuthResult(r["method"], r["result"], [tuple(p) for p in r["properties"]],
                       reason=r["reason"] or "") for r in case["core"]["results"]]


@pytest.mark.parametrize("case", PARSEABLE, ids=lambda c: c["input"][24:70])
def test_corpus_results_round_trip_through_our_builder(case: dict[str, Any]) -> None:
    value = header_value(case["core"]["authserv_id"], _ours(case))
    parsed = authres.AuthenticationResultsHeader.parse(f"Authentication-Results: {value}")
    assert parsed.authserv_id == case["core"]["authserv_id"]
    got = [{"method": r.method, "result": r.result, "reason": r.reason,
            "properties": [[p.type, p.name, p.value] for p in r.properties]}
           for r in parsed.results]
    assert got == case["core"]["results"]


@pytest.mark.parametrize("case", PARSEABLE, ids=lambda c: c["input"][24:70])
def test_authserv_id_read_from_corpus_headers(case: dict[str, Any]) -> None:
    value = case["input"].split(":", 1)[1].encode()
    assert authserv_id_of(value) == case["core"]["authserv_id"].lower()


def test_dmarc_properties_parse_with_the_dmarc_extension() -> None:
    value = header_value("mx.test", [AuthResult(
        "dmarc", "fail", [("header", "from", "a.test"), ("policy", "dmarc", "reject")],
        comment="p=reject")])
    assert value == "mx.test; dmarc=fail (p=reject) header.from=a.test policy.dmarc=reject"
    [dmarc] = CONTEXT.parse(f"Authentication-Results: {value}").results
    assert (dmarc.result, dmarc.header_from, dmarc.policy) == ("fail", "a.test", "reject")


def test_no_results_is_none() -> None:
    assert header_value("mx.test", []) == "mx.test; none"


def test_forged_headers_with_our_id_are_deleted_highest_index_first() -> None:
    msg = Message.from_bytes(
        b"Authentication-Results: MX.test; dkim=pass\r\n"
        b"Authentication-Results: other.example; spf=pass\r\n"
        b"Authentication-Results: (comment) mx.test 1; dmarc=pass\r\n"
        b"From: a@b.test\r\n\r\nbody\r\n")
    edits = forged_edits(Transaction(Session(), msg), "mx.test")
    assert [(e.action, e.index) for e in edits] == [("delete", 3), ("delete", 1)]
