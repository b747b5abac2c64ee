"""Key lifecycle: create a domain's keys, rotate on schedule, revoke, destroy what has expired.

Transport keys (forward secrecy at epoch granularity): a new key starts every
`window`; each stays valid for window + overlap, so senders holding a cached
bundle still reach us; its private half is kept `grace` longer for mail still
queued in transit, then erased. From then on nobody, the keystore included,
can open mail wrapped to it.

Every change runs in one write transaction and republishes the bundle in it.
"""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import dataclass
from typing import Any

from sealgate.keystore import bundle
from sealgate.keystore.clock import DAY
from sealgate.keystore.encoding import b64, canonical_json, iso
from sealgate.keystore.errors import KeystoreError
from sealgate.keystore.material import ED25519, RSA2048, X25519, generate
from sealgate.keystore.store import DOMAIN_WIDE, KeyRecord, KeyStore

MAILBOX_POLICIES = ("isp", "corporate", "groups")
ROTATABLE = ("transport", "identity", "dkim", "mailbox", "group")


@dataclass(frozen=True)
class Schedule:
    window: int   # seconds a transport key is the newest
    overlap: int  # seconds it stays valid after its successor starts
    grace: int    # seconds its private half is kept after validity ends
    # Seconds ahead that keys for coming windows exist and are published. The bundle, and so
    # the DNS record naming its hash, then changes only when a batch is added (about every
    # prepublish/2), not at every window; each key is still destroyed after its own window.
    prepublish: int = 0

    @classmethod
    def from_config(cls, keystore_config: Any) -> "Schedule":
        return cls(keystore_config.transport_window_days * DAY,
                   keystore_config.transport_overlap_days * DAY,
                   keystore_config.transport_grace_days * DAY,
                   keystore_config.transport_prepublish_days * DAY)


def dkim_selector(algorithm: str, now: int) -> str:
    kind = "ed" if algorithm == ED25519 else "rsa"
    return f"sg-{iso(now)[:10].replace('-', '')}-{kind}-{secrets.token_hex(2)}"


def publish(store: KeyStore, conn: sqlite3.Connection, domain: str, now: int) -> None:
    """Sign and store the domain's bundle as it stands inside this transaction."""
    digest, body = bundle.build(store, domain, now)
    conn.execute("INSERT OR IGNORE INTO bundles (domain, hash, body, created) VALUES (?, ?, ?, ?)",
                 (domain, digest, body, now))


def _add_transport(store: KeyStore, conn: sqlite3.Connection, domain: str, schedule: Schedule,
                   now: int, starts: int | None = None) -> KeyRecord:
    """A transport key whose window begins at `starts` (now, unless made ahead of time)."""
    previous = store.newest(domain, "transport")
    public, private = generate(X25519)
    begin = now if starts is None else starts
    key = store.add(conn, domain=domain, purpose="transport", algorithm=X25519, public=public,
                    private=private, now=now, valid_from=begin,
                    valid_until=begin + schedule.window + schedule.overlap)
    if previous is not None:
        store.supersede(conn, previous.key_id, key.key_id)
    return key


def _add_ahead(store: KeyStore, conn: sqlite3.Connection, domain: str, schedule: Schedule,
               now: int) -> list[KeyRecord]:
    """Keys for the coming windows, once fewer than half of `prepublish` are left."""
    newest = store.newest(domain, "transport")
    if newest is None or schedule.prepublish <= 0 or \
            newest.valid_from >= now + schedule.prepublish // 2:
        return []
    made = []
    starts = newest.valid_from + schedule.window
    while starts <= now + schedule.prepublish:
        made.append(_add_transport(store, conn, domain, schedule, now, starts))
        starts += schedule.window
    return made


def add_held(store: KeyStore, conn: sqlite3.Connection, domain: str, purpose: str, algorithm: str,
              now: int, owner: str = "", pair: tuple[bytes, bytes] | None = None) -> KeyRecord:
    public, private = pair or generate(algorithm)
    return store.add(conn, domain=domain, purpose=purpose, algorithm=algorithm, public=public,
                     private=private, now=now, owner=owner)


def init_domain(store: KeyStore, domain: str, schedule: Schedule, now: int,
                mailbox_policy: str = "isp") -> list[KeyRecord]:
    """Identity, first transport key, DKIM Ed25519 and RSA keys, and the first bundle."""
    if mailbox_policy not in MAILBOX_POLICIES:
        raise KeystoreError("bad-request", f"mailbox policy {mailbox_policy!r}: expected one of "
                                           f"{', '.join(MAILBOX_POLICIES)}")
    rsa_pair = generate(RSA2048)  # ~0.1 s: outside the write lock
    with store.db.write() as conn:
        if conn.execute("SELECT 1 FROM domains WHERE domain = ?", (domain,)).fetchone():
            raise KeystoreError("refused", f"domain {domain} already has keys; use "
                                           f"`sealgate keys rotate {domain}` to replace them")
        conn.execute("INSERT INTO domains (domain, mailbox_policy, created) VALUES (?, ?, ?)",
                     (domain, mailbox_policy, now))
        made = [add_held(store, conn, domain, "identity", ED25519, now),
                _add_transport(store, conn, domain, schedule, now),
                *_add_ahead(store, conn, domain, schedule, now),
                add_held(store, conn, domain, "dkim", ED25519, now, dkim_selector(ED25519, now)),
                add_held(store, conn, domain, "dkim", RSA2048, now, dkim_selector(RSA2048, now),
                          rsa_pair)]
        if mailbox_policy == "corporate":
            made.append(add_held(store, conn, domain, "mailbox", X25519, now, DOMAIN_WIDE))
        publish(store, conn, domain, now)
    return made


def _require_domain(store: KeyStore, domain: str) -> None:
    if store.mailbox_policy(domain) is None:
        raise KeystoreError("not-found", f"domain {domain} has no keys here; run "
                                         f"`sealgate keys init {domain}` first")


def _replace(store: KeyStore, conn: sqlite3.Connection, old: KeyRecord, now: int,
             pair: tuple[bytes, bytes] | None = None) -> KeyRecord:
    """A successor of the same use; the old key retires (its private half kept for old mail)."""
    owner = dkim_selector(old.algorithm, now) if old.purpose == "dkim" else old.owner
    new = add_held(store, conn, old.domain, old.purpose, old.algorithm, now, owner, pair)
    store.retire(conn, old.key_id, now, superseded_by=new.key_id)
    return new


def _rotate_identity(store: KeyStore, conn: sqlite3.Connection, old: KeyRecord,
                     now: int) -> KeyRecord:
    """The outgoing key signs the change, so domains that pinned it accept the new one."""
    old_seed = store.private(old)
    assert old_seed is not None
    new = _replace(store, conn, old, now)
    change = bundle.sign_entry(old_seed, "identity-change", old.domain, {
        "from_key_id": old.key_id, "from_public": b64(old.public),
        "to_key_id": new.key_id, "to_public": b64(new.public), "changed": iso(now)})
    conn.execute("INSERT INTO identity_changes (to_key_id, domain, record) VALUES (?, ?, ?)",
                 (new.key_id, old.domain, canonical_json(change).decode()))
    store.erase_private(conn, old.key_id)  # nothing is signed with a retired identity again
    return new


def rotate(store: KeyStore, domain: str, purpose: str, schedule: Schedule, now: int,
           owner: str | None = None) -> list[KeyRecord]:
    """Replace the domain's key(s) of `purpose` now; `owner` names the group for purpose group."""
    _require_domain(store, domain)
    if purpose not in ROTATABLE:
        raise KeystoreError("bad-request", f"purpose {purpose!r}: expected one of {', '.join(ROTATABLE)} "
                                           f"(a client's own mailbox key is replaced by registering a new one)")
    rsa_pair = generate(RSA2048) if purpose == "dkim" else None
    with store.db.write() as conn:
        if purpose == "transport":
            made = [_add_transport(store, conn, domain, schedule, now)]
        else:
            owner = {"mailbox": DOMAIN_WIDE}.get(purpose, owner)
            current = [k for k in store.keys(domain, purpose, owner, ("active",)) if k.held]
            if not current:
                raise KeystoreError("not-found", f"{domain} has no active {purpose} key"
                                    + (f" for {owner!r}" if owner else "") + " held here to rotate")
            if purpose == "identity":
                made = [_rotate_identity(store, conn, current[-1], now)]
            else:
                made = [_replace(store, conn, old, now, rsa_pair if old.algorithm == RSA2048 else None)
                        for old in current]
                if purpose == "dkim":  # a retired DKIM key never signs again
                    for old in current:
                        store.erase_private(conn, old.key_id)
        publish(store, conn, domain, now)
    store.db.purge_freed_pages()
    return made


def revoke(store: KeyStore, key_id: str, reason: str, schedule: Schedule, now: int) -> list[KeyRecord]:
    """Revoke a key for good: its private half is erased, a signed record says so, and a
    successor is created where the domain needs one to keep working. Returns the successors."""
    old = store.key(key_id)
    if old is None:
        raise KeystoreError("not-found", f"no key {key_id}; `sealgate keys list` shows the ids")
    if old.state in ("revoked", "destroyed"):
        raise KeystoreError("refused", f"key {key_id} is already {old.state}")
    with store.db.write() as conn:
        made: list[KeyRecord] = []
        if old.purpose == "identity":
            made.append(add_held(store, conn, old.domain, "identity", ED25519, now))
        store.set_state(conn, old.key_id, "revoked", now, reason)
        signer = store.newest(old.domain, "identity")
        assert signer is not None
        seed = store.private(signer)
        assert seed is not None
        record = bundle.sign_entry(seed, "revocation", old.domain, {
            "key_id": old.key_id, "purpose": old.purpose, "algorithm": old.algorithm,
            "public": b64(old.public), "revoked": iso(now), "reason": reason,
            "signer": signer.key_id})
        conn.execute("INSERT INTO revocations (key_id, domain, record) VALUES (?, ?, ?)",
                     (old.key_id, old.domain, canonical_json(record).decode()))
        if old.purpose == "transport" and not any(
                k.valid_until and k.valid_until > now for k in store.keys(old.domain, "transport",
                                                                          states=("active",))):
            made.append(_add_transport(store, conn, old.domain, schedule, now))
        elif old.purpose in ("dkim", "group") or (old.purpose == "mailbox" and old.owner == DOMAIN_WIDE):
            made.append(add_held(store, conn, old.domain, old.purpose, old.algorithm, now,
                                  dkim_selector(old.algorithm, now) if old.purpose == "dkim"
                                  else old.owner))
        if made:
            store.supersede(conn, old.key_id, made[0].key_id)
        publish(store, conn, old.domain, now)
    store.db.purge_freed_pages()
    return made


def maintain(store: KeyStore, domain: str, schedule: Schedule, now: int) -> list[str]:
    """Retire, destroy and rotate transport keys as the schedule says; what changed, for the log."""
    changes: list[str] = []
    with store.db.write() as conn:
        for key in store.keys(domain, "transport", states=("active",)):
            if key.valid_until is not None and key.valid_until <= now:
                store.retire(conn, key.key_id, now)
                changes.append(f"retired transport key {key.key_id} of {domain}")
        for key in store.keys(domain, "transport", states=("retired",)):
            if key.valid_until is not None and key.valid_until + schedule.grace <= now:
                store.set_state(conn, key.key_id, "destroyed", now, "validity and grace period over")
                changes.append(f"destroyed transport key {key.key_id} of {domain}")
        newest = store.newest(domain, "transport")
        if newest is None or newest.valid_from + schedule.window <= now:
            key = _add_transport(store, conn, domain, schedule, now)
            changes.append(f"new transport key {key.key_id} of {domain}, valid until "
                           f"{iso(key.valid_until or 0)}")
        ahead = _add_ahead(store, conn, domain, schedule, now)
        changes += [f"new transport key {k.key_id} of {domain} for {iso(k.valid_from)}"
                    for k in ahead]
        # With keys made ahead, retiring and destroying leave the published bundle alone (its
        # expired keys are never chosen), so the DNS record stays valid until the next batch.
        if any(c.startswith("new") for c in changes) or (changes and not schedule.prepublish):
            publish(store, conn, domain, now)
    if any(c.startswith("destroyed") for c in changes):
        store.db.purge_freed_pages()
    return changes
