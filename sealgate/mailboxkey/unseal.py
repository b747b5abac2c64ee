"""`sealgate unseal`: open mail sealed at rest with the user's own key (or recovery key), on the
user's machine. Reads one message, a Maildir or an mbox; writes the originals the same way,
with the gateway's verdict headers (Authentication-Results, spam) on top as delivered."""

from __future__ import annotations

import io
import mailbox
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from sealgate.envelope.header import EnvelopeError
from sealgate.envelope.seal import Opened, decrypt, parse
from sealgate.keystore.wrapping import WrapError
from sealgate.message import Message

# Headers the gateway adds outside the seal, kept on top of the original when unsealing.
VERDICT_HEADERS = ("authentication-results", "x-spam-score", "x-spam-status", "x-spam-flag",
                   "x-spam-scanned")

Opener = Callable[[str, bytes, bytes, bytes], bytes]
"""(key_id, ephemeral_public, wrapped, context) -> content key; raises for a slot not ours."""


class NotOpened(Exception):
    """A message this key cannot open: not sealed, sealed for other keys, or damaged."""


def unseal(raw: bytes, key_ids: set[str] | None, opener: Opener) -> bytes:
    """The original message (CRLF), the gateway's verdict headers first."""
    msg = Message.from_bytes(raw)
    try:
        opened = parse(msg.content_type(), msg.body)
    except EnvelopeError as exc:
        raise NotOpened(f"damaged seal: {exc}") from None
    if opened is None:
        raise NotOpened("not a sealed message")
    content_key = _open_slot(opened, key_ids, opener)
    verdicts = b"".join(n.encode() + b":" + v.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") +
                        b"\r\n" for n, v in msg.headers if n.lower() in VERDICT_HEADERS)
    with tempfile.SpooledTemporaryFile(1 << 22) as out:
        try:
            decrypt(opened, msg.body, content_key, out)
        except EnvelopeError as exc:
            raise NotOpened(f"damaged seal: {exc}") from None
        out.seek(0)
        return verdicts + out.read()


def _open_slot(opened: Opened, key_ids: set[str] | None, opener: Opener) -> bytes:
    """`key_ids` None: try every slot (the keystore knows which keys it holds)."""
    mine = [s for s in opened.header.slots if key_ids is None or s.key_id in key_ids]
    problems = []
    for slot in mine:
        try:
            return opener(slot.key_id, slot.ephemeral_public, slot.wrapped,
                          slot.context(opened.header.stream_header))
        except WrapError as exc:
            problems.append(str(exc))
    if not mine or key_ids is None:
        raise NotOpened("sealed for other keys (" +
                        ", ".join(s.key_id for s in opened.header.slots) + ")")
    raise NotOpened(f"the slot for this key does not open: {'; '.join(problems)}")


@dataclass
class Report:
    opened: int = 0
    problems: list[str] = field(default_factory=list)


def _items(source: Path) -> Iterator[tuple[str, bytes]]:
    if source.is_dir():
        for key, item in mailbox.Maildir(source, factory=None, create=False).iteritems():
            yield key, item.as_bytes()
    elif _is_mbox(source):
        for number, entry in mailbox.mbox(source, create=False).iteritems():
            yield str(number), entry.as_bytes()
    else:
        yield source.name, source.read_bytes()


def _is_mbox(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(5) == b"From "


def unseal_path(source: Path, target: Path | None, key_ids: set[str] | None, opener: Opener,
                out: io.BufferedIOBase) -> Report:
    """Every message of `source` into `target` (same kind), or to `out` for a single message;
    what cannot be opened is reported and skipped, the rest goes on."""
    report = Report()
    sink: mailbox.Mailbox | None = None  # type: ignore[type-arg]
    if source.is_dir():
        sink = mailbox.Maildir(target or source.with_name(source.name + ".unsealed"), create=True)
    elif _is_mbox(source):
        sink = mailbox.mbox(target or source.with_name(source.name + ".unsealed"), create=True)
    for name, raw in _items(source):
        try:
            original = unseal(raw, key_ids, opener)
        except NotOpened as exc:
            report.problems.append(f"{name}: {exc}")
            continue
        report.opened += 1
        if sink is None:
            if target is not None:
                target.write_bytes(original)
            else:
                out.write(original)
        else:
            sink.add(original.replace(b"\r\n", b"\n"))
    if sink is not None:
        sink.flush()
    return report
