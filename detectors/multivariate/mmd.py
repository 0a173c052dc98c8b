"""Maximum mean discrepancy (Gretton et al., 2012) with an RBF kernel, for embeddings.

``MMD`` is the unbiased quadratic-time estimate with a batched permutation p-value;
``LinearMMD`` the linear-time estimate with its asymptotic normal p-value, for windows too large
for a permutation test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Self

import numpy as np
import torch

from detectors.base import check_matrix, feature_names, multivariate_result
from detectors.device import resolve_device
from detectors.multivariate.kernels import (
    PairFunction,
    PermutationTwoSampleTest,
    check_alpha,
    complete_tensor,
    median_distance,
)
from detectors.params import Params
from detectors.permutations import Permutations
from detectors.result import DriftResult


def _check_bandwidth(bandwidth: float | None) -> None:
    if bandwidth is not None and not (math.isfinite(bandwidth) and bandwidth > 0):
        raise ValueError(f"bandwidth must be a positive number or None, got {bandwidth!r}")


def unit_rbf(sq: torch.Tensor) -> torch.Tensor:
    """``k = exp(-d^2 / 2)`` of squared distances ``d^2`` between rows already divided by sigma
    (dividing rows rather than ``d^2`` by ``sigma^2`` cannot under- or overflow)."""
    return torch.exp(sq * -0.5)


class MMD(PermutationTwoSampleTest):
    """Squared maximum mean discrepancy with an RBF kernel, and a permutation p-value.

    The statistic is the unbiased estimate, the one ``frouros.detectors.data_drift.MMD``
    computes: the means of ``k`` over distinct pairs within each sample minus twice the mean
    over cross pairs, ``k(x, y) = exp(-||x - y||^2 / (2 sigma^2))``. It can be slightly
    negative when the samples agree.

    ``bandwidth=None`` (sigma) takes the median Euclidean distance between distinct reference
    rows, computed once in ``fit`` (on a seeded subset of 2,000 rows for larger references):
    every window is then measured with the same kernel, so statistics compare across windows,
    and the reference's kernel sum is computed once. It is kept as ``bandwidth_`` and in the
    result's ``extra["bandwidth"]``. The permutation test keeps this sigma for every permutation
    (so its level is close to, not exactly, alpha; exact with a given ``bandwidth``).

    p-value: ``(1 + #{permuted >= observed}) / (1 + P)`` over ``P`` random splits of the pooled
    rows, drawn from ``seed`` and the window's values (each window its own permutations, the
    same window the same p-value; :func:`~detectors.permutations.window_seed`); all
    permutations are one matrix
    product per kernel block (in batches of at most 8 million indicator values). ``P`` is
    ``n_permutations``; ``"auto"`` (the default) draws enough that the smallest p-value,
    ``1 / (P + 1)``, is half the smallest level of a correction over ``family_size`` tests
    (the monitor sets it to the number of features it corrects together): 200 for one test at
    alpha 0.05, 839 for 21 tests, 3,999 for 100 (:mod:`detectors.permutations`). With a
    fixed 200, a vector feature that drifts alone among 20 other features could never pass
    Benjamini-Hochberg. The cost grows linearly with ``P``; one score on this project's
    2-core CPU (torch 2 threads, 32 dims, benchmarks/calibration.py --cost, one run): 200 vs
    100 rows 0.004 s for 200 permutations, 0.011 s for 839, 0.050 s for 3,999, 0.23 s for
    19,999 (100 tests at alpha 0.01); 1,000 vs 1,000 rows 0.058, 0.14, 0.75 and 4.2 s (on a
    GPU the same products run there; not measured, none was available). Kernel sums are
    computed in ``chunk_size`` blocks, so memory does not grow with the square of the sample
    sizes. Above ``permutation_rows`` pooled
    rows the p-value comes from a seeded subsample of that many rows (the statistic still uses
    every row). Rows with a NaN are dropped; each side needs at least 2 complete rows.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> test = MMD(device="cpu", n_permutations=100).fit(rng.normal(size=(200, 4)))
    >>> bool(test.score(rng.normal(size=(150, 4))).drift[0])
    False
    >>> bool(test.score(rng.normal(size=(150, 4)) + 0.5).drift[0])
    True
    """

    method = "mmd"
    min_rows = 2

    def __init__(
        self,
        *,
        n_permutations: Permutations = "auto",
        family_size: int | None = None,
        seed: int = 0,
        bandwidth: float | None = None,
        alpha: float = 0.05,
        device: str = "auto",
        chunk_size: int = 2048,
        permutation_rows: int = 10_000,
    ) -> None:
        _check_bandwidth(bandwidth)
        self.n_permutations = n_permutations
        self.family_size = family_size
        self.seed = seed
        self.bandwidth = bandwidth
        self.alpha = alpha
        self.device = device
        self.chunk_size = chunk_size
        self.permutation_rows = permutation_rows
        self._device = resolve_device(device)
        self.bandwidth_: float | None = None  # the sigma in use, set by fit
        self._init_state()

    def _prepare(self, reference: torch.Tensor) -> float:
        self.bandwidth_ = (
            float(self.bandwidth)
            if self.bandwidth is not None
            else median_distance(reference, self.seed)
        )
        return self.bandwidth_

    def _pair_function(self) -> PairFunction:
        return unit_rbf

    def _statistic(
        self, s_xx: torch.Tensor, s_xy: torch.Tensor, s_yy: torch.Tensor, n: int, m: int
    ) -> torch.Tensor:
        # the diagonal of each within-sample block is k(x, x) = 1: subtracting n (m) leaves the
        # sum over distinct pairs that the unbiased estimate averages
        return (s_xx - n) / (n * (n - 1)) + (s_yy - m) / (m * (m - 1)) - 2.0 * s_xy / (n * m)

    def _extra(self) -> dict[str, np.ndarray]:
        return {"bandwidth": np.asarray(self.bandwidth_, dtype=np.float64)}


class LinearMMD(Params):
    """Linear-time MMD (Gretton et al., 2012, section 6) with a one-sided normal p-value.

    Rows are taken in consecutive pairs, ``(x_1, x_2), (x_3, x_4), ...`` and the same for the
    current window; pair ``i`` contributes ``h_i = k(x_2i-1, x_2i) + k(y_2i-1, y_2i)
    - k(x_2i-1, y_2i) - k(x_2i, y_2i-1)``. The statistic is the mean of ``h`` over
    ``n_pairs = min(n_ref, n_cur) // 2`` pairs (so each side uses its first ``2 n_pairs`` rows in
    the given order; surplus rows of the larger side are ignored) and the p-value is
    ``P(Z >= mean / sqrt(var(h) / n_pairs))`` for a standard normal ``Z``. It costs O(rows) time
    and memory, but the statistic depends on the row order and on which rows are paired:
    shuffle time-ordered data first. ``bandwidth=None`` uses the median heuristic on the
    reference (as :class:`MMD`, subset drawn with seed 0). Rows with a NaN are dropped; each
    side needs at least 4 complete rows (two pairs, for the variance).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> test = LinearMMD(device="cpu").fit(rng.normal(size=(4000, 4)))
    >>> bool(test.score(rng.normal(size=(4000, 4)) + 0.3).drift[0])
    True
    """

    method = "linear_mmd"

    def min_reference_rows(self) -> int:
        return 4  # two pairs, for the variance

    def __init__(
        self, *, bandwidth: float | None = None, alpha: float = 0.05, device: str = "auto"
    ) -> None:
        _check_bandwidth(bandwidth)
        check_alpha(alpha)
        self.bandwidth = bandwidth
        self.alpha = alpha
        self.device = device
        self._device = resolve_device(device)
        self.bandwidth_: float | None = None
        self._ref: torch.Tensor | None = None
        self._center = torch.zeros(0)
        self.features_: tuple[str, ...] = ()

    def _complete(self, data: np.ndarray, name: str) -> torch.Tensor:
        return complete_tensor(data, name, 4, self._device)

    def fit(self, reference: np.ndarray, features: Sequence[str] | None = None) -> Self:
        data = check_matrix(reference, name="reference")
        self.features_ = feature_names(features, data.shape[1])
        x = self._complete(data, "reference")
        self._center = x.mean(dim=0)
        self._ref = x - self._center
        self.bandwidth_ = (
            float(self.bandwidth) if self.bandwidth is not None else median_distance(self._ref, 0)
        )
        return self

    def score(self, current: np.ndarray) -> DriftResult:
        if self._ref is None or self.bandwidth_ is None:
            raise RuntimeError("call fit(reference) before score(current)")
        data = check_matrix(current, name="current", n_features=len(self.features_))
        x, y = self._ref, self._complete(data, "current") - self._center
        n_pairs = min(len(x), len(y)) // 2
        x1, x2 = x[0 : 2 * n_pairs : 2], x[1 : 2 * n_pairs : 2]
        y1, y2 = y[0 : 2 * n_pairs : 2], y[1 : 2 * n_pairs : 2]
        sigma = self.bandwidth_

        def k(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # row by row, not all pairs
            return unit_rbf(((a - b) / sigma).square().sum(dim=1))

        h = k(x1, x2) + k(y1, y2) - k(x1, y2) - k(x2, y1)
        statistic = float(h.mean())
        std = float(h.std(unbiased=True))
        if std > 0.0:
            z = statistic / (std / math.sqrt(n_pairs))
            p_value = 0.5 * math.erfc(z / math.sqrt(2.0))
        else:  # every h_i equal: no spread to judge by, so only a positive mean counts as drift
            p_value = 0.0 if statistic > 0.0 else 1.0
        return multivariate_result(
            method=self.method,
            statistic=statistic,
            p_value=p_value,
            alpha=self.alpha,
            n_reference=len(x),
            n_current=len(y),
            extra={
                "bandwidth": np.asarray(self.bandwidth_, dtype=np.float64),
                "n_pairs": np.asarray(n_pairs),
            },
        )
