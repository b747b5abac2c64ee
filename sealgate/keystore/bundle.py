"""A domain's key bundle (docs/bundle.md): built and signed here, verified by every reader.

The bundle is canonical JSON; its SHA-256 is what the DNS record carries.
Every entry (transport key, revocation, identity change) carries its own
Ed25519 signature, and the identity key signs the whole document as well.
A reader accepts all of it or none of it.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from typing import Any

from sealgate.keystore.encoding import b64, canonical_json, iso, parse_iso, unb64
from sealgate.keystore.material import ed25519_sign, ed25519_verify
from sealgate.keystore.store import KeyStore

FORMAT = "sealgate-bundle-1"


class BundleRefused(Exception):
    """A bundle that fails a check; the message says which and is logged by discovery."""


@dataclass(frozen=True)
class TransportKey:
    key_id: str
    public: bytes
    valid_from: int
    valid_until: int


@dataclass(frozen=True)
class VerifiedBundle:
    domain: str
    hash: str
    identity_key_id: str
    identity_public: bytes
    transport: tuple[TransportKey, ...]  # revoked ones already left out
    document: dict[str, Any]

    def current_transport(self, now: int) -> TransportKey | None:
        """The key senders encrypt to now: the valid one that started last; of keys that started
        in the same second (a rotation right after `keys init`), the one listed later, which the
        publisher lists oldest first, so the newer."""
        valid = [k for k in self.transport if k.valid_from <= now < k.valid_until]
        return max(reversed(valid), key=lambda k: k.valid_from) if valid else None


def digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def signed_message(kind: str, domain: str, entry: dict[str, Any]) -> bytes:
    """What a signature covers: kind and domain, so no entry can be moved elsewhere."""
    fields = {k: v for k, v in entry.items() if k != "signature"}
    return f"{FORMAT}:{kind}:{domain}\n".encode() + canonical_json(fields)


def sign_entry(seed: bytes, kind: str, domain: str, entry: dict[str, Any]) -> dict[str, Any]:
    return {**entry, "signature": b64(ed25519_sign(seed, signed_message(kind, domain, entry)))}


def build(store: KeyStore, domain: str, now: int) -> tuple[str, bytes]:
    """Sign the domain's current public keys into a bundle: (hash, exact bytes)."""
    identity = store.newest(domain, "identity")
    if identity is None:
        raise ValueError(f"domain {domain} has no active identity key; run `sealgate keys init {domain}`")
    seed = store.private(identity)
    assert seed is not None, "an active identity key always has its private half"
    transport = [sign_entry(seed, "transport", domain, {
        "key_id": k.key_id, "algorithm": k.algorithm, "public": b64(k.public),
        "valid_from": iso(k.valid_from), "valid_until": iso(k.valid_until or 0)})
        for k in store.keys(domain, "transport", states=("active",))
        if k.valid_until is not None and k.valid_until > now]
    document = {
        "format": FORMAT, "domain": domain, "published": iso(now),
        "identity": {"key_id": identity.key_id, "algorithm": identity.algorithm,
                     "public": b64(identity.public), "created": iso(identity.created)},
        "identity_changes": store.records("identity_changes", domain),
        "transport": transport,
        # Signed afresh by today's identity key: the one that signed a record may since have
        # been revoked itself. The directory serves the records as first signed, too.
        "revocations": [sign_entry(seed, "revocation", domain,
                                   {**{k: v for k, v in record.items() if k != "signature"},
                                    "signer": identity.key_id})
                        for record in store.records("revocations", domain)],
    }
    body = canonical_json(sign_entry(seed, "bundle", domain, document))
    return digest(body), body


# Verification: every failure names the field and what was wrong.

def _field(entry: Any, name: str, where: str) -> Any:
    if not isinstance(entry, dict) or name not in entry:
        raise BundleRefused(f"{where}: missing {name!r}")
    return entry[name]


def _key_bytes(entry: Any, name: str, where: str) -> bytes:
    try:
        value = unb64(_field(entry, name, where), f"{where}.{name}")
    except ValueError as exc:
        raise BundleRefused(str(exc)) from None
    if len(value) != 32:
        raise BundleRefused(f"{where}.{name}: expected a 32-byte key, got {len(value)} bytes")
    return value


def _time(entry: Any, name: str, where: str) -> int:
    try:
        return parse_iso(_field(entry, name, where), f"{where}.{name}")
    except ValueError as exc:
        raise BundleRefused(str(exc)) from None


def _check_signature(entry: dict[str, Any], kind: str, domain: str, signer: bytes, where: str) -> None:
    try:
        signature = unb64(_field(entry, "signature", where), f"{where}.signature")
    except ValueError as exc:
        raise BundleRefused(str(exc)) from None
    if not ed25519_verify(signer, signature, signed_message(kind, domain, entry)):
        raise BundleRefused(f"{where}: signature does not verify")


def _list(document: dict[str, Any], name: str) -> list[Any]:
    value = document.get(name, [])
    if not isinstance(value, list):
        raise BundleRefused(f"{name}: expected a list")
    return value


def _check_identity_chain(document: dict[str, Any], domain: str, current: bytes,
                          pinned: bytes | None) -> None:
    """Verify each identity change link; with a pin other than the current key, the links
    must lead from the pinned key to the current one, each signed by the key it replaces."""
    links = []
    for n, change in enumerate(_list(document, "identity_changes")):
        where = f"identity_changes[{n}]"
        before = _key_bytes(change, "from_public", where)
        _check_signature(change, "identity-change", domain, before, where)
        links.append((before, _key_bytes(change, "to_public", where)))
    if pinned is not None and pinned != current:
        walker, seen = pinned, {pinned}
        successors = dict(links)
        while walker != current and walker in successors and successors[walker] not in seen:
            walker = successors[walker]
            seen.add(walker)
        if walker != current:
            raise BundleRefused(f"identity key changed from the pinned {b64(pinned)} to "
                                f"{b64(current)} without a change signed by the pinned key; "
                                f"if the change is genuine, run `sealgate keys unpin {domain}`")


def verify(body: bytes, domain: str, expected_hash: str, now: int,
           pinned: bytes | None) -> VerifiedBundle:
    """Check hash, format, every signature, the pin and that a transport key is valid now."""
    actual = digest(body)
    if actual != expected_hash:
        raise BundleRefused(f"bundle hash {actual} does not match the DNS record's h={expected_hash}")
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise BundleRefused(f"not JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise BundleRefused(f"format: expected {FORMAT!r}")
    if str(document.get("domain", "")).lower() != domain.lower():
        raise BundleRefused(f"domain: the bundle is for {document.get('domain')!r}, not {domain!r}")
    identity = _field(document, "identity", "bundle")
    identity_public = _key_bytes(identity, "public", "identity")
    identity_key_id = _field(identity, "key_id", "identity")
    _check_signature(document, "bundle", domain, identity_public, "bundle")
    _check_identity_chain(document, domain, identity_public, pinned)

    revoked = set()
    for n, record in enumerate(_list(document, "revocations")):
        where = f"revocations[{n}]"
        _check_signature(record, "revocation", domain, identity_public, where)
        revoked.add(str(_field(record, "key_id", where)))
    if identity_key_id in revoked:
        raise BundleRefused(f"identity: key {identity_key_id} is itself listed as revoked")

    transport = []
    for n, entry in enumerate(_list(document, "transport")):
        where = f"transport[{n}]"
        _check_signature(entry, "transport", domain, identity_public, where)
        if _field(entry, "algorithm", where) != "x25519":
            raise BundleRefused(f"{where}.algorithm: expected 'x25519'")
        key = TransportKey(str(_field(entry, "key_id", where)), _key_bytes(entry, "public", where),
                           _time(entry, "valid_from", where), _time(entry, "valid_until", where))
        if key.key_id not in revoked:
            transport.append(key)
    verified = VerifiedBundle(domain, actual, str(identity_key_id), identity_public,
                              tuple(transport), document)
    if verified.current_transport(now) is None:
        latest = max((k.valid_until for k in transport), default=None)
        raise BundleRefused("no transport key is valid at " + iso(now) + (
            f" (the last expired at {iso(latest)})" if latest is not None and latest <= now
            else " (none listed, or all revoked or not yet valid)"))
    return verified


class Memo:
    """Bundles already verified, by (domain, hash): the exact bytes decide every check but the
    clock, so a bundle served from a cache is verified once, not on every lookup."""

    def __init__(self, limit: int = 10000) -> None:
        self._limit = limit
        self._verified: dict[tuple[str, str], VerifiedBundle] = {}
        self._lock = threading.Lock()

    def put(self, verified: VerifiedBundle) -> None:
        with self._lock:
            if len(self._verified) >= self._limit:
                self._verified.clear()
            self._verified[(verified.domain, verified.hash)] = verified

    def verified(self, domain: str, digest: str, body: bytes, now: int) -> VerifiedBundle:
        """Raises BundleRefused like `verify` (without a pin: trusted bytes from our database)."""
        with self._lock:
            found = self._verified.get((domain, digest))
        if found is None:
            found = verify(body, domain, digest, now, pinned=None)
            self.put(found)
        return found
