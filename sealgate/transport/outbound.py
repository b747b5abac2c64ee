"""Outgoing mail: per-recipient policy at RCPT, then at end of message DKIM-sign the original,
seal it for the keyed domains and DKIM-sign the envelope; plaintext copies split off as planned."""

from __future__ import annotations

import logging
import smtplib

from sealgate.envelope.seal import Recipient, seal
from sealgate.keystore.client import KeystoreError, KeystoreUnavailable
from sealgate.message import HeaderEdit, Message
from sealgate.pipeline import Services, Session, Transaction, Verdict
from sealgate.policy import outbound as policy
from sealgate.policy.outer_headers import outer_headers
from sealgate.sign.dkim import prepare, relaxed_body_hash

log = logging.getLogger("sealgate")
DKIM_ALGORITHMS = ("ed25519-sha256", "rsa-sha256")


def _is_local(domain: str, services: Services) -> bool:
    try:
        return bool(services.keys.local_bundle(domain).found)
    except KeystoreError as exc:
        if exc.code in ("not-found", "bad-request"):  # not ours, or not a domain name at all
            return False
        raise


def local_domains(domains: set[str], services: Services) -> set[str]:
    """Which of these domains the keystore holds keys for (ours)."""
    return {d for d in domains if _is_local(d, services)}


def domain_keys(domain: str, services: Services) -> policy.DomainKeys:
    """Our own domains are local (delivered here, never encrypted in transit)."""
    try:
        if _is_local(domain, services):
            return policy.DomainKeys(domain, "local")
        answer = services.keys.bundle(domain)
    except KeystoreError as exc:
        return policy.DomainKeys(domain, "refused", str(exc))
    return policy.DomainKeys(domain, answer.status, answer.reason, answer.encryption_required)


def check_recipient(session: Session, msg: Message, recipient: str,
                    services: Services) -> Verdict | None:
    """At RCPT TO of outgoing mail; refuses only this recipient, never the whole message."""
    domain = policy.domain_of(recipient)
    try:
        if domain not in msg.domain_keys:
            msg.domain_keys[domain] = domain_keys(domain, services)
    except KeystoreUnavailable as exc:
        log.error("queue_id=%s keystore unavailable at RCPT %s: %s", msg.queue_id, recipient, exc)
        return Verdict.tempfail("Key service unavailable, try again later")
    return policy.recipient_verdict(msg.domain_keys[domain], services.config.outbound)


def sender_domain(msg: Message, services: Services) -> str | None:
    """The domain we sign for: the From domain, else the envelope sender's, if we hold its keys."""
    candidates = [*msg.from_domains()[:1], policy.domain_of(msg.mail_from)]
    return next((d for d in candidates if d and _is_local(d, services)), None)


def dkim_headers(msg: Message, domain: str, services: Services,
                 algorithms: tuple[str, ...] = DKIM_ALGORITHMS) -> list[tuple[str, bytes]]:
    """One DKIM-Signature per algorithm (RFC 8463 dual signing), all signed by the keystore in
    one request. It refuses a selector rotated or revoked since we cached it, so no header names
    a key that did not sign it; the message is then signed again, once, with the selectors the
    keystore names now (the cache forgot the refused ones), rather than tempfailed."""
    keys = services.keys
    body_hash = relaxed_body_hash(msg.body)
    for attempt in (1, 2):
        pending = prepare(msg.headers, body_hash, domain=domain,
                          selectors={a: keys.dkim_selector(domain, a) for a in algorithms},
                          timestamp=int(services.clock()))
        try:
            signatures = keys.dkim_sign_many(domain, [(p.algorithm, p.selector, p.digest)
                                                      for p in pending])
            break
        except KeystoreError as exc:
            if attempt == 2 or exc.code not in ("unusable-key", "not-found"):
                raise
            log.info("queue_id=%s DKIM selector of %s refused (%s); signing again with the "
                     "current ones", msg.queue_id, domain, exc)
    return [("DKIM-Signature", b" " + p.value(signature).encode())
            for p, signature in zip(pending, signatures)]


def stage(txn: Transaction, services: Services) -> Verdict | None:
    """Sign and encrypt as planned; a keystore or re-injection failure tempfails the message,
    so nothing leaves unsigned or in plaintext by accident."""
    msg = txn.message
    try:
        return _sign_and_encrypt(msg, services)
    except KeystoreUnavailable as exc:
        log.error("queue_id=%s keystore unavailable: %s", msg.queue_id, exc)
        return Verdict.tempfail("Key service unavailable, try again later")
    except KeystoreError as exc:
        log.error("queue_id=%s keystore refused: %s", msg.queue_id, exc)
        return Verdict.tempfail(f"Cannot sign or encrypt now ({exc.code}), try again later")
    except (OSError, smtplib.SMTPException) as exc:
        log.error("queue_id=%s plaintext copy not re-injected at %s: %s", msg.queue_id,
                  services.config.outbound.reinject, exc)
        return Verdict.tempfail("Cannot hand over the plaintext copy now, try again later")


def _sign_and_encrypt(msg: Message, services: Services) -> Verdict | None:
    cfg = services.config
    for recipient in msg.recipients:  # recipients the MTA did not announce (non-SMTP submission)
        domain = policy.domain_of(recipient)
        if domain not in msg.domain_keys:
            msg.domain_keys[domain] = domain_keys(domain, services)
            refusal = policy.recipient_verdict(msg.domain_keys[domain], cfg.outbound)
            if refusal is not None:
                return refusal
    plan = policy.plan(msg.recipients, msg.domain_keys, cfg.outbound)
    signer = sender_domain(msg, services)
    if signer is None:
        if plan.encrypted:
            return Verdict.reject(f"This gateway holds no sealgate keys for the sender's domain "
                                  f"{msg.from_domains()[:1] or msg.mail_from}; cannot encrypt", "550",
                                  "5.7.5")
        return None
    if cfg.outbound.dkim_sign:
        signatures = dkim_headers(msg, signer, services)
        msg.headers[:0] = signatures
        msg.edits += [HeaderEdit("insert", name, value.decode()[1:]) for name, value in signatures]
    if plan.split:
        reinject(msg, list(plan.plaintext), cfg.outbound.reinject)
        msg.removed_recipients += plan.plaintext
    if plan.encrypted:
        encrypt(msg, plan.encrypted, signer, services)
    return None


def encrypt(msg: Message, recipients: tuple[str, ...], signer: str, services: Services) -> None:
    """Replace the message with an envelope for the recipients' domains, signed by `signer`."""
    keys = services.keys
    identity = keys.local_bundle(signer).identity
    targets = []
    for domain in sorted({policy.domain_of(r) for r in recipients}):
        answer = keys.bundle(domain)
        if not answer.found or answer.transport is None:
            raise KeystoreError("internal", f"key of {domain} vanished during the transaction")
        targets.append(Recipient(answer.transport.key_id, answer.transport.public))
    sealed = seal(msg.wire_reader(), targets, kind="transport", sender_domain=signer,
                  signer_key_id=identity.key_id, sign=lambda data: keys.sign(signer, data),
                  now=int(services.clock()), spool_threshold=services.config.milter.spool_threshold)
    envelope = outer_headers(msg.headers, services.config.envelope) + [
        ("MIME-Version", b" 1.0"), ("Content-Type", b" " + sealed.content_type.encode())]
    msg.edits = [e for e in msg.edits if e.name != "DKIM-Signature"]
    msg.replace(envelope, sealed.body)
    if services.config.outbound.dkim_sign:
        # Only sealgate gateways read an envelope, and all of them verify Ed25519: one RSA
        # signature less per message (the original inside carries both).
        msg.headers[:0] = dkim_headers(msg, signer, services, ("ed25519-sha256",))


def reinject(msg: Message, recipients: list[str], address: str) -> None:
    """Hand the signed plaintext to a milter-less Postfix listener for the unkeyed recipients."""
    host, _, port = address.rpartition(":")
    with smtplib.SMTP(host, int(port), timeout=60) as smtp:
        smtp.sendmail(msg.mail_from, recipients, msg.wire_reader().read())
