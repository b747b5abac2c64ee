"""One answer cache in front of either backend, keyed by the name as asked.

Every message asks the same few names (SPF for HELO and MAIL FROM, the DKIM key, DMARC's tree
walk, the sealgate records for the TLS requirement), and so do the thousands before and after
it: a hit here is one dict lookup, where a dnspython cache hit parses the name and builds
an answer again (tens of microseconds each, a noticeable share of a message's cost).
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from sealgate.dns.resolver import Answer, Resolver


class CachingResolver:
    """Answers, negative ones included, kept for their TTL; temporary failures never kept."""

    def __init__(self, backend: Resolver, size: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._backend = backend
        self._size = size
        self._clock = clock
        self._entries: dict[tuple[str, str], tuple[float, Answer]] = {}
        self._lock = threading.Lock()

    def lookup(self, name: str, rdtype: str) -> Answer:
        key = (name.lower().rstrip("."), rdtype.upper())
        now = self._clock()
        hit = self._entries.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        answer = self._backend.lookup(name, rdtype)
        if answer.ttl > 0 and self._size > 0:
            with self._lock:
                self._entries.pop(key, None)
                while len(self._entries) >= self._size:  # the oldest entry goes first
                    del self._entries[next(iter(self._entries))]
                self._entries[key] = (now + answer.ttl, answer)
        return answer
