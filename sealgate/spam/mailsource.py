"""Messages to learn from: a Maildir, an mbox file, a folder of message files, or one file.

The standard library's `mailbox` reads Maildir and mbox (From_ lines and
>From quoting handled); a folder of plain files is walked in name order so
that a training run is repeatable.
"""

from __future__ import annotations

import mailbox
import os
from collections.abc import Iterator
from pathlib import Path


class SourceError(Exception):
    """A training source that cannot be read; the text names the path and why."""


def kind(path: Path) -> str:
    if path.is_dir():
        return "maildir" if (path / "cur").is_dir() or (path / "new").is_dir() else "folder"
    if path.is_file():
        with path.open("rb") as f:
            return "mbox" if f.read(5) == b"From " else "file"
    raise SourceError(f"{path}: no such file or directory")


def messages(path: Path) -> Iterator[tuple[str, bytes]]:
    """(name, raw message) for every message under `path`."""
    found = kind(path)
    try:
        if found == "maildir":
            box = mailbox.Maildir(str(path), factory=None, create=False)
            for key in sorted(box.keys()):
                yield f"{path}/{key}", box.get_bytes(key)
        elif found == "mbox":
            box_m = mailbox.mbox(str(path), create=False)
            for index, key in enumerate(box_m.keys()):
                yield f"{path}#{index + 1}", box_m.get_bytes(key)
        elif found == "folder":
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    if not name.startswith("."):
                        yield from messages(Path(root) / name)
        else:
            yield str(path), path.read_bytes()
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from None
