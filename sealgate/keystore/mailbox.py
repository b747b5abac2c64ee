"""Mailbox keys by domain policy (seed 002): isp (one client-held key per address),
corporate (one domain key), groups (one key per group, addresses as members).

An isp key's private half never reaches the server, not even when the
policy later changes: only its signed registration does. Corporate and
group keys are created and held here, like the gateway keys.
"""

from __future__ import annotations

from sealgate.keystore import names
from sealgate.keystore.errors import KeystoreError
from sealgate.keystore.lifecycle import MAILBOX_POLICIES, add_held
from sealgate.keystore.material import X25519
from sealgate.keystore.store import DOMAIN_WIDE, KeyRecord, KeyStore
from sealgate.mailboxkey.request import RegistrationRefused, verify


def _policy(store: KeyStore, domain: str) -> str:
    policy = store.mailbox_policy(domain)
    if policy is None:
        raise KeystoreError("not-found", f"domain {domain} has no keys here; run "
                                         f"`sealgate keys init {domain}` first")
    return policy


def register(store: KeyStore, text: str, now: int) -> KeyRecord:
    """Accept a client's signed registration; its previous key of the same purpose retires."""
    try:
        request = verify(text)
    except RegistrationRefused as exc:
        raise KeystoreError("refused", f"mailbox key registration refused: {exc}") from None
    address = names.address(request.address)
    domain = address.split("@")[1]
    policy = _policy(store, domain)
    if request.purpose == "mailbox" and policy != "isp":
        raise KeystoreError("refused", f"mailbox key registration for {address} refused: "
                                       f"{domain}'s mailbox policy is {policy}, and client-generated "
                                       f"keys are used only under isp (recovery keys are always accepted)")
    with store.db.write() as conn:
        if conn.execute("SELECT 1 FROM keys WHERE id = ?", (request.key_id,)).fetchone():
            raise KeystoreError("refused", f"mailbox key {request.key_id} for {address} is already "
                                           f"registered (a replayed request?); generate a new key")
        previous = store.keys(domain, request.purpose, address, ("active",))
        new = store.add(conn, domain=domain, purpose=request.purpose, algorithm=X25519,
                        public=request.public, private=None, now=now, owner=address,
                        registration=request.text, key_id=request.key_id)
        for old in previous:
            store.retire(conn, old.key_id, now, superseded_by=new.key_id)
    return new


def set_policy(store: KeyStore, domain: str, policy: str, now: int) -> list[KeyRecord]:
    """Switch the domain's mode; corporate gets its domain key on first use. Returns keys made."""
    if policy not in MAILBOX_POLICIES:
        raise KeystoreError("bad-request", f"mailbox policy {policy!r}: expected one of "
                                           f"{', '.join(MAILBOX_POLICIES)}")
    _policy(store, domain)
    made = []
    with store.db.write() as conn:
        conn.execute("UPDATE domains SET mailbox_policy = ? WHERE domain = ?", (policy, domain))
        if policy == "corporate" and not store.keys(domain, "mailbox", DOMAIN_WIDE, ("active",)):
            made.append(add_held(store, conn, domain, "mailbox", X25519, now, DOMAIN_WIDE))
    return made


def create_group(store: KeyStore, domain: str, name: str, now: int) -> KeyRecord:
    _policy(store, domain)
    with store.db.write() as conn:
        if conn.execute("SELECT 1 FROM groups WHERE domain = ? AND name = ?", (domain, name)).fetchone():
            raise KeystoreError("refused", f"group {name} of {domain} already exists")
        conn.execute("INSERT INTO groups (domain, name, created) VALUES (?, ?, ?)", (domain, name, now))
        return add_held(store, conn, domain, "group", X25519, now, name)


def set_membership(store: KeyStore, domain: str, name: str, address: str, member: bool) -> None:
    if not address.endswith("@" + domain):
        raise KeystoreError("bad-request", f"{address} is not an address of {domain}")
    with store.db.write() as conn:
        if not conn.execute("SELECT 1 FROM groups WHERE domain = ? AND name = ?",
                            (domain, name)).fetchone():
            raise KeystoreError("not-found", f"no group {name} in {domain}; "
                                             f"`sealgate keys group create {domain} {name}` makes it")
        if member:
            conn.execute("INSERT OR IGNORE INTO group_members (domain, name, address) VALUES (?, ?, ?)",
                         (domain, name, address))
        else:
            conn.execute("DELETE FROM group_members WHERE domain = ? AND name = ? AND address = ?",
                         (domain, name, address))


def groups(store: KeyStore, domain: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {r["name"]: [] for r in store.db.rows(
        "SELECT name FROM groups WHERE domain = ? ORDER BY name", (domain,))}
    for row in store.db.rows("SELECT name, address FROM group_members WHERE domain = ? "
                             "ORDER BY address", (domain,)):
        found[row["name"]].append(row["address"])
    return found


def mailbox_keys(store: KeyStore, address: str) -> list[KeyRecord]:
    """The keys to seal mail for `address` to, by its domain's policy, plus its recovery key.

    An empty list means no key is registered: the caller decides (deliver as is or tempfail).
    """
    address = names.address(address)
    domain = address.split("@")[1]
    policy = _policy(store, domain)
    if policy == "isp":
        found = store.keys(domain, "mailbox", address, ("active",))[-1:]
    elif policy == "corporate":
        found = store.keys(domain, "mailbox", DOMAIN_WIDE, ("active",))[-1:]
    else:
        member_of = [r["name"] for r in store.db.rows(
            "SELECT name FROM group_members WHERE domain = ? AND address = ? ORDER BY name",
            (domain, address))]
        found = [k for name in member_of for k in store.keys(domain, "group", name, ("active",))[-1:]]
    return found + store.keys(domain, "recovery", address, ("active",))[-1:]
