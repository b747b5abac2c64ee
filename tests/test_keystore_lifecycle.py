"""Key lifecycle with a controllable clock: init, rotation, overlap, destruction, revocation, DKIM."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from types import SimpleNamespace

import nacl.signing
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from sealgate.dns.zonefile import ZoneFileResolver
from sealgate.keystore import bundle, dnsrecord, lifecycle, material, wrapping
from sealgate.keystore.bundle import BundleRefused
from sealgate.keystore.clock import DAY
from sealgate.keystore.db import Database
from sealgate.keystore.discovery import Discovery
from sealgate.keystore.encoding import b64, parse_iso, unb64
from sealgate.keystore.errors import KeystoreError
from sealgate.keystore.masterkey import (
    MasterKeyError,
    Sealer,
    create_master_key,
    load_master_key,
    master_key_path,
)
from sealgate.keystore.operations import Operations
from sealgate.testbed.keystore import KeystoreProcess
from sealgate.keystore.publish import zone_lines
from sealgate.keystore.store import KeyStore

SCHEDULE = lifecycle.Schedule(window=7 * DAY, overlap=7 * DAY, grace=5 * DAY)
T0 = parse_iso("2026-01-05T00:00:00Z", "T0")
DOMAIN = "example.test"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(Database(tmp_path / "keystore.db"), Sealer(os.urandom(32)))


def operations(store: KeyStore, clock: Clock) -> Operations:
    discovery = Discovery(store, ZoneFileResolver([]), clock, 1.0, 65536)
    return Operations(store, discovery, clock, False, False)


def call(ops: Operations, op: str, **args: object) -> dict[str, object]:
    """The operation's result; KeystoreError as the service's client would raise it."""
    answer = ops.handle({"op": op, **args})
    if not answer["ok"]:
        raise KeystoreError(answer["error"], answer["message"])
    result: dict[str, object] = answer["result"]
    return result


def unwrap(ops: Operations, key_id: str, slot: tuple[bytes, bytes], context: bytes = b"ctx") -> bytes:
    return unb64(call(ops, "unwrap", key_id=key_id, ephemeral_public=b64(slot[0]),
                      wrapped=b64(slot[1]), context=b64(context))["content_key"], "content_key")


def current_bundle(store: KeyStore, now: int) -> bundle.VerifiedBundle:
    latest = store.latest_bundle(DOMAIN)
    assert latest is not None
    return bundle.verify(latest[1], DOMAIN, latest[0], now, pinned=None)


def test_init_creates_every_key_and_a_verifiable_bundle(store: KeyStore, tmp_path: Path) -> None:
    made = lifecycle.init_domain(store, DOMAIN, SCHEDULE, T0)
    assert sorted((k.purpose, k.algorithm) for k in made) == [
        ("dkim", "ed25519"), ("dkim", "rsa-2048"), ("identity", "ed25519"), ("transport", "x25519")]
    transport = next(k for k in made if k.purpose == "transport")
    assert (transport.valid_from, transport.valid_until) == (T0, T0 + 14 * DAY)
    verified = current_bundle(store, T0)
    assert verified.current_transport(T0).key_id == transport.key_id  # type: ignore[union-attr]

    zone = tmp_path / "published.zone"
    zone.write_text("\n".join(zone_lines(store, DOMAIN, "https://mx.example.test", 600, True, False)) + "\n")
    resolver = ZoneFileResolver([str(zone)])
    record = dnsrecord.lookup(resolver, DOMAIN)
    assert record is not None and record.bundle_hash == verified.hash and record.encryption_required
    assert record.bundle_url == f"https://mx.example.test/.well-known/sealgate/{DOMAIN}/{verified.hash}.json"
    for key in (k for k in made if k.purpose == "dkim"):
        text = resolver.lookup(f"{key.owner}._domainkey.{DOMAIN}", "TXT").texts()[0].decode()
        assert unb64(text.split("p=")[1], "p") == key.public
    with pytest.raises(KeystoreError, match="already has keys"):
        lifecycle.init_domain(store, DOMAIN, SCHEDULE, T0)


def test_a_rotation_in_the_same_second_as_init_is_the_key_senders_use(store: KeyStore) -> None:
    lifecycle.init_domain(store, DOMAIN, SCHEDULE, T0)
    first = store.newest(DOMAIN, "transport")
    [second] = lifecycle.rotate(store, DOMAIN, "transport", SCHEDULE, T0)
    assert first is not None and second.valid_from == first.valid_from == T0
    assert current_bundle(store, T0).current_transport(T0).key_id == second.key_id  # type: ignore[union-attr]


def test_transport_keys_rotate_overlap_and_are_destroyed(store: KeyStore, clock: Clock) -> None:
    lifecycle.init_domain(store, DOMAIN, SCHEDULE, T0)
    ops = operations(store, clock)
    first = store.newest(DOMAIN, "transport")
    assert first is not None
    content_key = os.urandom(32)
    slot = wrapping.wrap(first.public, content_key, b"ctx")  # mail encrypted to the first key

    clock.now = T0 + 6 * DAY
    assert lifecycle.maintain(store, DOMAIN, SCHEDULE, clock.now) == []

    clock.now = T0 + 7 * DAY  # the next key starts; the first stays valid (overlap)
    assert [c.split()[0] for c in lifecycle.maintain(store, DOMAIN, SCHEDULE, clock.now)] == ["new"]
    second = store.newest(DOMAIN, "transport")
    assert second is not None and second.key_id != first.key_id
    verified = current_bundle(store, clock.now)
    assert {k.key_id for k in verified.transport} == {first.key_id, second.key_id}
    assert verified.current_transport(clock.now).key_id == second.key_id  # type: ignore[union-attr]
    assert store.key(first.key_id).superseded_by == second.key_id  # type: ignore[union-attr]

    clock.now = T0 + 14 * DAY  # the first key's validity ends: retired, still opens queued mail
    changes = lifecycle.maintain(store, DOMAIN, SCHEDULE, clock.now)
    assert any(c.startswith(f"retired transport key {first.key_id}") for c in changes)
    assert first.key_id not in {k.key_id for k in current_bundle(store, clock.now).transport}
    assert unwrap(ops, first.key_id, slot) == content_key

    [row] = store.db.rows("SELECT private FROM keys WHERE id = ?", (first.key_id,))
    sealed = bytes(row["private"])
    clock.now = T0 + 19 * DAY  # validity + grace over: destroyed
    changes = lifecycle.maintain(store, DOMAIN, SCHEDULE, clock.now)
    assert any(c.startswith(f"destroyed transport key {first.key_id}") for c in changes)
    destroyed = store.key(first.key_id)
    assert destroyed is not None and destroyed.state == "destroyed" and not destroyed.held
    assert destroyed.destroyed_at == clock.now
    with pytest.raises(KeystoreError, match="destroyed") as caught:
        unwrap(ops, first.key_id, slot)
    assert caught.value.code == "unusable-key"
    # Not only refused: gone. The sealed private key is in neither the database nor its WAL.
    for path in (store.db.path, Path(f"{store.db.path}-wal")):
        if path.exists():
            assert sealed not in path.read_bytes(), path
    assert unwrap(ops, second.key_id, wrapping.wrap(second.public, content_key, b"ctx")) == content_key


def test_keys_made_ahead_keep_the_published_bundle_for_months(store: KeyStore) -> None:
    """The DNS record names the bundle's hash: with a batch of keys published ahead, weekly
    rotation and destruction go on without a new bundle until the next batch."""
    ahead = lifecycle.Schedule(window=7 * DAY, overlap=7 * DAY, grace=5 * DAY,
                               prepublish=8 * 7 * DAY)
    lifecycle.init_domain(store, DOMAIN, ahead, T0)
    published = store.latest_bundle(DOMAIN)
    assert published is not None
    first = current_bundle(store, T0).current_transport(T0)
    assert first is not None
    currents = set()
    for week in range(1, 4):
        now = T0 + week * 7 * DAY
        lifecycle.maintain(store, DOMAIN, ahead, now)
        assert store.latest_bundle(DOMAIN) == published  # same hash: the record stays valid
        current = current_bundle(store, now).current_transport(now)
        assert current is not None and current.valid_from == now
        currents.add(current.key_id)
    assert len(currents) == 3 and first.key_id not in currents  # a new key each week
    assert store.key(first.key_id).state == "destroyed"  # type: ignore[union-attr]
    now = T0 + 5 * 7 * DAY  # fewer than half of the weeks ahead are left: the next batch
    assert any("for " in c for c in lifecycle.maintain(store, DOMAIN, ahead, now))
    assert store.latest_bundle(DOMAIN) != published


def test_history_keeps_every_key(store: KeyStore, clock: Clock) -> None:
    lifecycle.init_domain(store, DOMAIN, SCHEDULE, T0)
    for day in (7, 14, 21, 28):
        lifecycle.maintain(store, DOMAIN, SCHEDULE, T0 + day * DAY)
    states = [k.state for k in store.keys(DOMAIN, "transport")]
    assert states == ["destroyed", "destroyed", "retired", "active", "active"]


def test_revocation_is_signed_final_and_replaced(store: KeyStore, clock: Clock) -> None:
    lifecycle.init_domain(store, DOMAIN, SCHEDULE, T0)
    ops = operations(store, clock)
    old = store.newest(DOMAIN, "transport")
    assert old is not None
    slot = wrapping.wrap(old.public, os.urandom(32), b"ctx")
    clock.now = T0 + DAY
    successors = lifecycle.revoke(store, old.key_id, "laptop stolen", SCHEDULE, clock.now)
    assert len(successors) == 1 and successors[0].purpose == "transport"
    revoked = store.key(old.key_id)
    assert revoked is not None and revoked.state == "revoked" and not revoked.held
    assert revoked.reason == "laptop stolen" and revoked.superseded_by == successors[0].key_id
    with pytest.raises(KeystoreError, match="revoked"):
        unwrap(ops, old.key_id, slot)

    verified = current_bundle(store, clock.now)
    assert [k.key_id for k in verified.transport] == [successors[0].key_id]
    [record] = verified.document["revocations"]
    assert record["key_id"] == old.key_id and record["reason"] == "laptop stolen"
    assert nacl.signing.VerifyKey(verified.identity_public).verify(
        bundle.signed_message("revocation", DOMAIN, record), unb64(record["signature"], "signature"))
    with pytest.raises(KeystoreError, match="already revoked"):
        lifecycle.revoke(store, old.key_id, "again", SCHEDULE, clock.now)

    dkim = store.newest(DOMAIN, "dkim", algorithm="rsa-2048")
    assert dkim is not None
    [new_dkim] = lifecycle.revoke(store, dkim.key_id, "leaked", SCHEDULE, clock.now)
    digest = os.urandom(32)
    assert call(ops, "dkim_sign", domain=DOMAIN, algorithm="rsa-sha256",
                digest=b64(digest))["selector"] == new_dkim.owner != dkim.owner


def test_dkim_and_identity_signatures_verify(store: KeyStore, clock: Clock) -> None:
    lifecycle.init_domain(store, DOMAIN, SCHEDULE, T0)
    ops = operations(store, clock)
    digest = os.urandom(32)
    rsa_answer = call(ops, "dkim_sign", domain=DOMAIN, algorithm="rsa-sha256", digest=b64(digest))
    rsa_key = store.newest(DOMAIN, "dkim", algorithm="rsa-2048")
    assert rsa_key is not None and rsa_answer["selector"] == rsa_key.owner
    public = serialization.load_der_public_key(rsa_key.public)
    assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 2048
    public.verify(unb64(rsa_answer["signature"], "sig"), digest, padding.PKCS1v15(),
                  utils.Prehashed(hashes.SHA256()))

    ed_answer = call(ops, "dkim_sign", domain=DOMAIN, algorithm="ed25519-sha256", digest=b64(digest))
    ed_key = store.newest(DOMAIN, "dkim", algorithm="ed25519")
    assert ed_key is not None
    nacl.signing.VerifyKey(ed_key.public).verify(digest, unb64(ed_answer["signature"], "sig"))

    signed = call(ops, "sign", domain=DOMAIN, data=b64(b"envelope header"))
    identity = store.newest(DOMAIN, "identity")
    assert identity is not None and signed["key_id"] == identity.key_id
    nacl.signing.VerifyKey(identity.public).verify(b"envelope header", unb64(signed["signature"], "s"))


def test_rsa_blinding_is_renewed_between_requests(store: KeyStore, clock: Clock,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread's 33rd, 65th... RSA signature would renew OpenSSL's blinding (~0.5 ms dearer):
    the service spends that one on nothing after an answer, never inside one."""
    signer = material.parse_private(material.RSA2048, material.generate(material.RSA2048)[1])
    for _ in range(32):
        assert not signer.renewal_due
        signer.sign_digest(bytes(32))
    assert signer.renewal_due
    elsewhere: list[bool] = []  # counted per thread, as OpenSSL keeps the blinding
    thread = threading.Thread(target=lambda: elsewhere.append(signer.renewal_due))
    thread.start()
    thread.join()
    assert elsewhere == [False]
    signer.renew()
    assert not signer.renewal_due

    lifecycle.init_domain(store, DOMAIN, SCHEDULE, T0)
    ops = operations(store, clock)
    renewed: list[material.RsaSigner] = []
    monkeypatch.setattr(material.RsaSigner, "renew", lambda self: renewed.append(self))
    for n in range(1, 65):
        call(ops, "dkim_sign", domain=DOMAIN, algorithm="rsa-sha256", digest=b64(bytes(32)))
        ops.between_requests()
        assert len(renewed) == n // 32


def test_identity_change_is_accepted_only_along_a_signed_chain(store: KeyStore) -> None:
    lifecycle.init_domain(store, DOMAIN, SCHEDULE, T0)
    pinned = current_bundle(store, T0).identity_public
    lifecycle.rotate(store, DOMAIN, "identity", SCHEDULE, T0 + DAY)
    lifecycle.rotate(store, DOMAIN, "identity", SCHEDULE, T0 + 2 * DAY)
    latest = store.latest_bundle(DOMAIN)
    assert latest is not None
    verified = bundle.verify(latest[1], DOMAIN, latest[0], T0 + 2 * DAY, pinned=pinned)
    assert verified.identity_public != pinned

    old_identity = store.newest(DOMAIN, "identity")
    assert old_identity is not None
    lifecycle.revoke(store, old_identity.key_id, "compromised", SCHEDULE, T0 + 3 * DAY)
    latest = store.latest_bundle(DOMAIN)
    assert latest is not None
    with pytest.raises(BundleRefused, match="without a change signed by the pinned key.*unpin"):
        bundle.verify(latest[1], DOMAIN, latest[0], T0 + 3 * DAY, pinned=pinned)


def test_concurrent_writers_do_not_corrupt_the_database(tmp_path: Path) -> None:
    """Four writers (own connections, as separate processes would have) rotating at once."""
    path, master = tmp_path / "keystore.db", os.urandom(32)
    lifecycle.init_domain(KeyStore(Database(path), Sealer(master)), DOMAIN, SCHEDULE, T0)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        store = KeyStore(Database(path), Sealer(master))
        try:
            for _ in range(5):
                lifecycle.rotate(store, DOMAIN, "transport", SCHEDULE, T0 + DAY)
        except Exception as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store = KeyStore(Database(path), Sealer(master))
    assert store.db.rows("PRAGMA integrity_check")[0][0] == "ok"
    transport = store.keys(DOMAIN, "transport")
    assert len(transport) == 21
    assert sum(1 for k in transport if k.superseded_by is None) == 1  # one unbroken succession


def test_master_key_file_must_be_private(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    create_master_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(load_master_key(path)) == 32
    path.chmod(0o640)
    with pytest.raises(MasterKeyError, match=r"accessible by group or others \(mode 0640\).*chmod 600"):
        load_master_key(path)
    with pytest.raises(MasterKeyError, match="does not exist"):
        load_master_key(tmp_path / "missing.key")


def test_private_keys_open_only_with_their_master_key(tmp_path: Path) -> None:
    path = tmp_path / "keystore.db"
    store = KeyStore(Database(path), Sealer(os.urandom(32)))
    lifecycle.init_domain(store, DOMAIN, SCHEDULE, T0)
    identity = store.newest(DOMAIN, "identity")
    assert identity is not None
    with pytest.raises(MasterKeyError, match="does not open with this master key"):
        KeyStore(Database(path), Sealer(os.urandom(32))).private(identity)


def test_revocations_stay_verifiable_after_the_identity_key_is_revoked(store: KeyStore) -> None:
    lifecycle.init_domain(store, DOMAIN, SCHEDULE, T0)
    dkim = store.newest(DOMAIN, "dkim", algorithm="ed25519")
    identity = store.newest(DOMAIN, "identity")
    assert dkim is not None and identity is not None
    lifecycle.revoke(store, dkim.key_id, "leaked", SCHEDULE, T0 + DAY)  # signed by `identity`
    lifecycle.revoke(store, identity.key_id, "compromised", SCHEDULE, T0 + 2 * DAY)
    verified = current_bundle(store, T0 + 2 * DAY)
    assert verified.identity_key_id != identity.key_id
    assert {r["key_id"] for r in verified.document["revocations"]} == {dkim.key_id, identity.key_id}


def test_schedule_through_the_commands_with_a_fixed_clock(tmp_path: Path) -> None:
    """SEALGATE_KEYSTORE_NOW drives real `sealgate` processes through a whole transport lifetime."""
    keystore = KeystoreProcess(tmp_path / "ks", directory=False, now="2026-01-05T00:00:00Z")
    keystore.run("keys", "init", DOMAIN)
    first = keystore.run("keys", "list", DOMAIN).stdout.splitlines()[2].split()[0]
    for day in ("2026-01-12", "2026-01-19", "2026-01-24"):
        keystore.env["SEALGATE_KEYSTORE_NOW"] = f"{day}T00:00:00Z"
        keystore.run("keystore", "maintain")
    shown = json.loads(keystore.run("keys", "show", first).stdout)
    assert shown["purpose"] == "transport" and shown["state"] == "destroyed"
    assert shown["destroyed_at"] == "2026-01-24T00:00:00Z" and shown["held"] is False
    assert first not in keystore.run("keys", "list", DOMAIN).stdout
    assert first in keystore.run("keys", "list", DOMAIN, "--all").stdout


def test_systemd_credential_is_preferred(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = SimpleNamespace(master_key_file=str(tmp_path / "file.key"),
                               master_key_credential="keystore.key")
    assert master_key_path(settings) == tmp_path / "file.key"
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert master_key_path(settings) == tmp_path / "file.key"  # no such credential: the file
    create_master_key(tmp_path / "keystore.key")
    assert master_key_path(settings) == tmp_path / "keystore.key"
