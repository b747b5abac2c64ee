"""Naive Bayes with Robinson's token probabilities and Fisher's chi-squared combining (SpamBayes).

Chosen over a textbook multinomial classifier because its output is a
well-spread probability with an honest "unsure" middle, instead of values
pinned at 0 or 1 by a few hundred multiplied likelihoods; the score bands in
rules.py depend on that spread.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

UNKNOWN = 0.5  # Robinson's x: belief about a token never seen
STRENGTH = 0.45  # Robinson's s: how much that belief weighs against few observations
MIN_DISTANCE = 0.1  # tokens with |p - 0.5| below this say nothing and are left out
MAX_CLUES = 150


@dataclass(frozen=True)
class Clue:
    token: str
    probability: float


def token_probability(ham: int, spam: int, nham: int, nspam: int) -> float:
    """Robinson's f(w): the spam ratio of a token, pulled toward 0.5 when it was seen rarely."""
    ham_ratio = ham / nham if nham else 0.0
    spam_ratio = spam / nspam if nspam else 0.0
    if ham_ratio + spam_ratio == 0:
        return UNKNOWN
    p = spam_ratio / (ham_ratio + spam_ratio)
    n = ham + spam
    return (STRENGTH * UNKNOWN + n * p) / (STRENGTH + n)


def chi2q(x2: float, dof: int) -> float:
    """P(chisq >= x2) with an even number of degrees of freedom."""
    m = x2 / 2.0
    total = term = math.exp(-m)
    for i in range(1, dof // 2):
        term *= m / i
        total += term
    return min(total, 1.0)


def combine(probabilities: list[float]) -> float:
    """Fisher's method both ways: 0.0 certainly ham, 1.0 certainly spam, 0.5 unsure."""
    if not probabilities:
        return 0.5
    log_ham = sum(math.log(max(p, 1e-300)) for p in probabilities)
    log_spam = sum(math.log(max(1.0 - p, 1e-300)) for p in probabilities)
    n = len(probabilities)
    spam_evidence = 1.0 - chi2q(-2.0 * log_spam, 2 * n)
    ham_evidence = 1.0 - chi2q(-2.0 * log_ham, 2 * n)
    return (spam_evidence - ham_evidence + 1.0) / 2.0


def classify(counts: dict[str, tuple[int, int]], nham: int, nspam: int) -> tuple[float, list[Clue]]:
    """Spam probability of a message from its tokens' (ham, spam) counts, and the clues used:
    the MAX_CLUES tokens farthest from 0.5 (ties broken by the token, so the answer does not
    depend on the order of a set)."""
    scored = [(abs(p - 0.5), token, p) for token, (ham, spam) in counts.items()
              if abs((p := token_probability(ham, spam, nham, nspam)) - 0.5) >= MIN_DISTANCE]
    strongest = heapq.nlargest(MAX_CLUES, scored)
    return combine([p for _, _, p in strongest]), [Clue(token, p) for _, token, p in strongest]
