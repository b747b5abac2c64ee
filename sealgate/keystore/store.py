"""Key records in the database: add, find, change state, erase private halves.

History is never deleted: a key leaves service by changing state (retired,
revoked, destroyed) and only its private half is ever erased. Writers pass
the connection of the transaction they hold (`Database.write()`), so one
lifecycle step is one atomic change.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from sealgate.keystore.db import Database, Row
from sealgate.keystore.encoding import b64, iso
from sealgate.keystore.masterkey import MasterKeyError, Sealer

STATES = ("active", "retired", "revoked", "destroyed")
DOMAIN_WIDE = "*"  # owner of a corporate (whole-domain) mailbox key


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    domain: str
    purpose: str
    algorithm: str
    owner: str
    public: bytes
    state: str
    created: int
    valid_from: int
    valid_until: int | None
    retired_at: int | None
    revoked_at: int | None
    destroyed_at: int | None
    reason: str
    superseded_by: str | None
    held: bool  # the keystore holds the private half

    @classmethod
    def from_row(cls, row: Row) -> "KeyRecord":
        return cls(row["id"], row["domain"], row["purpose"], row["algorithm"], row["owner"],
                   bytes(row["public"]), row["state"], row["created"], row["valid_from"],
                   row["valid_until"], row["retired_at"], row["revoked_at"], row["destroyed_at"],
                   row["reason"], row["superseded_by"], bool(row["held"]))

    def describe(self) -> dict[str, Any]:
        """Everything public about the key, times in ISO form: for `keys show` and listings."""
        out = asdict(self)
        out["public"] = b64(self.public)
        for name in ("created", "valid_from", "valid_until", "retired_at", "revoked_at",
                     "destroyed_at"):
            if out[name] is not None:
                out[name] = iso(out[name])
        return out


_COLUMNS = ("id, domain, purpose, algorithm, owner, public, state, created, valid_from, "
            "valid_until, retired_at, revoked_at, destroyed_at, reason, superseded_by, "
            "private IS NOT NULL AS held")


def _binding(key_id: str, purpose: str, domain: str) -> bytes:
    return f"{key_id}|{purpose}|{domain}".encode()


class KeyStore:
    """The keys table; `sealer` is needed only by code that creates or uses private halves."""

    def __init__(self, db: Database, sealer: Sealer | None) -> None:
        self.db = db
        self.sealer = sealer

    def _need_sealer(self) -> Sealer:
        if self.sealer is None:
            raise MasterKeyError("this operation needs the master key, which was not loaded")
        return self.sealer

    def key(self, key_id: str) -> KeyRecord | None:
        row = self.db.row(f"SELECT {_COLUMNS} FROM keys WHERE id = ?", (key_id,))
        return KeyRecord.from_row(row) if row else None

    def keys(self, domain: str | None = None, purpose: str | None = None,
             owner: str | None = None, states: tuple[str, ...] = STATES) -> list[KeyRecord]:
        """Matching keys, oldest first."""
        sql = f"SELECT {_COLUMNS} FROM keys WHERE state IN ({','.join('?' * len(states))})"
        args: list[Any] = list(states)
        for column, value in (("domain", domain), ("purpose", purpose), ("owner", owner)):
            if value is not None:
                sql += f" AND {column} = ?"
                args.append(value)
        return [KeyRecord.from_row(r) for r in self.db.rows(sql + " ORDER BY valid_from, created, rowid", args)]

    def newest(self, domain: str, purpose: str, owner: str | None = None,
               algorithm: str | None = None) -> KeyRecord | None:
        """The active key of this use that started last."""
        found = [k for k in self.keys(domain, purpose, owner, ("active",))
                 if algorithm is None or k.algorithm == algorithm]
        return found[-1] if found else None

    def private(self, record: KeyRecord) -> bytes | None:
        """The private half, decrypted; None when the keystore does not (or no longer) hold it."""
        row = self.db.row("SELECT private FROM keys WHERE id = ?", (record.key_id,))
        if row is None or row["private"] is None:
            return None
        return self._need_sealer().open(bytes(row["private"]),
                                        _binding(record.key_id, record.purpose, record.domain))

    def add(self, conn: sqlite3.Connection, *, domain: str, purpose: str, algorithm: str,
            public: bytes, private: bytes | None, now: int, owner: str = "",
            valid_until: int | None = None, registration: str | None = None,
            key_id: str | None = None, valid_from: int | None = None) -> KeyRecord:
        key_id = key_id or str(uuid.uuid4())
        sealed = (self._need_sealer().seal(private, _binding(key_id, purpose, domain))
                  if private is not None else None)
        conn.execute("INSERT INTO keys (id, domain, purpose, algorithm, owner, public, private, "
                     "state, created, valid_from, valid_until, registration) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, ?, ?)",
                     (key_id, domain, purpose, algorithm, owner, public, sealed, now,
                      now if valid_from is None else valid_from, valid_until, registration))
        found = conn.execute(f"SELECT {_COLUMNS} FROM keys WHERE id = ?", (key_id,)).fetchone()
        return KeyRecord.from_row(found)

    def retire(self, conn: sqlite3.Connection, key_id: str, now: int,
               superseded_by: str | None = None) -> None:
        conn.execute("UPDATE keys SET state = 'retired', retired_at = ?, "
                     "superseded_by = COALESCE(?, superseded_by) WHERE id = ? AND state = 'active'",
                     (now, superseded_by, key_id))

    def set_state(self, conn: sqlite3.Connection, key_id: str, state: str, now: int,
                  reason: str = "") -> None:
        """Move to revoked or destroyed, erasing the private half on the way."""
        assert state in ("revoked", "destroyed")
        self.erase_private(conn, key_id)
        conn.execute(f"UPDATE keys SET state = ?, {state}_at = ?, reason = ? WHERE id = ?",
                     (state, now, reason, key_id))

    def supersede(self, conn: sqlite3.Connection, key_id: str, successor: str) -> None:
        conn.execute("UPDATE keys SET superseded_by = ? WHERE id = ?", (successor, key_id))

    @staticmethod
    def erase_private(conn: sqlite3.Connection, key_id: str) -> None:
        """Overwrite the sealed bytes with zeros, then drop them (secure_delete zeroes the pages).

        The caller runs `Database.purge_freed_pages()` after commit so no copy stays in the WAL.
        """
        conn.execute("UPDATE keys SET private = zeroblob(length(private)) "
                     "WHERE id = ? AND private IS NOT NULL", (key_id,))
        conn.execute("UPDATE keys SET private = NULL WHERE id = ?", (key_id,))

    # Domains this keystore serves, and their mailbox policy.

    def domains(self) -> list[str]:
        return [r["domain"] for r in self.db.rows("SELECT domain FROM domains ORDER BY domain")]

    def mailbox_policy(self, domain: str) -> str | None:
        row = self.db.row("SELECT mailbox_policy FROM domains WHERE domain = ?", (domain,))
        return row["mailbox_policy"] if row else None

    # Published bundles, kept by hash.

    def latest_bundle(self, domain: str) -> tuple[str, bytes] | None:
        row = self.db.row("SELECT hash, body FROM bundles WHERE domain = ? "
                          "ORDER BY created DESC, rowid DESC LIMIT 1", (domain,))
        return (row["hash"], bytes(row["body"])) if row else None

    def bundle_by_hash(self, domain: str, digest: str) -> bytes | None:
        row = self.db.row("SELECT body FROM bundles WHERE domain = ? AND hash = ?", (domain, digest))
        return bytes(row["body"]) if row else None

    def records(self, table: str, domain: str) -> list[dict[str, Any]]:
        """Signed revocation or identity-change records of a domain, oldest first."""
        assert table in ("revocations", "identity_changes")
        return [json.loads(r["record"])
                for r in self.db.rows(f"SELECT record FROM {table} WHERE domain = ? ORDER BY rowid",
                                      (domain,))]
