"""Answers read from the database, reused until the database changes.

Every operation looks up the key it uses, and those few SQLite statements
cost as much as an Ed25519 signature. `Database.version()` tells for one
PRAGMA whether anything (the CLI revoking a key, the schedule rotating one)
committed since, so a reused answer is never older than the last commit: a
revocation still takes effect on the next operation. Per thread, as SQLite
connections are.
"""

from __future__ import annotations

import threading
from typing import Callable, Hashable, TypeVar

from sealgate.keystore.db import Database

T = TypeVar("T")


class UntilChanged:
    def __init__(self, db: Database, limit: int = 10000) -> None:
        self._db = db
        self._limit = limit  # clients choose the keys (key ids, addresses): bound what they cost
        self._local = threading.local()

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """What `compute` answered for `key` since the database last changed; asked anew if none."""
        local = self._local
        version = self._db.version()
        if getattr(local, "version", None) != version or len(local.answers) >= self._limit:
            local.version, local.answers = version, {}
        try:
            answer: T = local.answers[key]
        except KeyError:
            answer = local.answers[key] = compute()
        return answer
