"""Discovery of another domain's keys: against a second keystore on loopback with DNS from a zone
file, and every refusal (tampered bundle, wrong hash, changed identity, expired transport key)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
from sealgate.testbed.zones import txt

from sealgate.dns import Answer, DNSTempError
from sealgate.dns.zonefile import ZoneFileResolver
from sealgate.keystore import bundle, lifecycle, wrapping
from sealgate.keystore.clock import DAY
from sealgate.keystore.db import Database
from sealgate.keystore.discovery import Discovery
from sealgate.keystore.encoding import b64
from sealgate.keystore.fetch import FetchFailed, fetch
from sealgate.keystore.masterkey import Sealer
from sealgate.testbed.keystore import KeystoreProcess
from sealgate.keystore.store import KeyStore

REMOTE = "remote.test"
SCHEDULE = lifecycle.Schedule(7 * DAY, 7 * DAY, 5 * DAY)
T0 = 1_800_000_000
TTL = 300
URL = f"https://mx.{REMOTE}/.well-known/sealgate/{REMOTE}.json"


def test_discovery_against_a_second_keystore_on_loopback(tmp_path: Path) -> None:
    remote = KeystoreProcess(tmp_path / "remote")
    remote.run("keys", "init", REMOTE)
    zone = tmp_path / "published.zone"
    zone.write_text(remote.run("keys", "dns", REMOTE).stdout)  # exactly what its admin publishes
    local = KeystoreProcess(tmp_path / "local", zone_files=[zone], directory=False)
    local.run("keys", "init", "local.test")
    with local, local.client() as client:
        with remote, remote.client() as remote_client:
            found = client.bundle(REMOTE, with_document=True)
            published = remote_client.local_bundle(REMOTE)
            assert found.found, found.reason
            assert found.hash == published.hash and found.authenticated is False
            assert found.identity == published.identity and found.transport == published.transport
            assert found.document is not None and found.document["domain"] == REMOTE
            # Gateway to gateway: wrapped to the discovered key, opened by the other keystore.
            content_key = os.urandom(32)
            assert found.transport is not None
            slot = wrapping.wrap(found.transport.public, content_key, b"envelope")
            assert remote_client.unwrap(found.transport.key_id, *slot, b"envelope") == content_key
        # The other gateway is gone; the cached, verified bundle still answers until the TTL.
        again = client.bundle(REMOTE)
        assert again.found and again.hash == found.hash
    assert "verified and cached" in local.log_text()


class Remote:
    """Another domain's keystore in this process; its bundles reach discovery through `fetcher`."""

    def __init__(self, path: Path) -> None:
        self.store = KeyStore(Database(path), Sealer(os.urandom(32)))
        lifecycle.init_domain(self.store, REMOTE, SCHEDULE, T0)
        self.served: dict[str, bytes] = {}
        self.fetches = 0

    def publish(self, body: bytes | None = None) -> str:
        """Serve `body` (default: the current bundle) at URL; returns its hash."""
        if body is None:
            latest = self.store.latest_bundle(REMOTE)
            assert latest is not None
            body = latest[1]
        self.served[URL] = body
        return hashlib.sha256(body).hexdigest()

    def fetcher(self, url: str, timeout: float, max_bytes: int) -> bytes:
        self.fetches += 1
        if url not in self.served:
            raise FetchFailed(f"GET {url}: HTTP 404")
        return self.served[url]


class Clock:
    def __init__(self) -> None:
        self.now = T0 + 60

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return Remote(tmp_path / "remote.db")


@pytest.fixture
def clock() -> Clock:
    return Clock()


def discovery(tmp_path: Path, remote: Remote, clock: Clock, digest: str, url: str = URL,
              authenticated: bool = False) -> Discovery:
    """Discovery in our keystore, with the _sealgate record of REMOTE set to `digest`."""
    zone = tmp_path / "dns.zone"
    zone.write_text(txt(f"_sealgate.{REMOTE}", f"v=SG1; h={digest}; e=req; u={url}", TTL))
    zone_resolver = ZoneFileResolver([str(zone)])

    class Resolver:
        def lookup(self, name: str, rdtype: str) -> Answer:
            return replace(zone_resolver.lookup(name, rdtype), authenticated=authenticated)

    store = KeyStore(Database(tmp_path / "local.db"), None)
    return Discovery(store, Resolver(), clock, 1.0, 65536, remote.fetcher)


def cached(found_in: Discovery) -> int:
    return len(found_in._store.db.rows("SELECT 1 FROM remote_bundles"))


def test_bundle_is_fetched_once_and_reused_while_the_hash_matches(tmp_path: Path, remote: Remote,
                                                                   clock: Clock) -> None:
    digest = remote.publish()
    found = discovery(tmp_path, remote, clock, digest, authenticated=True).lookup(REMOTE)
    assert found.status == "found" and found.authenticated and found.encryption_required
    assert found.expires == clock.now + TTL and remote.fetches == 1
    clock.now += TTL + 1  # cache expired: DNS asked again, same hash, no fetch
    again = discovery(tmp_path, remote, clock, digest).lookup(REMOTE)
    assert again.status == "found" and remote.fetches == 1 and not again.authenticated
    assert again.expires == clock.now + TTL

    lifecycle.rotate(remote.store, REMOTE, "transport", SCHEDULE, clock.now)  # a new bundle and hash
    clock.now += TTL + 1
    rotated = discovery(tmp_path, remote, clock, remote.publish()).lookup(REMOTE)
    assert rotated.status == "found" and remote.fetches == 2
    assert rotated.bundle is not None and found.bundle is not None
    assert rotated.bundle.current_transport(clock.now) != found.bundle.current_transport(clock.now)


def tamper(remote: Remote, where: str) -> bytes:
    latest = remote.store.latest_bundle(REMOTE)
    assert latest is not None
    document = json.loads(latest[1])
    if where == "published":
        document["published"] = "2030-01-01T00:00:00Z"
    else:
        document["transport"][0]["public"] = b64(os.urandom(32))
    if where == "transport entry re-signed":  # only the entry's own signature can tell now
        identity = remote.store.newest(REMOTE, "identity")
        assert identity is not None
        seed = remote.store.private(identity)
        assert seed is not None
        document = bundle.sign_entry(seed, "bundle", REMOTE, document)
    return json.dumps(document).encode()


@pytest.mark.parametrize("where, reason", [
    ("transport", "bundle: signature does not verify"),
    ("published", "bundle: signature does not verify"),
    ("transport entry re-signed", "transport[0]: signature does not verify"),
])
def test_tampered_bundle_is_refused_and_not_cached(tmp_path: Path, remote: Remote, clock: Clock,
                                                   where: str, reason: str,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    digest = remote.publish(tamper(remote, where))  # the record even matches the tampered bytes
    found_in = discovery(tmp_path, remote, clock, digest)
    found = found_in.lookup(REMOTE)
    assert found.status == "refused" and reason in found.reason and found.bundle is None
    assert cached(found_in) == 0
    assert f"keys of {REMOTE} refused" in caplog.text and reason in caplog.text


def test_bundle_not_matching_the_dns_hash_is_refused(tmp_path: Path, remote: Remote, clock: Clock) -> None:
    remote.publish()
    wrong = hashlib.sha256(b"another bundle").hexdigest()
    found_in = discovery(tmp_path, remote, clock, wrong)
    found = found_in.lookup(REMOTE)
    assert found.status == "refused" and f"does not match the DNS record's h={wrong}" in found.reason
    assert cached(found_in) == 0


def test_changed_identity_is_refused_unless_the_pinned_key_signed_it(tmp_path: Path, remote: Remote,
                                                                    clock: Clock) -> None:
    first = discovery(tmp_path, remote, clock, remote.publish()).lookup(REMOTE)
    assert first.status == "found" and first.bundle is not None

    lifecycle.rotate(remote.store, REMOTE, "identity", SCHEDULE, clock.now)  # signed by the old key
    clock.now += TTL + 1
    rotated = discovery(tmp_path, remote, clock, remote.publish()).lookup(REMOTE)
    assert rotated.status == "found" and rotated.bundle is not None
    assert rotated.bundle.identity_public != first.bundle.identity_public

    impostor = Remote(tmp_path / "impostor.db")  # same domain, unrelated identity key
    clock.now += TTL + 1
    found_in = discovery(tmp_path, impostor, clock, impostor.publish())
    refused = found_in.lookup(REMOTE)
    assert refused.status == "refused"
    assert "identity key changed from the pinned" in refused.reason
    assert f"sealgate keys unpin {REMOTE}" in refused.reason
    assert found_in.unpin(REMOTE)  # the admin checked the change out of band
    assert found_in.lookup(REMOTE).status == "found"


def test_bundle_whose_transport_keys_expired_is_refused(tmp_path: Path, remote: Remote,
                                                        clock: Clock) -> None:
    clock.now = T0 + 14 * DAY + 1  # the only key's window and overlap are over; nobody rotated
    found_in = discovery(tmp_path, remote, clock, remote.publish())
    found = found_in.lookup(REMOTE)
    assert found.status == "refused" and "no transport key is valid at" in found.reason
    assert "the last expired at" in found.reason and cached(found_in) == 0


def test_unusable_records_and_failures(tmp_path: Path, remote: Remote, clock: Clock) -> None:
    found_in = discovery(tmp_path, remote, clock, remote.publish(),
                         url=f"http://192.0.2.1/.well-known/sealgate/{REMOTE}.json")
    found_in._fetch = fetch  # the real fetcher: refuses plain http before any connection
    found = found_in.lookup(REMOTE)
    assert found.status == "refused" and "expected https:// (plain http only to loopback)" in found.reason

    missing = discovery(tmp_path, remote, clock, "ab" * 32, url=f"https://new.{REMOTE}/b.json")
    answer = missing.lookup(REMOTE)
    assert answer.status == "temporary" and "HTTP 404" in answer.reason  # not served (yet)
    fetches = remote.fetches
    assert missing.lookup(REMOTE) == answer and remote.fetches == fetches  # held, not refetched
    clock.now += 61
    assert missing.lookup(REMOTE).status == "temporary" and remote.fetches == fetches + 1
    assert discovery(tmp_path, remote, clock, "ab" * 32).lookup("other.test").status == "none"
    junk = discovery(tmp_path, remote, clock, "not-a-hash").lookup(REMOTE)
    assert junk.status == "refused" and "unusable _sealgate TXT record: tag h" in junk.reason

    class Failing:
        def lookup(self, name: str, rdtype: str) -> Answer:
            raise DNSTempError(f"DNS timeout looking up {name} {rdtype}")

    down = Discovery(KeyStore(Database(tmp_path / "x.db"), None), Failing(), clock, 1.0, 65536)
    failed = down.lookup(REMOTE)
    assert failed.status == "temporary" and "DNS timeout" in failed.reason
