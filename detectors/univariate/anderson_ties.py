"""Permutation p-values of the Anderson-Darling statistic on tie-heavy features, batched.

Scholz and Stephens' table (what scipy's ``anderson_ksamp`` interpolates) describes the
statistic of continuous data. With heavy ties the midrank statistic's null distribution moves
away from it and the table's p-values are too small: on integer-valued windows of 200 against
200 (Poisson(2), about 8 distinct values in 400) 7.8% of features gave p < 0.05, on 0/1 values
11%. Conditionally on the pooled values, though, every split of the pooled sample into a
reference and a current window is equally likely under the null, so a permutation p-value is
exact in level whatever the ties.

Only the current sample's midrank counts change from one permutation to the next: at a distinct
pooled value with ``L`` pooled values below it and ``R`` at or below it, the current sample's
``M = (C[L] + C[R]) / 2`` where ``C[p, k]`` counts current positions among the first ``k``
(``permutation.running_counts``). The reference's term has the same square as the current's
(``N M_ref - B n_ref = -(N M_cur - B n_cur)``), so each permuted A2akN is one gather and a
weighted sum of squares over the distinct values.
"""

from __future__ import annotations

import numpy as np
import torch

from detectors.permutations import AUTO, resolve_permutations
from detectors.univariate.permutation import _REL_TOL, running_counts
from detectors.univariate.ranks import searchsorted_both

# distinct pooled values at most this share of the pooled sample: the table is not trusted
HEAVY_TIES = 0.5
# values (permutations x features x distinct values) one batch may hold at once
_BUDGET = 1 << 23


def distinct_counts(z: torch.Tensor) -> torch.Tensor:
    """Distinct finite values in each sorted row of ``z`` (missing values, +inf, sort last)."""
    finite = torch.isfinite(z)
    starts = finite.clone()
    starts[:, 1:] &= z[:, 1:] != z[:, :-1]
    return starts.sum(dim=1)


def n_permutations(n_tests: int, alpha: float) -> int:
    """Enough permutations that the smallest attainable p-value, ``1 / (P + 1)``, is half the
    smallest level Benjamini-Hochberg (or Bonferroni) uses over ``n_tests`` features, and at
    least 999 (so a p-value near alpha is estimated to about +-0.007); see
    :mod:`detectors.permutations`."""
    return resolve_permutations(AUTO, family_size=n_tests, alpha=alpha, minimum=999)


def _distinct_terms(
    z: torch.Tensor, n_cur: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per distinct value of each (finite, sorted) row: ``L``, ``R`` (long), ``B * n_cur`` and
    the weight ``l / N / (B (N - B) - N l / 4)`` of eq. 7, padded with zero weights."""
    total = z.shape[1]
    left, right = searchsorted_both(z, z)
    ties = right - left
    b = left + ties / 2
    denominator = b * (total - b) - total * ties / 4
    first = (left == torch.arange(total, device=z.device)[None, :]) & (denominator > 0)
    safe = torch.where(first, denominator, torch.ones_like(denominator))
    weight = torch.where(first, ties / total / safe, torch.zeros_like(safe))
    width = max(int(first.sum(dim=1).max()), 1)
    # the distinct values' positions first (a stable sort keeps them in order), then padding
    order = torch.sort((~first).to(torch.int8), dim=1, stable=True).indices[:, :width]
    return (
        left.gather(1, order).long(),
        right.gather(1, order).long(),
        b.gather(1, order) * n_cur,
        weight.gather(1, order),
    )


def permutation_p_values(
    z: torch.Tensor, n_ref: int, n_cur: int, observed: np.ndarray, n_permutations: int, seed: int
) -> np.ndarray:
    """P-values of the observed A2akN of features whose pooled sorted values are the rows of
    ``z`` (features, n_ref + n_cur), all finite: ``(1 + #{permuted >= observed}) / (1 + P)``."""
    total = n_ref + n_cur
    left, right, b_n, weight = _distinct_terms(z, n_cur)
    scale = (total - 1) / total * (1 / n_ref + 1 / n_cur)
    threshold = torch.as_tensor(observed - _REL_TOL * np.abs(observed), device=z.device)
    exceed = torch.zeros(z.shape[0], dtype=torch.float64, device=z.device)
    per_batch = max(1, _BUDGET // max(z.shape[0] * left.shape[1], total + 1))
    for number, start in enumerate(range(0, n_permutations, per_batch)):
        size = min(per_batch, n_permutations - start)
        counts = running_counts(total, n_cur, size, seed + number, z.device)  # (P, N + 1)
        m = (counts[:, left] + counts[:, right]) / 2  # (P, features, distinct)
        stats = scale * (weight * (total * m - b_n) ** 2).sum(dim=2)
        exceed += (stats >= threshold).sum(dim=0)
    return ((1.0 + exceed) / (1.0 + n_permutations)).cpu().numpy()
