"""A keystore client that remembers what rarely changes and is asked for every message: for a
minute, whether a domain is ours (and its identity key) and other domains' verified bundles (the
keystore itself keeps those for their DNS TTL; a minute more here bounds how late a rotation or
revocation elsewhere is seen, as any DNS cache does); our DKIM selectors until the keystore
refuses one as rotated or revoked."""

from __future__ import annotations

import threading
import time
from typing import Callable, Sequence

from sealgate.keystore.client import BundleAnswer, KeystoreClient, KeystoreError

TTL = 60.0


class CachingKeystoreClient(KeystoreClient):
    def __init__(self, socket_path: str, timeout: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(socket_path, timeout)
        self._clock = clock
        self._cache_lock = threading.Lock()
        self._bundles: dict[tuple[str, str], tuple[float, BundleAnswer | KeystoreError]] = {}
        self._selectors: dict[tuple[str, str], str] = {}

    def local_bundle(self, domain: str, with_document: bool = False) -> BundleAnswer:
        """Cached, refusals ("not ours") included; the whole document is never cached."""
        if with_document:
            return super().local_bundle(domain, True)
        return self._remembered("local_bundle", domain, super().local_bundle)

    def bundle(self, domain: str, with_document: bool = False) -> BundleAnswer:
        """Cached when found or known absent; a temporary failure is asked again next time."""
        if with_document:
            return super().bundle(domain, True)
        return self._remembered("bundle", domain, super().bundle)

    def _remembered(self, operation: str, domain: str,
                    ask: Callable[[str], BundleAnswer]) -> BundleAnswer:
        now = self._clock()
        with self._cache_lock:
            cached = self._bundles.get((operation, domain))
        if cached is None or cached[0] <= now:
            try:
                answer: BundleAnswer | KeystoreError = ask(domain)
            except KeystoreError as exc:
                if exc.code not in ("not-found", "bad-request"):
                    raise
                answer = exc
            cached = (now + TTL, answer)
            if isinstance(answer, KeystoreError) or answer.status in ("found", "none"):
                with self._cache_lock:
                    self._bundles[(operation, domain)] = cached
        if isinstance(cached[1], KeystoreError):
            raise cached[1]
        return cached[1]

    def dkim_selector(self, domain: str, algorithm: str) -> str:
        with self._cache_lock:
            selector = self._selectors.get((domain, algorithm))
        if selector is None:
            selector = super().dkim_selector(domain, algorithm)
            with self._cache_lock:
                self._selectors[(domain, algorithm)] = selector
        return selector

    def dkim_sign_many(self, domain: str,
                       digests: Sequence[tuple[str, str, bytes]]) -> list[bytes]:
        """A refusal means a cached selector was rotated or revoked: these algorithms' selectors
        are asked anew for the next message (this one is tempfailed and retried by the MTA)."""
        try:
            return super().dkim_sign_many(domain, digests)
        except KeystoreError:
            with self._cache_lock:
                for algorithm, _, _ in digests:
                    self._selectors.pop((domain, algorithm), None)
            raise
