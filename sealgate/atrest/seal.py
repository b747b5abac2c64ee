"""The last incoming stage: replace the verified, scored message by an envelope whose slots are the
local recipients' mailbox keys (isp), the domain key (corporate) or group keys (groups), plus
recovery keys. The verdict headers (Authentication-Results, spam) stay outside, readable."""

from __future__ import annotations

import logging

from sealgate.envelope.seal import Recipient, seal
from sealgate.keystore.client import KeystoreError, KeystoreUnavailable, MailboxKeyInfo
from sealgate.message import Message
from sealgate.pipeline import Services, Transaction, Verdict
from sealgate.policy.outbound import domain_of
from sealgate.policy.outer_headers import outer_headers
from sealgate.transport.outbound import local_domains

log = logging.getLogger("sealgate")


def local_recipients(msg: Message, services: Services) -> list[str]:
    """The recipients in our own domains, each once: the ones whose copy is sealed."""
    ours = local_domains({domain_of(r) for r in msg.recipients}, services)
    return list(dict.fromkeys(r for r in msg.recipients if domain_of(r) in ours))


def mailbox_keys(msg: Message, address: str, services: Services) -> list[MailboxKeyInfo]:
    """The keys asked with the envelope's content key when the message came sealed in transit,
    else asked now."""
    found = msg.mailbox_keys.get(address)
    if found is None:
        return services.keys.mailbox_keys(address)
    if isinstance(found, KeystoreError):
        raise found
    return found


def stage(txn: Transaction, services: Services) -> Verdict | None:
    cfg = services.config.seal
    msg = txn.message
    try:
        local = local_recipients(msg, services)
        if not local:
            return None
        keys: dict[str, Recipient] = {}
        missing = []
        for address in local:
            found = mailbox_keys(msg, address, services)
            missing += [] if found else [address]
            keys.update({k.key_id: Recipient(k.key_id, k.public) for k in found})
        if missing:
            txn.notes.append(f"sealed=no no_mailbox_key={','.join(missing)}")
            if cfg.missing_key == "tempfail":
                return Verdict.tempfail(f"No mailbox key registered for {missing[0]}; "
                                        "try again later")
            return None
        signer = domain_of(local[0])
        identity = services.keys.local_bundle(signer).identity
        sealed = seal(msg.wire_reader(), list(keys.values()), kind="mailbox",
                      sender_domain=signer, signer_key_id=identity.key_id,
                      sign=lambda data: services.keys.sign(signer, data),
                      now=int(services.clock()),
                      spool_threshold=services.config.milter.spool_threshold)
    except KeystoreUnavailable as exc:
        log.error("queue_id=%s keystore unavailable while sealing: %s", msg.queue_id, exc)
        return Verdict.tempfail("Key service unavailable, try again later")
    except KeystoreError as exc:
        log.error("queue_id=%s cannot seal: %s", msg.queue_id, exc)
        return Verdict.tempfail("Cannot seal the message for its mailbox now, try again later")
    outer = outer_headers(msg.headers, services.config.envelope, keep_subject=cfg.subject_visible)
    msg.replace(outer + [("MIME-Version", b" 1.0"),
                         ("Content-Type", b" " + sealed.content_type.encode())], sealed.body)
    txn.notes.append(f"sealed=yes mailbox_keys={len(keys)}")
    return None
