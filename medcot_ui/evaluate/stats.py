"""The statistics an evaluation reports: Wilson intervals, the exact McNemar test and Cohen's kappa.

Small samples are the norm here (tens of questions, a few raters), so the interval and the test are the ones
that stay honest at small n: Wilson rather than the normal approximation, McNemar's exact binomial form.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054  # the standard normal's 97.5th percentile


@dataclass(frozen=True)
class Proportion:
    """k successes out of n with its 95% Wilson interval (all None when n is 0)."""

    k: int
    n: int
    low: float | None
    high: float | None

    @property
    def value(self) -> float | None:
        return self.k / self.n if self.n else None

    def describe(self) -> str:
        if not self.n:
            return "n/a (none)"
        return f"{self.value:.1%} ({self.k}/{self.n}; 95% CI {self.low:.1%} to {self.high:.1%})"


def wilson(k: int, n: int, z: float = Z95) -> Proportion:
    """The Wilson score interval of k/n."""
    if not 0 <= k <= n:
        raise ValueError(f"wilson: need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return Proportion(0, 0, None, None)
    p, z2 = k / n, z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return Proportion(k, n, max(0.0, centre - half), min(1.0, centre + half))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs: b = only the first right, c = only the second.

    Under no difference each discordant pair is a fair coin, so p = 2 * P(X <= min(b, c)), X ~ Binomial(b + c, 1/2),
    capped at 1 (1.0 when there are no discordant pairs).
    """
    if b < 0 or c < 0:
        raise ValueError(f"mcnemar_exact: counts must be >= 0, got b={b}, c={c}")
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


def cohen_kappa(first: Sequence[Hashable], second: Sequence[Hashable]) -> float | None:
    """Cohen's kappa of two raters' labels on the same items, in the same order (None when undefined)."""
    if len(first) != len(second):
        raise ValueError(f"cohen_kappa: the raters labelled {len(first)} and {len(second)} items; pair them first")
    n = len(first)
    if n == 0:
        return None
    observed = sum(a == b for a, b in zip(first, second)) / n
    counts_a, counts_b = Counter(first), Counter(second)
    expected = sum(counts_a[label] * counts_b[label] for label in counts_a) / (n * n)
    if expected == 1:  # both raters used one and the same label throughout: agreement by chance is certain
        return None
    return (observed - expected) / (1 - expected)
