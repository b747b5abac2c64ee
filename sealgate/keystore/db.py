"""The keystore database: SQLite in WAL mode, one connection per thread, explicit write transactions.

Several processes write at once (the service's rotation, admin commands),
so every write runs in BEGIN IMMEDIATE with a busy timeout: writers queue
instead of failing or interleaving. secure_delete makes SQLite zero freed
space, so an erased private key does not linger in the file.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    id TEXT PRIMARY KEY,               -- UUID
    domain TEXT NOT NULL,
    purpose TEXT NOT NULL,             -- identity transport dkim mailbox group recovery
    algorithm TEXT NOT NULL,           -- ed25519 x25519 rsa-2048
    owner TEXT NOT NULL DEFAULT '',    -- DKIM selector, mailbox address, group name, '*' for the domain
    public BLOB NOT NULL,
    private BLOB,                      -- sealed under the master key, NULL when not held or erased
    state TEXT NOT NULL,               -- active retired revoked destroyed
    created INTEGER NOT NULL,
    valid_from INTEGER NOT NULL,
    valid_until INTEGER,               -- NULL: until superseded or revoked
    retired_at INTEGER,
    revoked_at INTEGER,
    destroyed_at INTEGER,
    reason TEXT NOT NULL DEFAULT '',
    superseded_by TEXT REFERENCES keys(id),
    registration TEXT                  -- the signed request a client-generated key came with
);
CREATE INDEX IF NOT EXISTS keys_by_use ON keys (domain, purpose, state, owner);
CREATE TABLE IF NOT EXISTS domains (
    domain TEXT PRIMARY KEY,
    mailbox_policy TEXT NOT NULL,      -- isp corporate groups
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS bundles (   -- every bundle ever published, so a stale DNS hash still resolves
    domain TEXT NOT NULL,
    hash TEXT NOT NULL,
    body BLOB NOT NULL,
    created INTEGER NOT NULL,
    PRIMARY KEY (domain, hash)
);
CREATE TABLE IF NOT EXISTS revocations (
    key_id TEXT PRIMARY KEY REFERENCES keys(id),
    domain TEXT NOT NULL,
    record TEXT NOT NULL               -- signed JSON, served as is
);
CREATE TABLE IF NOT EXISTS identity_changes (
    to_key_id TEXT PRIMARY KEY REFERENCES keys(id),
    domain TEXT NOT NULL,
    record TEXT NOT NULL               -- signed by the outgoing identity key
);
CREATE TABLE IF NOT EXISTS groups (
    domain TEXT NOT NULL,
    name TEXT NOT NULL,
    created INTEGER NOT NULL,
    PRIMARY KEY (domain, name)
);
CREATE TABLE IF NOT EXISTS group_members (
    domain TEXT NOT NULL,
    name TEXT NOT NULL,
    address TEXT NOT NULL,
    PRIMARY KEY (domain, name, address),
    FOREIGN KEY (domain, name) REFERENCES groups (domain, name)
);
CREATE TABLE IF NOT EXISTS remote_bundles (  -- verified bundles of other domains
    domain TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    body BLOB NOT NULL,
    url TEXT NOT NULL,
    fetched INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    authenticated INTEGER NOT NULL,    -- the TXT answer had the AD bit
    encryption_required INTEGER NOT NULL,
    tls_required INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pins (            -- first identity key seen per remote domain
    domain TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    public BLOB NOT NULL,
    pinned INTEGER NOT NULL
);
"""

Row = sqlite3.Row


class Database:
    def __init__(self, path: Path, busy_timeout: float = 10.0) -> None:
        self.path = path
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))  # private keys inside: owner only
        conn = self.conn()
        conn.execute("PRAGMA journal_mode=WAL")
        if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            with self.write() as c:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        c.execute(statement)
                c.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA secure_delete=ON")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; other writers wait for it (up to the busy timeout)."""
        conn = self.conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        self._local.commits = getattr(self._local, "commits", 0) + 1

    def version(self) -> tuple[int, int]:
        """Differs after any commit, by this thread's connection or any other (another process
        included): one PRAGMA tells whether what this thread read before is still current."""
        changes: int = self.conn().execute("PRAGMA data_version").fetchone()[0]
        return changes, getattr(self._local, "commits", 0)

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return self.conn().execute(sql, args).fetchall()

    def row(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        found: Row | None = self.conn().execute(sql, args).fetchone()
        return found

    def purge_freed_pages(self) -> None:
        """Copy the WAL into the database and truncate it, so erased bytes survive in neither."""
        self.conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
