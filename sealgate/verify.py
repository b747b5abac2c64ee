"""The incoming verification pipeline, shared by the milter and `sealgate verify`."""

from __future__ import annotations

from sealgate.auth import arc, dkim, dmarc, header, spf
from sealgate.pipeline import Services, Stage, Transaction, Verdict
from sealgate.policy import authentication
from sealgate.spam import stage as spam
from sealgate.tlspolicy import requirement as tls_requirement


def decide(txn: Transaction, services: Services) -> Verdict | None:
    return authentication.decide(txn.results, services.config.verify)


def incoming_stages(verify_config: object) -> list[tuple[str, Stage]]:
    """Stages in order, those switched off in [verify] left out."""
    enabled = {"spf": spf.stage, "dkim": dkim.stage, "arc": arc.stage, "dmarc": dmarc.stage}
    stages: list[tuple[str, Stage]] = [(name, fn) for name, fn in enabled.items()
                                       if getattr(verify_config, name)]
    # The header goes on before the decision, so a quarantined message carries its results.
    # Spam scoring comes last: it uses the results, and a message DMARC rejects costs no scan.
    return [("tls", tls_requirement.stage)] + stages + [("authentication-results", header.stage),
                                                        ("policy", decide), ("spam", spam.stage)]
