"""The service's memo of database reads: reused until any connection commits, never longer."""

from __future__ import annotations

from pathlib import Path

from sealgate.keystore.db import Database
from sealgate.keystore.memo import UntilChanged


def test_answers_are_reused_until_the_database_changes(tmp_path: Path) -> None:
    reader, writer = Database(tmp_path / "keystore.db"), Database(tmp_path / "keystore.db")
    memo = UntilChanged(reader, limit=2)
    reads: list[str] = []

    def domains(name: str) -> list[str]:
        reads.append(name)
        return [r["domain"] for r in reader.rows("SELECT domain FROM domains ORDER BY domain")]

    assert memo.get("a", lambda: domains("a")) == [] and memo.get("a", lambda: domains("a")) == []
    assert reads == ["a"]
    with writer.write() as conn:  # another connection (another process, say) commits
        conn.execute("INSERT INTO domains VALUES ('one.test', 'isp', 0)")
    assert memo.get("a", lambda: domains("a")) == ["one.test"]
    with reader.write() as conn:  # the memo's own connection commits
        conn.execute("INSERT INTO domains VALUES ('two.test', 'isp', 0)")
    assert memo.get("a", lambda: domains("a")) == ["one.test", "two.test"]
    assert reads == ["a", "a", "a"]
    memo.get("b", lambda: domains("b"))
    memo.get("c", lambda: domains("c"))  # over the limit: everything is read afresh
    memo.get("a", lambda: domains("a"))
    assert reads == ["a", "a", "a", "b", "c", "a"]
