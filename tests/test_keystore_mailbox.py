"""Mailbox keys by policy: isp registration (good and forged), replacement, corporate, groups, recovery."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from sealgate.keystore import lifecycle, mailbox, wrapping
from sealgate.keystore.clock import DAY
from sealgate.keystore.db import Database
from sealgate.keystore.encoding import b64
from sealgate.keystore.errors import KeystoreError
from sealgate.keystore.masterkey import Sealer
from sealgate.testbed.keystore import KeystoreProcess
from sealgate.keystore.store import KeyStore
from sealgate.mailboxkey import keyfile, request

SCHEDULE = lifecycle.Schedule(7 * DAY, 7 * DAY, 5 * DAY)
NOW = 1_800_000_000
DOMAIN = "example.test"


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    store = KeyStore(Database(tmp_path / "keystore.db"), Sealer(os.urandom(32)))
    lifecycle.init_domain(store, DOMAIN, SCHEDULE, NOW)
    return store


def registration(address: str = f"alice@{DOMAIN}") -> tuple[keyfile.MailboxKey, str]:
    key = keyfile.generate(address)
    return key, json.dumps(request.make(key, "2027-01-15T08:00:00Z"))


def test_client_generates_key_and_admin_registers_it(tmp_path: Path) -> None:
    """Both sides as the user and the admin run them: separate commands, the request in between."""
    keystore = KeystoreProcess(tmp_path / "ks", directory=False)
    keystore.run("keys", "init", DOMAIN)
    key_path = tmp_path / "alice.key"
    made = subprocess.run([sys.executable, "-m", "sealgate", "mailbox-key", "generate",
                           f"Alice@{DOMAIN}", "--output", str(key_path)],
                          capture_output=True, text=True, timeout=60, check=True)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    key = keyfile.read(key_path)
    assert key.address == f"alice@{DOMAIN}"
    done = keystore.run("keys", "register-mailbox", input=made.stdout)
    assert f"registered mailbox key {key.key_id} for alice@{DOMAIN}" in done.stdout
    assert "registered recovery key" in done.stdout  # generate makes both by default

    forged = json.loads(made.stdout)[0]
    forged["address"] = f"mallory@{DOMAIN}"
    refused = keystore.run("keys", "register-mailbox", input=json.dumps(forged), check=False)
    assert refused.returncode == 1
    assert "registration refused: signature does not verify" in refused.stderr

    listed = keystore.run("keys", "mailbox", f"alice@{DOMAIN}").stdout
    assert key.key_id in listed and "mallory" not in listed
    # Mail sealed to the registered key opens with the private key on the client only.
    content_key = os.urandom(32)
    ephemeral, wrapped = wrapping.wrap(key.public, content_key, b"mailbox")
    assert wrapping.unwrap(key.private, ephemeral, wrapped, b"mailbox") == content_key


@pytest.mark.parametrize("forgery, reason", [
    ("other signer", "signature does not verify"),
    ("swapped public", "signature does not verify"),
    ("unrelated keys", "public is not the X25519 key derived from signing_public"),
    ("not json", "not JSON"),
    ("missing field", "missing or non-text fields: key_id"),
])
def test_forged_or_malformed_registrations_are_refused(store: KeyStore, forgery: str, reason: str) -> None:
    data = json.loads(registration()[1])
    other = json.loads(registration()[1])
    if forgery == "other signer":
        data["signature"] = other["signature"]
    elif forgery == "swapped public":
        data["public"], data["signing_public"] = other["public"], other["signing_public"]
    elif forgery == "unrelated keys":
        mallory = keyfile.generate(f"alice@{DOMAIN}")
        fields = {**data, "public": other["public"], "signing_public": b64(mallory.signing_public)}
        del fields["signature"]
        data = {**fields, "signature": b64(
            mallory.signing_key.sign(request.signed_message(fields)).signature)}
    elif forgery == "missing field":
        del data["key_id"]
    text = "{" if forgery == "not json" else json.dumps(data)
    with pytest.raises(KeystoreError, match=reason) as caught:
        mailbox.register(store, text, NOW)
    assert caught.value.code == "refused"
    assert mailbox.mailbox_keys(store, f"alice@{DOMAIN}") == []


def test_new_key_replaces_old_for_new_mail_and_keeps_history(store: KeyStore) -> None:
    first, first_request = registration()
    mailbox.register(store, first_request, NOW)
    second, second_request = registration()
    mailbox.register(store, second_request, NOW + 60)
    [current] = mailbox.mailbox_keys(store, f"alice@{DOMAIN}")
    assert current.key_id == second.key_id and current.public == second.public and not current.held
    old = store.key(first.key_id)
    assert old is not None and old.state == "retired" and old.superseded_by == second.key_id
    with pytest.raises(KeystoreError, match="already registered"):
        mailbox.register(store, first_request, NOW + 120)  # a replay cannot bring the old key back


def test_corporate_policy_uses_one_domain_key_held_by_the_keystore(store: KeyStore) -> None:
    [domain_key] = mailbox.set_policy(store, DOMAIN, "corporate", NOW)
    for address in (f"alice@{DOMAIN}", f"bob@{DOMAIN}"):
        assert [k.key_id for k in mailbox.mailbox_keys(store, address)] == [domain_key.key_id]
    with pytest.raises(KeystoreError, match="mailbox policy is corporate"):
        mailbox.register(store, registration()[1], NOW)
    assert mailbox.set_policy(store, DOMAIN, "corporate", NOW) == []  # the key is kept, not remade


def test_groups_give_members_their_group_keys(store: KeyStore) -> None:
    mailbox.set_policy(store, DOMAIN, "groups", NOW)
    sales = mailbox.create_group(store, DOMAIN, "sales", NOW)
    board = mailbox.create_group(store, DOMAIN, "board", NOW)
    mailbox.set_membership(store, DOMAIN, "sales", f"alice@{DOMAIN}", member=True)
    mailbox.set_membership(store, DOMAIN, "board", f"alice@{DOMAIN}", member=True)
    mailbox.set_membership(store, DOMAIN, "sales", f"bob@{DOMAIN}", member=True)
    assert {k.key_id for k in mailbox.mailbox_keys(store, f"alice@{DOMAIN}")} == {sales.key_id, board.key_id}
    assert [k.key_id for k in mailbox.mailbox_keys(store, f"bob@{DOMAIN}")] == [sales.key_id]
    assert mailbox.mailbox_keys(store, f"carol@{DOMAIN}") == []
    mailbox.set_membership(store, DOMAIN, "sales", f"bob@{DOMAIN}", member=False)
    assert mailbox.mailbox_keys(store, f"bob@{DOMAIN}") == []
    assert mailbox.groups(store, DOMAIN) == {"board": [f"alice@{DOMAIN}"], "sales": [f"alice@{DOMAIN}"]}
    with pytest.raises(KeystoreError, match="already exists"):
        mailbox.create_group(store, DOMAIN, "sales", NOW)
    with pytest.raises(KeystoreError, match="no group nosuch"):
        mailbox.set_membership(store, DOMAIN, "nosuch", f"bob@{DOMAIN}", member=True)
    [rotated] = lifecycle.rotate(store, DOMAIN, "group", SCHEDULE, NOW + 1, "sales")
    assert [k.key_id for k in mailbox.mailbox_keys(store, f"alice@{DOMAIN}") if k.owner == "sales"] \
        == [rotated.key_id]


def test_recovery_key_from_a_phrase_is_registered_and_recoverable(tmp_path: Path,
                                                                  store: KeyStore) -> None:
    made = subprocess.run([sys.executable, "-m", "sealgate", "mailbox-key", "generate",
                           f"alice@{DOMAIN}", "--recovery"],
                          capture_output=True, text=True, timeout=60, check=True)
    phrase = made.stderr.split("shown only once):")[1].split()[0]
    registered = mailbox.register(store, made.stdout, NOW)
    assert registered.purpose == "recovery"
    assert [k.purpose for k in mailbox.mailbox_keys(store, f"alice@{DOMAIN}")] == ["recovery"]

    out = tmp_path / "recovered.key"
    subprocess.run([sys.executable, "-m", "sealgate", "mailbox-key", "recover", f"alice@{DOMAIN}",
                    "--output", str(out)], input=phrase + "\n", text=True, timeout=60, check=True,
                   capture_output=True)
    recovered = keyfile.read(out)
    assert (recovered.key_id, recovered.public) == (registered.key_id, registered.public)
    with pytest.raises(keyfile.KeyFileError, match="recovery phrase"):
        keyfile.from_recovery_phrase(f"alice@{DOMAIN}", "not a phrase")
