"""What the admin sees: client lines, server replies with timings, notes.

Kept apart from the socket code so the format lives in one place and
``--quiet`` can silence it without touching the protocol logic.
"""

import sys
from dataclasses import dataclass, field
from typing import TextIO


@dataclass(frozen=True)
class Reply:
    """One complete SMTP reply and how long the server took to give it."""

    code: int
    lines: tuple[str, ...]
    elapsed_ms: float

    @property
    def text(self) -> str:
        """The reply on one line, for error messages."""
        return f"{self.code} " + " ".join(line[4:].strip() for line in self.lines)

    @property
    def argument(self) -> str:
        """What follows the code on the first line (e.g. an AUTH challenge)."""
        return self.lines[0][4:].strip()


@dataclass
class Transcript:
    """Prints the conversation: ``C:`` sent, ``S:`` received, ``*`` notes."""

    quiet: bool = False
    out: TextIO = field(default_factory=lambda: sys.stdout)

    def client(self, line: str) -> None:
        """Show a line as it went on the wire (secrets already masked)."""
        self._emit(f"C: {line}")

    def server(self, reply: Reply, note: str = "") -> None:
        """Show a reply; the timing (or a note) ends its last line."""
        suffix = f"  ({note or f'{reply.elapsed_ms:.1f} ms'})"
        *head, last = reply.lines
        for line in head:
            self._emit(f"S: {line}")
        self._emit(f"S: {last}{suffix}")

    def info(self, text: str) -> None:
        """Show something the tool did or found, not a protocol line."""
        self._emit(f"* {text}")

    def _emit(self, line: str) -> None:
        if not self.quiet:
            print(line, file=self.out, flush=True)
