"""Discovery of another domain's keys (seed 003): DNS record, cached bundle, fetch, verify, pin.

The TXT record's hash decides: equal to the cached bundle's, the cache is
used without a fetch. Otherwise the bundle is fetched and verified in full;
only then is it cached (until the record's TTL) and its identity key pinned.
A bundle that fails any check is never cached or used; the reason is logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from sealgate.dns import DNSTempError, Resolver
from sealgate.keystore import bundle, dnsrecord
from sealgate.keystore.bundle import BundleRefused, VerifiedBundle
from sealgate.keystore.clock import Clock
from sealgate.keystore.db import Row
from sealgate.keystore.encoding import iso
from sealgate.keystore.fetch import FetchFailed, fetch
from sealgate.keystore.store import KeyStore

log = logging.getLogger("sealgate.keystore")
Fetcher = Callable[[str, float, int], bytes]
FAILURE_HOLD = 60  # seconds a failed fetch or refused bundle is answered from memory


@dataclass(frozen=True)
class Discovered:
    status: str  # found | none | temporary | refused
    domain: str
    reason: str = ""
    bundle: VerifiedBundle | None = None
    authenticated: bool = False  # the TXT answer carried the AD bit
    encryption_required: bool = False
    tls_required: bool = False
    expires: int = 0


class Discovery:
    def __init__(self, store: KeyStore, resolver: Resolver, clock: Clock, fetch_timeout: float,
                 max_bundle_bytes: int, fetcher: Fetcher = fetch) -> None:
        self._store = store
        self._resolver = resolver
        self._clock = clock
        self._timeout = fetch_timeout
        self._max_bytes = max_bundle_bytes
        self._fetch = fetcher
        self._memo = bundle.Memo()
        # A bundle that failed (fetch or checks) is not fetched again for a short while:
        # every message to that domain would otherwise wait for a fetch. Never a success.
        self._failed: dict[tuple[str, str], tuple[Discovered, int]] = {}

    def lookup(self, domain: str) -> Discovered:
        now = self._clock()
        cached = self._store.db.row("SELECT * FROM remote_bundles WHERE domain = ?", (domain,))
        if cached is not None and now < cached["expires"]:
            return self._from_cache(cached, now)
        try:
            record = dnsrecord.lookup(self._resolver, domain)
        except DNSTempError as exc:
            return Discovered("temporary", domain, f"DNS: {exc}")
        except dnsrecord.RecordError as exc:
            return self._refuse(domain, f"unusable _sealgate TXT record: {exc}")
        if record is None:
            return Discovered("none", domain, f"{domain} publishes no {dnsrecord.LABEL} record")
        if cached is not None and cached["hash"] == record.bundle_hash:
            with self._store.db.write() as conn:
                conn.execute("UPDATE remote_bundles SET expires = ?, authenticated = ?, "
                             "encryption_required = ?, tls_required = ? WHERE domain = ?",
                             (now + record.ttl, record.authenticated, record.encryption_required,
                              record.tls_required, domain))
            return self._from_cache(self._store.db.row(
                "SELECT * FROM remote_bundles WHERE domain = ?", (domain,)) or cached, now)
        failed, until = self._failed.get((domain, record.bundle_hash), (None, 0))
        if failed is not None and now < until:
            return failed
        answer = self._fetch_and_verify(domain, record, now)
        if answer.status != "found":
            if len(self._failed) >= 10000:
                self._failed.clear()
            self._failed[(domain, record.bundle_hash)] = (answer, now + min(record.ttl, FAILURE_HOLD))
        return answer

    def _from_cache(self, row: Row, now: int) -> Discovered:
        verified = self._verified(row["domain"], row["hash"], bytes(row["body"]), now)
        if isinstance(verified, str):
            return self._refuse(row["domain"], f"cached bundle: {verified}")
        return Discovered("found", row["domain"], "", verified, bool(row["authenticated"]),
                          bool(row["encryption_required"]), bool(row["tls_required"]), row["expires"])

    def _verified(self, domain: str, digest: str, body: bytes, now: int) -> VerifiedBundle | str:
        """A cached bundle was verified when stored; only its keys' validity moves with time."""
        try:
            verified = self._memo.verified(domain, digest, body, now)
        except BundleRefused as exc:
            return str(exc)
        if verified.current_transport(now) is None:
            return "no transport key is valid any more; waiting for the domain to publish a new bundle"
        return verified

    def _refuse(self, domain: str, reason: str) -> Discovered:
        log.warning("keys of %s refused: %s", domain, reason)
        return Discovered("refused", domain, reason)

    def _fetch_and_verify(self, domain: str, record: dnsrecord.SealgateRecord, now: int) -> Discovered:
        try:
            body = self._fetch(record.bundle_url, self._timeout, self._max_bytes)
            pin = self._store.db.row("SELECT public FROM pins WHERE domain = ?", (domain,))
            verified = bundle.verify(body, domain, record.bundle_hash, now,
                                     bytes(pin["public"]) if pin else None)
        except FetchFailed as exc:
            return Discovered("temporary", domain, str(exc))
        except BundleRefused as exc:
            return self._refuse(domain, f"bundle from {record.bundle_url}: {exc}")
        expires = now + record.ttl
        with self._store.db.write() as conn:
            conn.execute("INSERT OR REPLACE INTO remote_bundles (domain, hash, body, url, fetched, "
                         "expires, authenticated, encryption_required, tls_required) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (domain, verified.hash, body, record.bundle_url, now, expires,
                          record.authenticated, record.encryption_required, record.tls_required))
            conn.execute("INSERT OR REPLACE INTO pins (domain, key_id, public, pinned) VALUES "
                         "(?, ?, ?, COALESCE((SELECT pinned FROM pins WHERE domain = ? AND public = ?), ?))",
                         (domain, verified.identity_key_id, verified.identity_public, domain,
                          verified.identity_public, now))
        log.info("keys of %s: bundle %s verified and cached until %s%s", domain, verified.hash,
                 iso(expires), " (DNSSEC)" if record.authenticated else "")
        self._memo.put(verified)
        return Discovered("found", domain, "", verified, record.authenticated,
                          record.encryption_required, record.tls_required, expires)

    def unpin(self, domain: str) -> bool:
        """Forget the pinned identity and cached bundle (after checking a new identity out of band).
        A running service notices within FAILURE_HOLD seconds."""
        with self._store.db.write() as conn:
            removed = conn.execute("DELETE FROM pins WHERE domain = ?", (domain,)).rowcount
            conn.execute("DELETE FROM remote_bundles WHERE domain = ?", (domain,))
        for key in [k for k in self._failed if k[0] == domain]:
            del self._failed[key]
        return bool(removed)
