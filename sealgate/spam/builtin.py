"""The builtin backend: weighted rules plus the Bayes bands, in-process, a millisecond or two."""

from __future__ import annotations

import logging

from sealgate.pipeline import AuthResult
from sealgate.spam import bayes
from sealgate.spam.bayesdb import ModelError, reader
from sealgate.spam.content import analyse
from sealgate.spam.mime import walk_message
from sealgate.spam.result import RuleHit, ScanResult
from sealgate.spam.rules import RULES, Facts, bayes_band
from sealgate.spam.tokens import message_tokens

log = logging.getLogger("sealgate")
_reported: set[str] = set()  # model problems already logged: one line each, not one per message


def scan(raw: bytes, results: list[AuthResult], now: float, model_path: str,
         min_trained: int, explain: bool = False) -> ScanResult:
    view = walk_message(raw)
    content = analyse(view)
    facts = Facts.of(view, content, results, now)
    hits = [RuleHit(r.name, r.score, r.description) for r in RULES if r.test(facts)]
    result = ScanResult(0.0, "builtin", hits)
    if model_path and reader(model_path).trained():
        _add_bayes(result, message_tokens(view, content), model_path, min_trained, explain)
    result.score = round(float(sum(h.score for h in result.hits)), 3)
    return result


def _add_bayes(result: ScanResult, tokens: set[str], model_path: str, min_trained: int,
               explain: bool) -> None:
    try:
        counts = reader(model_path).counts(tokens)
    except ModelError as exc:
        if str(exc) not in _reported:
            _reported.add(str(exc))
            log.error("%s; scoring without Bayes", exc)
        return
    if counts is None or min(counts.nham, counts.nspam) < min_trained:
        return  # untrained: no BAYES_* rule, the rules alone decide
    probability, clues = bayes.classify(counts.tokens, counts.nham, counts.nspam)
    band = bayes_band(probability)
    description = f"Bayes spam probability {probability:.3f}"
    if explain:
        strongest = ", ".join(f"{c.token!r}={c.probability:.2f}" for c in clues[:12])
        description += f" (strongest tokens: {strongest})" if strongest else ""
    result.hits.append(RuleHit(band.name, band.score, description))
    result.bayes_probability = probability
