"""The spam stage: scan with the configured backend, mark the message, act on the score.

It runs after SPF, DKIM, DMARC and the Authentication-Results header, on
the decrypted original, so the builtin rules can use those results. The
milter, `sealgate spam score` and bench/spam_accuracy all go through
`evaluate`, so what the CLI prints is what the milter does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sealgate.message import HeaderEdit, Message
from sealgate.pipeline import Services, Transaction, Verdict
from sealgate.spam import builtin, rspamd, spamd
from sealgate.spam.result import ScannerUnavailable, ScanResult

log = logging.getLogger("sealgate")

SCORE, STATUS, FLAG = "X-Spam-Score", "X-Spam-Status", "X-Spam-Flag"
MARKS = (SCORE, STATUS, FLAG)
MAX_TESTS_TEXT = 700  # keeps X-Spam-Status one line under RFC 5322's 998 characters


@dataclass
class Outcome:
    """What the stage decided: the scan (None when the scanner failed), the verdict, the marks."""

    result: ScanResult | None
    verdict: Verdict | None
    headers: list[tuple[str, str]] = field(default_factory=list)
    problem: str = ""

    def is_spam(self, required: float) -> bool:
        return self.result is not None and self.result.score >= required


def scanned_bytes(msg: Message, limit: int) -> bytes:
    """Header block and the first bytes of the body: at most `limit` bytes reach a scanner."""
    head = msg.header_block()
    msg.body.seek(0)
    return (head + msg.body.read(max(limit - len(head), 0)))[:limit]


def scan(txn: Transaction, services: Services, explain: bool = False) -> ScanResult:
    """One scan by the configured backend; ScannerUnavailable when an external one fails."""
    cfg = services.config.spam
    raw = scanned_bytes(txn.message, cfg.max_size)
    if cfg.backend == "spamd":
        return spamd.scan(raw, cfg.spamd_address, cfg.spamd_user, cfg.timeout, explain)
    if cfg.backend == "rspamd":
        s, msg = txn.session, txn.message
        headers = rspamd.smtp_headers(s.client_ip, s.helo, s.client_name, msg.mail_from,
                                      msg.recipients, msg.queue_id, s.auth_user)
        return rspamd.scan(raw, cfg.rspamd_url, headers, cfg.rspamd_password, cfg.timeout)
    return builtin.scan(raw, txn.results, services.clock(), cfg.bayes_database,
                        cfg.bayes_min_messages, explain)


def status_value(result: ScanResult, required: float) -> str:
    tests = ",".join(sorted(result.rule_names()))
    if len(tests) > MAX_TESTS_TEXT:
        tests = tests[:MAX_TESTS_TEXT].rpartition(",")[0] + ",..."
    return (f"{'Yes' if result.score >= required else 'No'}, score={result.score:.1f} "
            f"required={required:.1f} tests={tests or 'none'} scanner={result.backend}")


def marks(result: ScanResult, required: float) -> list[tuple[str, str]]:
    return [(SCORE, f"{result.score:.1f}"), (STATUS, status_value(result, required)),
            (FLAG, "YES" if result.score >= required else "NO")]


def decide(score: float, cfg: Any) -> Verdict | None:
    if cfg.reject_score and score >= cfg.reject_score:
        return Verdict.reject(f"Message refused as spam (score {score:.1f})")
    if cfg.quarantine_score and score >= cfg.quarantine_score:
        return Verdict.quarantine(f"spam score {score:.1f}")
    return None


def evaluate(txn: Transaction, services: Services, explain: bool = False) -> Outcome:
    """Scan and decide, without touching the message: the stage and the CLI share this."""
    cfg = services.config.spam
    try:
        result = scan(txn, services, explain)
    except ScannerUnavailable as exc:
        if cfg.unavailable_action == "tempfail":
            return Outcome(None, Verdict.tempfail("Spam scanner unavailable, try again later"),
                           problem=str(exc))
        return Outcome(None, None, [(STATUS, f'Unscanned, reason="{_quoted(str(exc))}"')], str(exc))
    return Outcome(result, decide(result.score, cfg), marks(result, cfg.required_score))


def remove_forged(msg: Message) -> None:
    """X-Spam-* headers that came with the message say what the sender wants us to believe."""
    names = {m.lower() for m in MARKS}
    if msg.mta_headers is not None:  # a replaced message: its headers are all written anew
        msg.headers = msg.kept + [(n, v) for n, v in msg.headers[len(msg.kept):]
                                  if n.lower() not in names]
        return
    for name in MARKS:
        count = len(msg.header_values(name))
        msg.edits.extend(HeaderEdit("delete", name, index=i) for i in range(count, 0, -1))


def stage(txn: Transaction, services: Services) -> Verdict | None:
    if services.config.spam.backend == "off":
        return None
    outcome = evaluate(txn, services)
    msg = txn.message
    if outcome.verdict is None or not outcome.verdict.final:  # a refused message keeps nothing
        remove_forged(msg)
        msg.edits.extend(HeaderEdit("insert", name, value) for name, value in outcome.headers)
    _log(txn, outcome, services.config.spam.backend)
    return outcome.verdict


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ").replace("\n", " ")


def _log(txn: Transaction, outcome: Outcome, backend: str) -> None:
    """A failed scan gets a warning of its own; a score goes into the message's one log line."""
    if outcome.result is None:
        action = outcome.verdict.action if outcome.verdict else "accept"
        log.warning("queue_id=%s spam scan failed, action=%s: %s", txn.message.queue_id,
                    action, outcome.problem)
        return
    txn.notes.append(f"spam={backend}:{outcome.result.score:.1f} "
                     f"spam_tests={','.join(outcome.result.rule_names()) or '-'}")
