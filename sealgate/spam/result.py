"""What a scan found, in the same shape whatever the backend: a score, the rules that fired."""

from __future__ import annotations

from dataclasses import dataclass, field


class ScannerUnavailable(Exception):
    """The scanner could not give an answer in time (down, refused, slow, or spoke nonsense).

    Raised only by the external backends; the stage turns it into the configured
    `unavailable_action`, so a dead scanner never loses or silently passes mail.
    """


@dataclass(frozen=True)
class RuleHit:
    name: str
    score: float
    description: str = ""


@dataclass
class ScanResult:
    score: float
    backend: str
    hits: list[RuleHit] = field(default_factory=list)
    bayes_probability: float | None = None  # builtin only: 0.0 ham ... 1.0 spam, None untrained

    def rule_names(self) -> list[str]:
        return [h.name for h in self.hits]
