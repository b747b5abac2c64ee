"""Incoming mail: open a transport envelope addressed to us and put the original in its place, so
the verification stages that follow see plain mail; and tag plaintext that should have been sealed."""

from __future__ import annotations

import logging
import tempfile

from sealgate.atrest.seal import local_recipients
from sealgate.envelope.header import EnvelopeError
from sealgate.envelope.seal import Opened, decrypt, parse, verify_signature
from sealgate.keystore.client import KeystoreError, KeystoreUnavailable
from sealgate.message import Message, parse_message
from sealgate.pipeline import AuthResult, Services, Transaction, Verdict

log = logging.getLogger("sealgate")
METHOD = "sealgate"


class Refused(Exception):
    """An envelope we will not deliver; `temporary` when the cause may pass (retry later)."""

    def __init__(self, text: str, temporary: bool = False) -> None:
        super().__init__(text)
        self.temporary = temporary


def open_slot(opened: Opened, msg: Message, services: Services) -> tuple[str, bytes]:
    """(key id, content key) from the first slot one of our keys opens. The mailbox keys that
    sealing will need go in the same keystore request as the first slot (one round trip less a
    message); they are asked again by sealing only when that slot is not ours."""
    try:
        wanted = local_recipients(msg, services) if services.config.seal.enabled else []
    except KeystoreError:  # sealing asks again and answers the refusal itself
        wanted = []
    problems = []
    for n, slot in enumerate(opened.header.slots):
        key = (slot.key_id, slot.ephemeral_public, slot.wrapped,
               slot.context(opened.header.stream_header))
        try:
            if n == 0 and wanted:
                content_key, msg.mailbox_keys = services.keys.unwrap_with_mailbox_keys(*key, wanted)
            else:
                content_key = services.keys.unwrap(*key)
            return slot.key_id, content_key
        except KeystoreError as exc:
            if exc.code != "not-found":
                problems.append(str(exc))
    if problems:
        raise Refused("sealgate envelope cannot be opened: " + "; ".join(problems))
    raise Refused("sealgate envelope is not addressed to any key of this gateway")


def check_sender(opened: Opened, services: Services) -> None:
    domain = opened.header.sender_domain
    try:
        answer = services.keys.bundle(domain)
    except KeystoreError as exc:
        raise Refused(f"sender {domain!r} of the envelope cannot be looked up: {exc}") from None
    if answer.status == "temporary":
        raise Refused(f"key bundle of sender {domain} unavailable now ({answer.reason})", True)
    if not answer.found or answer.identity is None:
        raise Refused(f"sender {domain} has no valid sealgate key bundle "
                      f"({answer.reason or answer.status})")
    if answer.identity.key_id != opened.header.signer_key_id:
        raise Refused(f"envelope signed by key {opened.header.signer_key_id}, but the identity "
                      f"key of {domain} is {answer.identity.key_id}")
    verify_signature(opened, answer.identity.public)


def open_envelope(msg: Message, opened: Opened, services: Services) -> str:
    """Replace `msg` by the original inside; returns the key id that opened it."""
    key_id, content_key = open_slot(opened, msg, services)
    check_sender(opened, services)
    threshold = services.config.milter.spool_threshold
    with tempfile.SpooledTemporaryFile(threshold) as plaintext:
        decrypt(opened, msg.body, content_key, plaintext)
        original = parse_message(plaintext, threshold)
    # Received headers added since the envelope left the sender stay on top of the original.
    msg.replace(original.headers, original.body,
                trace=[(n, v) for n, v in msg.headers if n.lower() == "received"])
    return key_id


def downgrade(msg: Message, services: Services) -> AuthResult:
    """Plaintext: sealgate=fail when the sender's domain says it always encrypts, else none."""
    domains = msg.from_domains()
    if len(set(domains)) != 1 or not domains[0]:
        return AuthResult(METHOD, "none")
    try:
        answer = services.keys.bundle(domains[0])
    except KeystoreError as exc:  # a From domain that is no domain name: nothing to look up
        return AuthResult(METHOD, "none", reason=str(exc))
    if answer.status == "temporary":
        return AuthResult(METHOD, "temperror", [("header", "from", domains[0])], reason=answer.reason)
    if answer.found and answer.encryption_required:
        return AuthResult(METHOD, "fail", [("header", "from", domains[0])],
                          reason="downgrade: plaintext from a domain that requires encryption")
    return AuthResult(METHOD, "none")


def stage(txn: Transaction, services: Services) -> Verdict | None:
    msg = txn.message
    try:
        opened = parse(msg.content_type(), msg.body)
        if opened is None or opened.header.kind != "transport":
            result = downgrade(msg, services)
            txn.results.append(result)
            if result.result == "fail" and services.config.inbound.downgrade_action == "reject":
                return Verdict.reject(f"{result.prop('header', 'from')} requires encryption; "
                                      "plaintext refused (downgrade)", "550", "5.7.5")
            return None
        key_id = open_envelope(msg, opened, services)
    except KeystoreUnavailable as exc:
        log.error("queue_id=%s keystore unavailable: %s", msg.queue_id, exc)
        return Verdict.tempfail("Key service unavailable, try again later")
    except Refused as exc:
        txn.results.append(AuthResult(METHOD, "temperror" if exc.temporary else "fail",
                                      reason=str(exc)))
        if exc.temporary:
            return Verdict("tempfail", str(exc), "451", "4.7.5")
        return Verdict.reject(str(exc), "550", "5.7.5")
    except EnvelopeError as exc:
        txn.results.append(AuthResult(METHOD, "fail", reason=str(exc)))
        return Verdict.reject(f"sealgate envelope refused: {exc}", "550", "5.7.5")
    txn.notes.append(f"opened_with={key_id}")
    txn.results.append(AuthResult(METHOD, "pass", [("header", "d", opened.header.sender_domain),
                                                   ("header", "key-id", opened.header.signer_key_id)]))
    return None
