"""The Bayes model in SQLite: for each token, how many ham and how many spam messages held it.

Tokens are stored as text in a WITHOUT ROWID table: a lookup is one index
probe in C, cheaper than hashing every token in Python first, and the file
stays readable with the sqlite3 shell. The message totals live in the same
table under the empty token, so one SELECT (one consistent snapshot) gives
the classifier everything.

The milter reads through a pool of read-only connections; `sealgate spam
train` writes in one transaction, so the milter reads the old counts until
the commit. No WAL: a read-only reader of a WAL database needs write access
to its directory. Training updates the file in place; a model file replaced
by another (a model trained elsewhere, then moved into place) is read from
the next message on: pooled connections to the old file are closed.

Counts already read are kept in memory (most of a message's words are
common ones that the previous messages asked for too), until the file
changes: SQLite increments the change counter in the file's header on every
commit, and reading those bytes costs far less than a query.
"""

from __future__ import annotations

import os
import queue
import sqlite3
import threading
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

# Bump when tokens.py changes what it emits: a model of other tokens must be retrained.
TOKENIZER_VERSION = "3"
TOTALS = ""  # the row holding the message counts; no token is empty
BATCH = 900  # bound parameters per SELECT, under every SQLite build's limit (999)
CACHE_TOKENS = 100_000  # remembered token counts per model (~15 MB); forgotten all at once when full
ABSENT = (0, 0)  # remembered for a token the model does not hold (compared by identity)

SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (token TEXT PRIMARY KEY, ham INTEGER NOT NULL DEFAULT 0,
                                   spam INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS seen (digest BLOB PRIMARY KEY, label TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class ModelError(Exception):
    """The model file exists but cannot be used (corrupt, wrong version, unreadable)."""


@dataclass(frozen=True)
class Counts:
    nham: int
    nspam: int
    tokens: dict[str, tuple[int, int]]


class ModelReader:
    """Read-only access for scoring, shared by all threads of one process.

    libmilter starts a thread per MTA connection, so connections are pooled
    rather than kept per thread: a new SMTP connection does not reopen the file.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        # Idle connections, each with the inode of the file it opened.
        self._idle: queue.SimpleQueue[tuple[int, sqlite3.Connection]] = queue.SimpleQueue()
        self._version: tuple[int, int, bytes] | None = None
        self._cache: dict[str, tuple[int, int]] = {}
        self._fd: int | None = None  # the model file, held open for the change check
        self._fd_lock = threading.Lock()

    def _file_version(self) -> tuple[int, int, bytes] | None:
        """Inode, size and SQLite's file change counter (header bytes 24-27); None: no file.

        The file stays open, so this costs two system calls a message. It must: closing any
        descriptor of a file drops every POSIX lock this process holds on it, the read locks
        of SQLite's connections in other threads included. A file deleted or replaced (link
        count 0) is let go and the path opened again."""
        with self._fd_lock:
            for _ in range(2):
                if self._fd is None:
                    try:
                        self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
                    except FileNotFoundError:
                        return None
                    except OSError as exc:
                        raise ModelError(f"Bayes model {self.path}: {exc}") from None
                try:
                    counter, stat = os.pread(self._fd, 4, 24), os.fstat(self._fd)
                except OSError as exc:
                    raise ModelError(f"Bayes model {self.path}: {exc}") from None
                if stat.st_nlink:
                    return stat.st_ino, stat.st_size, counter
                os.close(self._fd)
                self._fd = None
            return None

    def _open(self) -> sqlite3.Connection | None:
        if not os.path.exists(self.path):
            return None  # not trained yet: checked again on the next message
        try:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=1.0,
                                   isolation_level=None, check_same_thread=False)
            version = conn.execute("SELECT value FROM meta WHERE name = 'tokenizer'").fetchone()
        except sqlite3.Error as exc:
            raise ModelError(f"Bayes model {self.path}: {exc}") from None
        if not version or version[0] != TOKENIZER_VERSION:
            conn.close()
            raise ModelError(f"Bayes model {self.path} was trained by another tokenizer "
                             f"version; retrain it with `sealgate spam train`")
        return conn

    def trained(self) -> bool:
        """Whether a model file exists (without one, tokenizing is wasted work); no system call
        once the file is held open, as `counts` notices a deleted one."""
        return self._fd is not None or os.path.exists(self.path)

    def counts(self, tokens: Collection[str]) -> Counts | None:
        """Totals and per-token counts; None when no model file exists yet."""
        version = self._file_version()  # read before any query: a commit after it is seen next time
        if version is None:
            return None
        if version != self._version:
            self._cache, self._version = {}, version
        cache = self._cache  # this message's dict, even if another thread swaps in a new one
        wanted = [t for t in tokens if t not in cache]
        if TOTALS not in cache:
            wanted.append(TOTALS)
        found = self._query(wanted, version[0]) if wanted else {}
        if found is None:
            return None
        if len(cache) + len(wanted) > CACHE_TOKENS:
            self._cache = {}  # full: the next message starts again; this one still reads the old
        cache.update((t, found.get(t, ABSENT)) for t in wanted)
        nham, nspam = cache[TOTALS]
        return Counts(nham, nspam, {t: c for t in tokens if (c := cache[t]) is not ABSENT})

    def _pooled(self, inode: int) -> sqlite3.Connection | None:
        """An idle connection to the file now at the path; those to a replaced file are closed."""
        while True:
            try:
                held, conn = self._idle.get_nowait()
            except queue.Empty:
                return None
            if held == inode:
                return conn
            conn.close()

    def _query(self, wanted: list[str], inode: int) -> dict[str, tuple[int, int]] | None:
        conn = self._pooled(inode) or self._open()
        if conn is None:
            return None
        found: dict[str, tuple[int, int]] = {}
        try:
            if len(wanted) > BATCH:  # several statements: hold one snapshot across them
                conn.execute("BEGIN")
            try:
                for i in range(0, len(wanted), BATCH):
                    batch = wanted[i:i + BATCH]
                    query = f"SELECT token, ham, spam FROM tokens WHERE token IN ({','.join('?' * len(batch))})"
                    found.update((t, (h, s)) for t, h, s in conn.execute(query, batch))
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.close()  # not returned to the pool: the next message opens a fresh one
            raise ModelError(f"Bayes model {self.path}: {exc}") from None
        self._idle.put((inode, conn))
        return found


_readers: dict[str, ModelReader] = {}
_readers_lock = threading.Lock()


def reader(path: str) -> ModelReader:
    """The process-wide reader of the model at `path` (kept across config reloads)."""
    with _readers_lock:
        if path not in _readers:
            _readers[path] = ModelReader(path)
        return _readers[path]


class ModelWriter:
    """Training: add a message's tokens under a label, once per message (by digest)."""

    def __init__(self, path: str) -> None:
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(path, timeout=30.0)
            self.conn.executescript(SCHEMA)
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('tokenizer', ?)",
                              (TOKENIZER_VERSION,))
        except (OSError, sqlite3.Error) as exc:
            raise ModelError(f"Bayes model {path}: cannot open for training: {exc}") from None
        self.path = path

    def learn(self, tokens: set[str], label: str, digest: bytes) -> str:
        """"learned", "known" (already learned with this label) or "relearned" (label changed)."""
        row = self.conn.execute("SELECT label FROM seen WHERE digest = ?", (digest,)).fetchone()
        if row and row[0] == label:
            return "known"
        rows = [TOTALS, *(t for t in tokens if t)]
        if row:
            self._add(rows, row[0], -1)
        self._add(rows, label, +1)
        self.conn.execute("INSERT OR REPLACE INTO seen VALUES (?, ?)", (digest, label))
        return "relearned" if row else "learned"

    def _add(self, tokens: list[str], label: str, step: int) -> None:
        ham, spam = (step, 0) if label == "ham" else (0, step)
        self.conn.executemany(
            "INSERT INTO tokens (token, ham, spam) VALUES (?, ?, ?) ON CONFLICT (token) DO UPDATE "
            "SET ham = max(ham + excluded.ham, 0), spam = max(spam + excluded.spam, 0)",
            [(t, ham, spam) for t in tokens])

    def totals(self) -> tuple[int, int]:
        row = self.conn.execute("SELECT ham, spam FROM tokens WHERE token = ?", (TOTALS,)).fetchone()
        return (row[0], row[1]) if row else (0, 0)

    def commit(self) -> None:
        self.conn.commit()

    def close(self) -> None:
        self.conn.commit()
        self.conn.close()

    def reset(self) -> None:
        self.conn.executescript("DELETE FROM tokens; DELETE FROM seen;")
