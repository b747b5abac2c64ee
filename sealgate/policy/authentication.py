"""What the authentication results do to an incoming message: DMARC disposition and temperrors."""

from __future__ import annotations

from typing import Any

from sealgate.pipeline import AuthResult, Verdict


def decide(results: list[AuthResult], verify: Any) -> Verdict | None:
    """None to deliver as is; otherwise reject, quarantine or tempfail with a reason people can act on."""
    dmarc = next((r for r in results if r.method == "dmarc"), None)
    policy = dmarc.prop("policy", "dmarc") if dmarc else ""
    domain = dmarc.prop("header", "from") if dmarc else ""
    temperrors = [r for r in results if r.result == "temperror"]

    if temperrors and verify.temperror_action != "accept":
        reject_possible = dmarc is not None and (
            dmarc.result == "temperror" or (dmarc.result != "pass" and policy == "reject"))
        if verify.temperror_action == "tempfail" or reject_possible:
            methods = ", ".join(sorted({r.method for r in temperrors}))
            return Verdict.tempfail(f"Temporary DNS failure checking {methods}, try again later")

    if dmarc is None or dmarc.result != "fail":
        return None
    if policy == "reject":
        action = verify.dmarc_reject_action
    elif policy == "quarantine":
        action = verify.dmarc_quarantine_action
    else:
        return None
    if action == "reject":
        return Verdict.reject(f"Rejected by DMARC policy of {domain}: "
                              "the message is neither SPF- nor DKIM-aligned with its From domain")
    if action == "quarantine":
        return Verdict.quarantine(f"DMARC policy {policy} of {domain} failed")
    return None
