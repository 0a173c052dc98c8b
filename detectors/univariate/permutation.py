"""Permutation p-values for distances that have no analytic null distribution, batched.

Under the null the pooled sample is exchangeable: any ``n_cur`` of the ``N`` pooled values could
have been the current window. A permutation is drawn as a random set of positions in the sorted
pooled sample (the same sets serve every feature; each feature's p-value is valid on its own).
Because the pooled sample of each feature is sorted, everything a permuted statistic needs is
the running count of "current" positions, ``C[p, k]``, shared by all features; the Wasserstein
distances of all permutations are then one matrix product, binned counts one gather.

The p-value is ``(1 + #{permuted >= observed}) / (1 + n_permutations)``, which is never zero
and is exact in level (Phipson and Smyth, 2010).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from detectors.permutations import random_subsets

# ties between the observed and a permuted statistic computed along different float paths
_REL_TOL = 1e-9
# values one batch of permutations may hold at once (its running counts, and what ``permuted``
# makes of them), so memory stays bounded however many permutations the family needs
BUDGET = 1 << 23


def running_counts(
    n_total: int, n_cur: int, n_permutations: int, seed: int, device: torch.device
) -> torch.Tensor:
    """``C`` of shape (P, N + 1): ``C[p, k]`` = current-sample positions among the first k."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    mask = random_subsets(n_total, n_cur, n_permutations, generator)
    counts = torch.zeros((n_permutations, n_total + 1), dtype=torch.float64)
    counts[:, 1:] = mask.cumsum(dim=1)
    return counts.to(device)


def permutation_p_values(
    pooled_sorted: torch.Tensor,
    n_ref: np.ndarray,
    n_cur: np.ndarray,
    observed: np.ndarray,
    permuted: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int, int], torch.Tensor],
    *,
    n_permutations: int,
    seed: int,
    per_feature: int = 1,
) -> np.ndarray:
    """One p-value per feature.

    ``pooled_sorted`` is (features, rows) with missing values last; features are grouped by
    their (reference, current) sizes. ``permuted(members, z, counts, n_ref, n_cur)`` returns the
    (features, permutations) statistics of the group's features ``members`` (indices), whose
    pooled values are ``z`` (features, N). Permutations are drawn in batches of at most
    :data:`BUDGET` values (``per_feature`` is what ``permuted`` holds per feature and
    permutation); batch ``b`` is seeded ``seed + b``, so one batch draws what one call would.
    """
    p = np.full(len(observed), np.nan)
    testable = (n_ref > 0) & (n_cur > 0) & np.isfinite(observed)
    for nr, nc in {(int(a), int(b)) for a, b in zip(n_ref[testable], n_cur[testable], strict=True)}:
        members = np.flatnonzero(testable & (n_ref == nr) & (n_cur == nc))
        index = torch.as_tensor(members, device=pooled_sorted.device)
        z = pooled_sorted[index, : nr + nc]
        obs = observed[members][:, None]
        exceed = np.zeros(len(members))
        # the running counts and one more (P, N) array (a permuted ECDF gap), then the rest
        width = 2 * (nr + nc + 1) + len(members) * per_feature
        per_batch = max(1, BUDGET // width)
        for number, start in enumerate(range(0, n_permutations, per_batch)):
            size = min(per_batch, n_permutations - start)
            counts = running_counts(nr + nc, nc, size, seed + number, pooled_sorted.device)
            stats = permuted(index, z, counts, nr, nc).cpu().numpy()
            exceed += (stats >= obs - _REL_TOL * np.abs(obs)).sum(axis=1)
        p[members] = (1.0 + exceed) / (1.0 + n_permutations)
    return p
