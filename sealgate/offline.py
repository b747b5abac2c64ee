"""`sealgate verify`: the milter's incoming pipeline run on one message outside the milter."""

from __future__ import annotations

from pathlib import Path

from sealgate import pipeline, services, verify
from sealgate.auth.header import HEADER
from sealgate.config import Config
from sealgate.message import Message
from sealgate.pipeline import Session, Transaction, Verdict


def verify_message(config: Config, raw: bytes, *, zone: list[Path], client_ip: str, helo: str,
                   mail_from: str, authserv_id: str | None = None) -> tuple[str, Verdict]:
    """The header line the milter would add, and what it would answer the MTA."""
    if zone:
        config.dns.backend = "zone"
        config.dns.zone_files = [str(z) for z in zone]
    if authserv_id:
        config.verify.authserv_id = authserv_id
    svc = services.build(config)
    txn = Transaction(Session(client_ip=client_ip, helo=helo),
                      Message.from_bytes(raw, mail_from=mail_from))
    verdict = pipeline.run(verify.incoming_stages(config.verify), txn, svc)
    added = [e.value for e in txn.message.edits if e.name == HEADER and e.action == "insert"]
    return f"{HEADER}: {added[-1]}" if added else "", verdict
