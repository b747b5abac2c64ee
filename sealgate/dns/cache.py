"""One answer cache in front of either backend, keyed by the name as asked.

Every message asks the same few names (SPF for HELO and MAIL FROM, the DKIM key, DMARC's tree
walk, the sealgate records for the TLS requirement), and so do the thousands before and after
it: a hit here is one dict lookup, where a dnspython cache hit parses the name and builds
an answer again (tens of microseconds each, a noticeable share of a message's cost).

A computation that only reads DNS through this cache (an SPF evaluation, a peer's published
TLS requirement) can be remembered too: its result cannot change before the first answer it
read expires, so it is kept exactly that long, and never when a lookup failed or was not
cacheable.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from sealgate.dns.resolver import Answer, Resolver

T = TypeVar("T")


class CachingResolver:
    """Answers, negative ones included, kept for their TTL; temporary failures never kept."""

    def __init__(self, backend: Resolver, size: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._backend = backend
        self._size = size
        self._clock = clock
        self._entries: dict[Hashable, tuple[float, Any]] = {}  # answers and remembered results
        self._lock = threading.Lock()
        self._reading = threading.local()  # per running computation: when its first answer expires

    def lookup(self, name: str, rdtype: str) -> Answer:
        key = (name.lower().rstrip("."), rdtype.upper())
        now = self._clock()
        hit = self._entries.get(key)
        if hit is not None and hit[0] > now:
            self._read_until(hit[0])
            return hit[1]
        try:
            answer = self._backend.lookup(name, rdtype)
        except Exception:
            self._read_until(now)  # a computation that saw a failure is never kept
            raise
        expiry = now + answer.ttl if self._size > 0 else now
        self._read_until(expiry)
        if answer.ttl > 0:
            self._keep(key, expiry, answer)
        return answer

    def remembered(self, key: Hashable, compute: Callable[[], T],
                   keep: Callable[[T], bool] = lambda result: True) -> T:
        """compute(), which reads DNS only through this cache, kept until its first answer
        expires; a result `keep` refuses (a temporary error of compute's own) is not kept."""
        key = ("remembered", key)
        now = self._clock()
        hit = self._entries.get(key)
        if hit is not None and hit[0] > now:
            self._read_until(hit[0])
            result: T = hit[1]
            return result
        stack = self._reading.__dict__.setdefault("expiries", [])
        stack.append(math.inf)
        try:
            result = compute()
        finally:
            expiry = stack.pop()
        self._read_until(expiry)
        if now < expiry < math.inf and keep(result):
            self._keep(key, expiry, result)
        return result

    def _read_until(self, expiry: float) -> None:
        """The running computations (nested ones too) can be kept at most until `expiry`."""
        stack = getattr(self._reading, "expiries", None)
        if stack:
            stack[-1] = min(stack[-1], expiry)

    def _keep(self, key: Hashable, expiry: float, value: Any) -> None:
        if self._size <= 0:
            return
        with self._lock:
            self._entries.pop(key, None)
            while len(self._entries) >= self._size:  # the oldest entry goes first
                del self._entries[next(iter(self._entries))]
            self._entries[key] = (expiry, value)


def remembered(resolver: Resolver, key: Hashable, compute: Callable[[], T],
               keep: Callable[[T], bool] = lambda result: True) -> T:
    """`resolver.remembered` where the resolver has the cache (the daemons' always does)."""
    if isinstance(resolver, CachingResolver):
        return resolver.remembered(key, compute, keep)
    return compute()
