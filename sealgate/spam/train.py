"""Teach the builtin backend's Bayes model: the same MIME walk and tokens as scoring, counted."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from sealgate.spam.bayesdb import ModelWriter
from sealgate.spam.content import analyse
from sealgate.spam.mime import walk_message
from sealgate.spam.tokens import message_tokens


@dataclass
class TrainReport:
    learned: dict[str, int] = field(default_factory=lambda: {"ham": 0, "spam": 0})
    known: int = 0
    relearned: int = 0
    totals: tuple[int, int] = (0, 0)  # (ham, spam) messages the model holds afterwards


def tokens_of(raw: bytes, max_size: int) -> set[str]:
    """What the scorer would see: the first `max_size` bytes, walked and tokenized."""
    view = walk_message(raw[:max_size])
    return message_tokens(view, analyse(view))


def digest_of(raw: bytes) -> bytes:
    """Identity of a message for "learned once": line ends do not make another message."""
    return hashlib.sha256(raw.replace(b"\r\n", b"\n")).digest()


def train(model_path: str, labelled: Iterable[tuple[str, bytes]], max_size: int,
          reset: bool = False) -> TrainReport:
    """Learn every (label, raw message) in one transaction: the milter reads the old model until
    the commit, never a half-trained one."""
    report = TrainReport()
    writer = ModelWriter(model_path)
    try:
        if reset:
            writer.reset()
        for label, raw in labelled:
            outcome = writer.learn(tokens_of(raw, max_size), label, digest_of(raw))
            if outcome == "known":
                report.known += 1
                continue
            report.learned[label] += 1
            report.relearned += outcome == "relearned"
        report.totals = writer.totals()
        writer.commit()
    finally:
        writer.close()
    return report

