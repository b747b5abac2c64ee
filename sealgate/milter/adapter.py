"""One SealgateMilter instance per MTA connection (libmilter gives each its own thread)."""

from __future__ import annotations

import logging
import threading
from typing import Any

import Milter

from sealgate import pipeline, verify
from sealgate.message import Message
from sealgate.pipeline import Services, Session, Stage, Transaction, Verdict
from sealgate.policy.direction import is_outgoing
from sealgate.tlspolicy import requirement
from sealgate.atrest import seal
from sealgate.transport import inbound, outbound

log = logging.getLogger("sealgate")

TLS_MACROS = ("{tls_version}", "{cipher}", "{cipher_bits}", "{cert_subject}", "{cert_issuer}")


class Connections:
    """Open MTA connections, so SIGTERM can wait for them to finish."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = threading.Condition()

    def opened(self) -> None:
        with self._idle:
            self._count += 1

    def closed(self) -> None:
        with self._idle:
            self._count -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._count <= 0, timeout)


def _header_text(value: bytes) -> str:
    """pymilter takes header values as str and sends them as UTF-8: raw 8-bit bytes that are not
    UTF-8 travel as Latin-1 (one character a byte) instead of making the message fail; NUL,
    which the milter protocol cannot carry, is dropped."""
    value = value.replace(b"\0", b"")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _reply_text(text: str) -> str:
    """libmilter drops a reply containing a lone '%'; our texts never need one."""
    return text.replace("%", " percent")


class SealgateMilter(Milter.Base):
    services: Services  # swapped as a whole on reload; a message keeps the one it started with
    connections = Connections()

    def __init__(self) -> None:
        self.session = Session()
        self.message: Message | None = None
        self.services_now = type(self).services
        self.opened = False
        self.mail_refusal: Verdict | None = None  # decided at MAIL FROM, answered at RCPT TO

    # connection-level callbacks

    @Milter.noreply
    def connect(self, hostname: str, family: int, hostaddr: Any) -> int:
        self.connections.opened()
        self.opened = True
        self.session.client_name = hostname
        if isinstance(hostaddr, tuple) and hostaddr:
            self.session.client_ip = str(hostaddr[0])
        return Milter.CONTINUE

    @Milter.noreply
    def hello(self, heloname: str) -> int:
        self.session.helo = heloname
        self.session.tls = {m: v for m in TLS_MACROS if (v := self.getsymval(m))}
        return Milter.CONTINUE

    def close(self) -> int:
        self._discard_message()
        if self.opened:
            self.opened = False
            self.connections.closed()
        return Milter.CONTINUE

    # message-level callbacks

    @Milter.noreply
    def envfrom(self, mailfrom: str, *esmtp: str) -> int:
        """The TLS requirement is checked here and its refusal given at RCPT TO, before any data,
        as Postfix gives its own sender restrictions (smtpd_delay_reject): the MTA then need not
        wait for an answer to MAIL FROM. Nothing may raise here, as there is no answer to carry
        the tempfail; a failure is answered at RCPT TO instead."""
        self._discard_message()
        self.mail_refusal = None
        try:
            self._start_message(mailfrom.strip("<>"))
        except Exception:  # noqa: BLE001 - answered as tempfail at RCPT TO, never a pass
            log.exception("queue_id=%s internal error at MAIL FROM; answering tempfail",
                          self.message.queue_id if self.message else "NOQUEUE")
            self.mail_refusal = Verdict.tempfail("Internal error, try again later")
        return Milter.CONTINUE

    def _start_message(self, mail_from: str) -> None:
        self.services_now = type(self).services
        cfg = self.services_now.config.milter
        self.session.auth_user = self.getsymval("{auth_authen}") or ""
        self.session.outgoing = is_outgoing(self.session.client_ip, self.session.auth_user,
                                            cfg.internal_hosts)
        # TLS macros again: a client that did not repeat EHLO after STARTTLS (if the MTA sends
        # them at MAIL, docs/tls.md).
        self.session.tls = {m: v for m in TLS_MACROS if (v := self.getsymval(m))} or self.session.tls
        self.message = Message.spooling(cfg.spool_threshold, cfg.spool_dir)
        self.message.mail_from = mail_from
        self.message.queue_id = self.getsymval("i") or "NOQUEUE"
        self.mail_refusal = requirement.check(self.session, mail_from, self.services_now)
        self.message.tls_checked = self.mail_refusal is None

    def envrcpt(self, to: str, *esmtp: str) -> int:
        if self.mail_refusal is not None:
            return self._answer(self.mail_refusal)
        if self.message is None:
            return Milter.CONTINUE
        recipient = to.strip("<>")
        if self.session.outgoing and self.services_now.keys is not None:
            refused = outbound.check_recipient(self.session, self.message, recipient,
                                               self.services_now)
            if refused is not None:
                log.info("queue_id=%s to=<%s> refused: %s %s %s", self.message.queue_id,
                         recipient, refused.code, refused.dsn, refused.text)
                return self._answer(refused)
        self.message.recipients.append(recipient)
        return Milter.CONTINUE

    @Milter.noreply
    @Milter.decode("bytes")
    def header(self, name: str, value: bytes) -> int:
        if self.message is not None:
            self.message.headers.append((name, value))
        return Milter.CONTINUE

    @Milter.noreply
    def body(self, chunk: bytes) -> int:
        if self.message is not None:
            self.message.body.write(chunk)
        return Milter.CONTINUE

    def eom(self) -> int:
        msg = self.message
        if msg is None:
            return Milter.CONTINUE
        msg.queue_id = self.getsymval("i") or msg.queue_id
        txn = Transaction(self.session, msg)
        verdict = pipeline.run(self._stages(), txn, self.services_now)
        if verdict.action in ("accept", "quarantine"):
            self._apply(msg)
        self._log(txn, verdict)
        self._discard_message()
        return self._answer(verdict)

    def abort(self) -> int:
        self._discard_message()
        return Milter.CONTINUE

    # helpers

    def _stages(self) -> list[tuple[str, Stage]]:
        """Outgoing: sign and encrypt; incoming: decrypt, then verify. Without a keystore only
        incoming mail is touched."""
        svc = self.services_now
        if self.session.outgoing:
            return [("outbound", outbound.stage)] if svc.keys is not None else []
        if svc.keys is None:
            return verify.incoming_stages(svc.config.verify)
        sealing: list[tuple[str, Stage]] = [("seal", seal.stage)] if svc.config.seal.enabled else []
        return [("inbound", inbound.stage)] + verify.incoming_stages(svc.config.verify) + sealing

    def _apply(self, msg: Message) -> None:
        """Put the pipeline's changes into the MTA's copy: a replaced message first, then edits."""
        for recipient in msg.removed_recipients:
            self.delrcpt(f"<{recipient}>")
        if msg.mta_headers is not None:
            self._replace(msg)
        for edit in msg.edits:
            if edit.action == "delete":
                self.chgheader(edit.name, edit.index, "")
            else:
                # P_HDR_LEADSPC is negotiated: the value is used verbatim, so give it its space.
                self.addheader(edit.name, " " + edit.value, 0)

    def _replace(self, msg: Message) -> None:
        """Delete what the MTA has (but the kept trace headers), add the new headers and body."""
        assert msg.mta_headers is not None
        kept = list(msg.kept)
        counts: dict[str, int] = {}
        doomed: list[tuple[str, int]] = []
        for name, value in msg.mta_headers:
            counts[name.lower()] = counts.get(name.lower(), 0) + 1
            if (name, value) in kept:
                kept.remove((name, value))
            else:
                doomed.append((name, counts[name.lower()]))
        for name, index in reversed(doomed):  # highest index first: the others keep theirs
            self.chgheader(name, index, "")
        for name, value in msg.headers[len(msg.kept):]:
            self.addheader(name, _header_text(value.replace(b"\r\n", b"\n")))
        for chunk in msg.iter_body():
            self.replacebody(chunk)

    def _answer(self, verdict: Verdict) -> int:
        if verdict.action == "tempfail":
            self.setreply(verdict.code, verdict.dsn, _reply_text(verdict.text))
            return Milter.TEMPFAIL
        if verdict.action == "reject":
            self.setreply(verdict.code, verdict.dsn, _reply_text(verdict.text))
            return Milter.REJECT
        if verdict.action == "discard":
            return Milter.DISCARD
        if verdict.action == "quarantine":
            self.quarantine(_reply_text(verdict.text))
        return Milter.CONTINUE

    def _log(self, txn: Transaction, verdict: Verdict) -> None:
        s = txn.session
        results = " ".join(f"{r.method}={r.result}" for r in txn.results) or "-"
        log.info("queue_id=%s client=%s[%s] direction=%s from=<%s> rcpts=%d results=%s%s action=%s%s",
                 txn.message.queue_id, s.client_name, s.client_ip,
                 "outgoing" if s.outgoing else "incoming", txn.message.mail_from,
                 len(txn.message.recipients), results, "".join(" " + n for n in txn.notes),
                 verdict.action, f' reason="{verdict.text}"' if verdict.text else "")

    def _discard_message(self) -> None:
        if self.message is not None:
            self.message.close()
            self.message = None


# Header values arrive with their leading whitespace, so DKIM's simple canonicalization sees
# exactly what was sent.
Milter.enable_protocols(SealgateMilter, Milter.P_HDR_LEADSPC)
