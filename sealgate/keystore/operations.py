"""What the keystore service does for its clients: one method per operation, none returning a private key.

Every request is checked field by field; any refusal is a KeystoreError
whose message names the field or key and what was wrong. Key records are
reused only until the database changes (memo.UntilChanged), so a key revoked
or destroyed by another process is refused at once; parsed private keys are
kept only to spare the ~50 ms an RSA key takes to load.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from sealgate import __version__
from sealgate.keystore import bundle, mailbox, names, wrapping
from sealgate.keystore.bundle import BundleRefused
from sealgate.keystore.clock import Clock
from sealgate.keystore.discovery import Discovered, Discovery
from sealgate.keystore.encoding import b64, iso, unb64
from sealgate.keystore.errors import KeystoreError
from sealgate.keystore.material import ED25519, RSA2048, RsaSigner, parse_private, sign
from sealgate.keystore.memo import UntilChanged
from sealgate.keystore.protocol import MAX_BATCH
from sealgate.keystore.store import KeyRecord, KeyStore

log = logging.getLogger("sealgate.keystore")
UNWRAP_PURPOSES = ("transport", "mailbox", "group")
DKIM_ALGORITHMS = {"ed25519-sha256": ED25519, "rsa-sha256": RSA2048}
UNBATCHED = ("batch", "bundle")  # bundle may wait seconds on the network: never in a reader


def _text(request: dict[str, Any], name: str) -> str:
    value = request.get(name)
    if not isinstance(value, str) or not value:
        raise KeystoreError("bad-request", f"field {name!r}: expected a non-empty string")
    return value


def _bytes(request: dict[str, Any], name: str, size: int | None = None) -> bytes:
    try:
        value = unb64(request.get(name), f"field {name!r}")
    except ValueError as exc:
        raise KeystoreError("bad-request", str(exc)) from None
    if size is not None and len(value) != size:
        raise KeystoreError("bad-request", f"field {name!r}: expected {size} bytes, got {len(value)}")
    return value


def discovered_to_wire(found: Discovered, now: int, with_document: bool = True) -> dict[str, Any]:
    """The `bundle` answer; a bundle whose last transport key expired a moment ago is refused.
    The whole signed document (history included) only when asked: the milter never needs it."""
    current = found.bundle.current_transport(now) if found.bundle else None
    if found.bundle is not None and current is None:
        found = Discovered("refused", found.domain, f"no transport key is valid at {iso(now)}")
    wire: dict[str, Any] = {"status": found.status, "domain": found.domain, "reason": found.reason,
                            "authenticated": found.authenticated,
                            "encryption_required": found.encryption_required,
                            "tls_required": found.tls_required}
    if found.bundle is not None and current is not None:
        wire.update(hash=found.bundle.hash, expires=iso(found.expires),
                    identity={"key_id": found.bundle.identity_key_id,
                              "public": b64(found.bundle.identity_public)},
                    transport={"key_id": current.key_id, "public": b64(current.public),
                               "valid_from": iso(current.valid_from),
                               "valid_until": iso(current.valid_until)})
        if with_document:
            wire["document"] = found.bundle.document
    return wire


class Operations:
    def __init__(self, store: KeyStore, discovery: Discovery, clock: Clock,
                 encryption_required: bool, tls_required: bool) -> None:
        self._store = store
        self._discovery = discovery
        self._clock = clock
        self._flags = (encryption_required, tls_required)
        self._loaded: dict[str, Any] = {}  # key id -> parsed private key, only while usable
        self._read = UntilChanged(store.db)
        self._renewal = threading.local()  # an RsaSigner whose blinding this thread renews next
        self._own_bundles = bundle.Memo()
        self._ops: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "ping": self.ping, "unwrap": self.unwrap, "sign": self.sign_data,
            "dkim_selector": self.dkim_selector, "dkim_sign": self.dkim_sign,
            "dkim_sign_many": self.dkim_sign_many,
            "bundle": self.bundle, "local_bundle": self.local_bundle,
            "mailbox_keys": self.mailbox_keys, "batch": self.batch}

    def handle(self, request: Any) -> dict[str, Any]:
        """The answer to one decoded request; never raises."""
        try:
            if not isinstance(request, dict):
                raise KeystoreError("bad-request", "request: expected a JSON object with an 'op' field")
            op = self._ops.get(request.get("op"))  # type: ignore[arg-type]
            if op is None:
                raise KeystoreError("bad-request", f"op {request.get('op')!r}: expected one of "
                                                   f"{', '.join(sorted(self._ops))}")
            return {"ok": True, "result": op(request)}
        except KeystoreError as exc:
            return {"ok": False, "error": exc.code, "message": str(exc)}
        except Exception as exc:  # a bug must not take the service down; the client sees "internal"
            log.exception("keystore operation failed")
            return {"ok": False, "error": "internal", "message": f"internal error: {exc}"}

    def batch(self, request: dict[str, Any]) -> dict[str, Any]:
        """Several operations in one round trip, each answered as on its own and in order: what
        one message needs at once (an envelope's content key, its recipients' mailbox keys)
        then costs one wake-up of each side instead of several."""
        items = request.get("requests")
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
            raise KeystoreError("bad-request", f"field 'requests': expected a list of 1 to "
                                               f"{MAX_BATCH} requests")
        for n, item in enumerate(items):
            if isinstance(item, dict) and item.get("op") in UNBATCHED:
                raise KeystoreError("bad-request", f"requests[{n}]: op {item['op']!r} cannot be "
                                                   f"batched; send it on its own")
        return {"answers": [self.handle(item) for item in items]}

    def between_requests(self) -> None:
        """Work no answer should wait for, done by the thread that answered once its answer is
        out: renewing the RSA blinding its next signature would renew (material.RsaSigner)."""
        due = getattr(self._renewal, "due", None)
        if due is not None:
            self._renewal.due = None
            due.renew()

    def preload(self) -> int:
        """Parse every active key we hold before the first request, so that no message waits
        the ~50 ms of OpenSSL's RSA key check at a worker's first signature; returns how many."""
        loaded = 0
        for record in self._store.keys(states=("active",)):
            if record.held:
                try:
                    self._material(record)
                    loaded += 1
                except KeystoreError:  # erased meanwhile: its request will say so
                    continue
        return loaded

    def forget_unusable(self) -> None:
        """Drop parsed keys that were revoked, destroyed or retired elsewhere (run periodically)."""
        for key_id in list(self._loaded):
            record = self._store.key(key_id)
            if record is None or not record.held or record.state not in ("active", "retired"):
                self._loaded.pop(key_id, None)

    def _material(self, record: KeyRecord) -> Any:
        if record.state not in ("active", "retired") or not record.held:
            self._loaded.pop(record.key_id, None)
            if record.state in ("revoked", "destroyed"):
                at = record.revoked_at if record.state == "revoked" else record.destroyed_at
                raise KeystoreError("unusable-key", f"key {record.key_id} was {record.state} at "
                                                    f"{iso(at or 0)}; nothing wrapped to it can be opened now")
            raise KeystoreError("unusable-key", f"key {record.key_id} ({record.purpose} of "
                                                f"{record.owner or record.domain}) is held by its "
                                                f"owner's client, not by the keystore")
        material = self._loaded.get(record.key_id)
        if material is None:
            private = self._store.private(record)
            if private is None:
                raise KeystoreError("unusable-key", f"key {record.key_id} was erased just now")
            material = parse_private(record.algorithm, private)
            self._loaded[record.key_id] = material
        return material

    def _active(self, domain: str, purpose: str) -> KeyRecord:
        record = self._read.get(("newest", domain, purpose),
                                lambda: self._store.newest(domain, purpose))
        if record is None:
            raise KeystoreError("not-found", f"no active {purpose} key for domain {domain!r}")
        return record

    def ping(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"version": __version__, "domains": self._store.domains()}

    def unwrap(self, request: dict[str, Any]) -> dict[str, Any]:
        key_id = _text(request, "key_id")
        ephemeral = _bytes(request, "ephemeral_public", wrapping.PUBLIC_BYTES)
        wrapped = _bytes(request, "wrapped", wrapping.WRAPPED_BYTES)
        context = _bytes(request, "context")
        record = self._read.get(("key", key_id), lambda: self._store.key(key_id))
        if record is None:
            raise KeystoreError("not-found", f"key_id {key_id!r}: no such key in this keystore")
        if record.purpose not in UNWRAP_PURPOSES:
            raise KeystoreError("unusable-key", f"key {key_id} is a {record.purpose} key; only "
                                                f"{', '.join(UNWRAP_PURPOSES)} keys open wrapped keys")
        try:
            content_key = wrapping.unwrap(self._material(record), ephemeral, wrapped, context,
                                          own_public=record.public)
        except wrapping.WrapError as exc:
            raise KeystoreError("decrypt-failed", f"key {key_id}: {exc}") from None
        return {"content_key": b64(content_key)}

    def sign_data(self, request: dict[str, Any]) -> dict[str, Any]:
        record = self._active(names.domain(_text(request, "domain")), "identity")
        signature = sign(record.algorithm, self._material(record), _bytes(request, "data"))
        return {"signature": b64(signature), "key_id": record.key_id}

    def _dkim_key(self, domain: str, request: dict[str, Any]) -> KeyRecord:
        """The domain's active DKIM key for the request's algorithm; all of the domain's are
        read at once, so a request signing with several costs one lookup."""
        name = _text(request, "algorithm")
        if name not in DKIM_ALGORITHMS:
            raise KeystoreError("bad-request", f"algorithm {name!r}: expected one of "
                                               f"{', '.join(DKIM_ALGORITHMS)}")
        keys = self._read.get(("dkim", domain), lambda: {
            algorithm: self._store.newest(domain, "dkim", algorithm=algorithm)
            for algorithm in DKIM_ALGORITHMS.values()})
        record = keys[DKIM_ALGORITHMS[name]]
        if record is None:
            raise KeystoreError("not-found", f"no active dkim key ({DKIM_ALGORITHMS[name]}) "
                                             f"for domain {domain!r}")
        return record

    def _dkim_signature(self, record: KeyRecord, digest: bytes) -> bytes:
        # RFC 8463: Ed25519 signs the SHA-256 digest itself; RSA signs it as PKCS#1 v1.5 DigestInfo.
        material = self._material(record)
        signature = sign(record.algorithm, material, digest)
        if isinstance(material, RsaSigner) and material.renewal_due:
            self._renewal.due = material
        return signature

    def dkim_selector(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"selector": self._dkim_key(names.domain(_text(request, "domain")), request).owner}

    def dkim_sign(self, request: dict[str, Any]) -> dict[str, Any]:
        digest = _bytes(request, "digest", 32)
        record = self._dkim_key(names.domain(_text(request, "domain")), request)
        return {"selector": record.owner, "signature": b64(self._dkim_signature(record, digest))}

    def dkim_sign_many(self, request: dict[str, Any]) -> dict[str, Any]:
        """One signature per algorithm (RFC 8463 dual signing) in one request. Each names the
        selector its header already carries: a rotated or revoked key is refused, not replaced
        by one the header does not name. Everything is checked before anything is signed."""
        domain = names.domain(_text(request, "domain"))
        items = request.get("signatures")
        if not isinstance(items, list) or not 1 <= len(items) <= len(DKIM_ALGORITHMS):
            raise KeystoreError("bad-request", f"field 'signatures': expected a list of 1 to "
                                               f"{len(DKIM_ALGORITHMS)} objects with algorithm, "
                                               f"selector and digest")
        jobs: list[tuple[KeyRecord, bytes]] = []
        for n, item in enumerate(items):
            try:
                if not isinstance(item, dict):
                    raise KeystoreError("bad-request", "expected an object with algorithm, "
                                                       "selector and digest")
                record = self._dkim_key(domain, item)
                if any(record.algorithm == earlier.algorithm for earlier, _ in jobs):
                    raise KeystoreError("bad-request", f"algorithm {item['algorithm']!r} asked "
                                                       f"twice: one signature per algorithm")
                digest = _bytes(item, "digest", 32)
                selector = _text(item, "selector")
                if selector != record.owner:
                    raise self._not_current(record, selector)
                jobs.append((record, digest))
            except KeystoreError as exc:
                raise KeystoreError(exc.code, f"signatures[{n}]: {exc}") from None
        return {"signatures": [b64(self._dkim_signature(record, digest)) for record, digest in jobs]}

    def _not_current(self, active: KeyRecord, selector: str) -> KeystoreError:
        """Why `selector` does not sign for its domain any more (rare: looked up only now)."""
        named = self._store.keys(active.domain, "dkim", owner=selector)
        if not named:
            return KeystoreError("not-found", f"selector {selector!r}: no such DKIM key of "
                                              f"{active.domain}; the active one is {active.owner}")
        old = named[-1]
        since = {"retired": old.retired_at, "revoked": old.revoked_at}.get(old.state)
        return KeystoreError("unusable-key", f"selector {selector!r}: key {old.key_id} is "
                                             f"{old.state}" + (f" since {iso(since)}" if since else "")
                             + f"; the active {active.algorithm} selector of {active.domain} "
                               f"is {active.owner}")

    def bundle(self, request: dict[str, Any]) -> dict[str, Any]:
        domain = names.domain(_text(request, "domain"))
        return discovered_to_wire(self._discovery.lookup(domain), self._clock(),
                                  request.get("with_document") is True)

    def local_bundle(self, request: dict[str, Any]) -> dict[str, Any]:
        domain = names.domain(_text(request, "domain"))
        latest = self._read.get(("bundle", domain), lambda: self._store.latest_bundle(domain))
        if latest is None:
            raise KeystoreError("not-found", f"domain {domain!r} has no keys in this keystore")
        now = self._clock()
        try:
            verified = self._own_bundles.verified(domain, latest[0], latest[1], now)
        except BundleRefused as exc:
            return discovered_to_wire(Discovered("refused", domain, f"our own bundle: {exc}"), now,
                                      False)
        return discovered_to_wire(Discovered("found", domain, "", verified, False, *self._flags), now,
                                  request.get("with_document") is True)

    def mailbox_keys(self, request: dict[str, Any]) -> dict[str, Any]:
        address = _text(request, "address")
        keys = self._read.get(("mailbox", address), lambda: mailbox.mailbox_keys(self._store, address))
        return {"keys": [{"key_id": k.key_id, "public": b64(k.public), "purpose": k.purpose,
                          "owner": k.owner} for k in keys]}
