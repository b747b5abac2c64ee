"""The pipeline: stages are plain functions of one transaction; the runner turns a crash into tempfail.

A stage reads the session facts and the message, adds what it learned to the
transaction, and returns a Verdict only when it decides the message's fate.
Nothing here knows the milter protocol, so tests and the CLI call it directly.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from sealgate.dns import Resolver
from sealgate.message import Message

log = logging.getLogger("sealgate")


@dataclass
class Session:
    """What one SMTP connection told us; filled by the milter adapter or the CLI."""

    client_ip: str = ""
    client_name: str = ""
    helo: str = ""
    tls: dict[str, str] = field(default_factory=dict)  # {tls_version}, {cipher}, ... as the MTA sent them
    auth_user: str = ""
    outgoing: bool = False


@dataclass(frozen=True)
class Verdict:
    """A stage's decision; `action` is what the MTA is told to do with the message."""

    action: str  # "accept" | "tempfail" | "reject" | "quarantine" | "discard"
    text: str = ""
    code: str = ""
    dsn: str = ""

    @classmethod
    def tempfail(cls, text: str) -> "Verdict":
        return cls("tempfail", text, "451", "4.7.1")

    @classmethod
    def reject(cls, text: str, code: str = "550", dsn: str = "5.7.1") -> "Verdict":
        return cls("reject", text, code, dsn)

    @classmethod
    def quarantine(cls, text: str) -> "Verdict":
        return cls("quarantine", text)

    @property
    def final(self) -> bool:
        """Quarantine still lets later stages (headers) run; the others end the message."""
        return self.action in ("tempfail", "reject", "discard")


ACCEPT = Verdict("accept")


@dataclass
class AuthResult:
    """One method's result, as it goes into Authentication-Results (RFC 8601)."""

    method: str
    result: str
    properties: list[tuple[str, str, str]] = field(default_factory=list)  # (ptype, property, value)
    reason: str = ""
    comment: str = ""

    def prop(self, ptype: str, name: str) -> str:
        for t, n, v in self.properties:  # a loop, not next(genexpr): asked ~30 times a message
            if n == name and t == ptype:
                return v
        return ""


@dataclass(frozen=True)
class Services:
    """What stages may use besides the message: built once per configuration load."""

    config: Any
    resolver: Resolver
    keys: Any = None  # KeystoreClient, when [milter] use_keystore is on
    clock: Callable[[], float] = time.time


@dataclass
class Transaction:
    session: Session
    message: Message
    results: list[AuthResult] = field(default_factory=list)
    verdict: Verdict = ACCEPT
    # What stages want in the message's one log line, as key=value (sealing, spam score ...):
    # one line a message is what admins grep, and a write per line is a cost per message.
    notes: list[str] = field(default_factory=list)

    def result(self, method: str) -> AuthResult | None:
        return next((r for r in self.results if r.method == method), None)


Stage = Callable[[Transaction, Services], Verdict | None]


def run(stages: Sequence[tuple[str, Stage]], txn: Transaction, services: Services) -> Verdict:
    """Run stages in order until one decides; a crashing stage tempfails the message, never passes it."""
    for name, stage in stages:
        try:
            verdict = stage(txn, services)
        except Exception:  # noqa: BLE001 - any crash must become tempfail, not lost mail
            log.exception("queue_id=%s stage=%s internal error; answering tempfail",
                          txn.message.queue_id, name)
            txn.verdict = Verdict.tempfail(f"Internal error in {name}, try again later")
            break
        if verdict is not None and verdict.action != "accept":
            txn.verdict = verdict
            if verdict.final:
                break
    return txn.verdict
