"""Chunked pairwise sums and batched permutation tests for kernel and distance two-sample tests.

MMD and the energy distance are both built from three sums over pairs of rows of a function of
their squared Euclidean distance ``f(||a - b||^2)``: within the reference, within the current
window and across. :func:`pair_sum` computes such a sum in (chunk x chunk) blocks, so memory
stays at a few blocks whatever the sample sizes.

Permutation test. With the pooled sample of ``N`` rows, its pair matrix ``K[i, j]`` and a
(P x N) matrix ``U`` of 0/1 indicators (row ``p`` marks the rows permutation ``p`` assigns to
the first sample), the three sums of every permutation come from one product ``U @ K``:
``s_xx = ((U @ K) * U).sum(1)``, ``s_xy = (U @ K).sum(1) - s_xx`` and
``s_yy = total - s_xx - 2 s_xy`` (``total`` is the sum of all of ``K``). ``K`` itself is never
held whole: ``U @ K`` is accumulated block by block, using ``K``'s symmetry so each block is
computed once. The p-value is ``(1 + #{permuted >= observed}) / (1 + P)``, never zero (Phipson
and Smyth, 2010); it is exact in level when the pair function does not depend on which rows are
the reference (the energy distance, MMD with a given bandwidth), and close to it when MMD's
bandwidth comes from the reference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Self

import numpy as np
import torch

from detectors.base import check_matrix, feature_names, multivariate_result
from detectors.params import Params
from detectors.permutations import (
    Permutations,
    check_family_size,
    check_permutations,
    random_subsets,
    resolve_permutations,
    window_seed,
)
from detectors.result import DriftResult

# squared distances -> kernel or distance values, applied block by block
PairFunction = Callable[[torch.Tensor], torch.Tensor]

# At most this many columns, distances are computed from coordinate differences (torch.cdist's
# direct mode), which is exact for identical rows; beyond, the matrix-product expansion
# |a|^2 + |b|^2 - 2 a.b is much faster but leaves rounding of order 1e-16 |a|^2, which a square
# root (energy distance) would inflate to 1e-8 |a| for near-identical rows.
DIRECT_MAX_DIM = 16
_EXPANSION_ROUNDING = 64 * float(np.finfo(np.float64).eps)
# The median heuristic looks at the pairs of at most this many reference rows (2 million pairs)
MEDIAN_MAX_ROWS = 2000
# Indicator values (permutations x pooled rows) one batch of permutations holds at once: 64 MiB of
# float64 for the indicators, as much for their product with the pair matrix and for the random
# keys that draw them. A window of 300 pooled rows takes 27,000 permutations in one batch.
PERMUTATION_BUDGET = 1 << 23
# Permuted and observed statistics closer than this (relative to the size of a pair value) count
# as ties: they go through the same products, but rounding may differ between their rows
TIE_TOLERANCE = 1e-9


def complete_rows(data: np.ndarray) -> np.ndarray:
    """The rows of a (rows, dim) array without any NaN or infinite value."""
    return data[np.isfinite(data).all(axis=1)]


def complete_tensor(
    data: np.ndarray, name: str, minimum: int, device: torch.device
) -> torch.Tensor:
    """The complete rows of ``data`` as a float64 tensor, or a ValueError when fewer than
    ``minimum`` are left."""
    rows = complete_rows(data)
    if len(rows) < minimum:
        raise ValueError(
            f"{name} needs at least {minimum} complete rows (rows without NaN), got {len(rows)}"
        )
    return rows_tensor(rows, device)


def rows_tensor(data: np.ndarray, device: torch.device) -> torch.Tensor:
    """A contiguous float64 (rows, dim) tensor (torch refuses negatively strided numpy views)."""
    return torch.as_tensor(np.ascontiguousarray(data, dtype=np.float64), device=device)


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The (len(a), len(b)) matrix of squared Euclidean distances, never negative."""
    if a.shape[1] <= DIRECT_MAX_DIM:
        return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist").square()
    norms = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :]
    sq = torch.addmm(norms, a, b.T, alpha=-2.0)
    # what is left below the expansion's rounding error is no distance at all (identical rows
    # would otherwise be 1e-8 |a| apart after the energy distance's square root); in place, as
    # these blocks are the bulk of the work
    return sq.masked_fill_(sq <= norms.mul_(_EXPANSION_ROUNDING), 0.0)


def _chunks(n: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def _block(a: torch.Tensor, b: torch.Tensor, fn: PairFunction, diagonal: bool) -> torch.Tensor:
    sq = squared_distances(a, b)
    if diagonal:  # a row's distance to itself is exactly zero whatever the rounding above
        sq.fill_diagonal_(0.0)
    return fn(sq)


def pair_sum(a: torch.Tensor, b: torch.Tensor | None, fn: PairFunction, chunk_size: int) -> float:
    """``sum_ij fn(||a_i - b_j||^2)`` over all ordered pairs, diagonal included.

    ``b=None`` means ``b`` is ``a``: only the blocks on and above the diagonal are computed and
    the others counted twice, which halves the work.
    """
    total = torch.zeros((), dtype=torch.float64, device=a.device)
    if b is None:
        parts = _chunks(len(a), chunk_size)
        for i, (r0, r1) in enumerate(parts):
            for c0, c1 in parts[i:]:
                same = r0 == c0
                value = _block(a[r0:r1], a[c0:c1], fn, diagonal=same).sum()
                total += value if same else 2.0 * value
        return float(total)
    for r0, r1 in _chunks(len(a), chunk_size):
        for c0, c1 in _chunks(len(b), chunk_size):
            total += _block(a[r0:r1], b[c0:c1], fn, diagonal=False).sum()
    return float(total)


def pair_matrix(a: torch.Tensor, fn: PairFunction, chunk_size: int) -> torch.Tensor:
    """The full (len(a), len(a)) matrix ``fn(||a_i - a_j||^2)``, built in blocks."""
    out = torch.empty((len(a), len(a)), dtype=torch.float64, device=a.device)
    for r0, r1 in _chunks(len(a), chunk_size):
        for c0, c1 in _chunks(len(a), chunk_size):
            out[r0:r1, c0:c1] = _block(a[r0:r1], a[c0:c1], fn, diagonal=r0 == c0)
    return out


def permutation_indicators(
    n_total: int, n_first: int, n_permutations: int, generator: torch.Generator
) -> torch.Tensor:
    """(P, n_total) float64 0/1 rows, each marking a uniformly random set of ``n_first`` rows."""
    return random_subsets(n_total, n_first, n_permutations, generator)


def indicator_products(
    rows: torch.Tensor,
    u: torch.Tensor,
    fn: PairFunction,
    chunk_size: int,
    prefix: torch.Tensor | None = None,
) -> torch.Tensor:
    """``u @ K`` (P x N) for the pair matrix ``K`` of ``rows``, without holding ``K``.

    ``prefix``, when given, is the already computed pair matrix of the first ``len(prefix)``
    rows (the reference, kept by ``fit``); blocks inside it are read instead of recomputed.
    """
    n = len(rows)
    n_prefix = 0 if prefix is None else len(prefix)
    # blocks never straddle the end of the prefix, so each is either read or computed whole
    parts = _chunks(n_prefix, chunk_size) + [
        (n_prefix + s, n_prefix + e) for s, e in _chunks(n - n_prefix, chunk_size)
    ]
    out = torch.zeros((len(u), n), dtype=torch.float64, device=rows.device)
    for i, (r0, r1) in enumerate(parts):
        for c0, c1 in parts[i:]:
            if prefix is not None and c1 <= n_prefix:
                block = prefix[r0:r1, c0:c1]
            else:
                block = _block(rows[r0:r1], rows[c0:c1], fn, diagonal=r0 == c0)
            out[:, c0:c1] += u[:, r0:r1] @ block
            if r0 != c0:  # K is symmetric: the block below the diagonal is this one transposed
                out[:, r0:r1] += u[:, c0:c1] @ block.T
    return out


def permutation_sums(
    rows: torch.Tensor,
    n_first: int,
    n_permutations: int,
    generator: torch.Generator,
    fn: PairFunction,
    chunk_size: int,
    prefix: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(s_xx, s_xy, s_yy)``, each of length 1 + P: entry 0 for the observed split (the first
    ``n_first`` rows against the rest), then one per random permutation.

    The observed split goes through the same products as the permutations, so an unchanged
    split gives the same number and ties are recognised.
    """
    n = len(rows)
    observed = torch.zeros((1, n), dtype=torch.float64)
    observed[0, :n_first] = 1.0
    shuffled = permutation_indicators(n, n_first, n_permutations, generator)
    ones = torch.ones((1, n), dtype=torch.float64)
    u = torch.cat([observed, shuffled, ones]).to(rows.device)
    products = indicator_products(rows, u, fn, chunk_size, prefix)
    s_xx = (products * u).sum(1)
    s_xy = products.sum(1) - s_xx
    total = products[-1].sum()  # the row of ones: the sum of all of K
    s_yy = total - s_xx - 2.0 * s_xy
    return s_xx[:-1], s_xy[:-1], s_yy[:-1]


def chunked_permutation_sums(
    rows: torch.Tensor,
    n_first: int,
    n_permutations: int,
    generator: torch.Generator,
    fn: PairFunction,
    chunk_size: int,
    prefix: torch.Tensor | None = None,
    budget: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`permutation_sums` with the permutations drawn in batches of at most ``budget``
    indicator values (``batch x N``; :data:`PERMUTATION_BUDGET` by default), so memory stays
    bounded however many are asked for.

    Each batch is still one matrix product per pair block for all its permutations; the
    generator runs on from batch to batch, so a given (seed, P, N) always draws the same
    permutations, and one batch (``P x N <= budget``) draws what one call would.
    """
    per_batch = max(1, (budget or PERMUTATION_BUDGET) // max(len(rows), 1))
    parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    for start in range(0, n_permutations, per_batch):
        size = min(per_batch, n_permutations - start)
        sums = permutation_sums(rows, n_first, size, generator, fn, chunk_size, prefix)
        # entry 0 is the observed split: kept from the first batch only
        parts.append(sums if not parts else (sums[0][1:], sums[1][1:], sums[2][1:]))
    s_xx, s_xy, s_yy = (torch.cat(part) for part in zip(*parts, strict=True))
    return s_xx, s_xy, s_yy


def permutation_p_value(observed: float, permuted: np.ndarray, scale: float) -> float:
    """``(1 + #{permuted >= observed}) / (1 + P)``; differences within ``TIE_TOLERANCE * scale``
    count as ties (and so as ``>=``)."""
    tolerance = TIE_TOLERANCE * max(abs(observed), scale)
    exceed = int(np.count_nonzero(permuted >= observed - tolerance))
    return (1.0 + exceed) / (1.0 + len(permuted))


def subsample_split(
    n_first: int, n_second: int, limit: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Row indices of a random subsample of at most ``limit`` pooled rows, sides in proportion.

    Each side keeps at least two rows (the unbiased MMD needs pairs within each sample).
    """
    total = n_first + n_second
    if total <= limit:
        return torch.arange(n_first), torch.arange(n_second)
    keep_first = min(n_first, max(2, round(limit * n_first / total)))
    keep_second = min(n_second, max(2, limit - keep_first))
    first = torch.randperm(n_first, generator=generator)[:keep_first].sort().values
    second = torch.randperm(n_second, generator=generator)[:keep_second].sort().values
    return first, second


def median_distance(rows: torch.Tensor, seed: int) -> float:
    """Median heuristic for the RBF bandwidth: the median Euclidean distance between distinct
    rows (pairs i < j), as ``numpy.median`` takes it (mean of the two middle values).

    Above ``MEDIAN_MAX_ROWS`` rows the pairs of a random subset of that many rows (drawn with
    ``seed``) are used. A zero median (over half the pairs are duplicate rows) falls back to the
    mean of the positive distances, and to 1.0 when all rows are the same.
    """
    if len(rows) > MEDIAN_MAX_ROWS:
        generator = torch.Generator().manual_seed(seed)
        pick = torch.randperm(len(rows), generator=generator)[:MEDIAN_MAX_ROWS]
        rows = rows[pick.to(rows.device)]
    n = len(rows)
    if n < 2:
        return 1.0
    i, j = torch.triu_indices(n, n, offset=1, device=rows.device)
    distances = squared_distances(rows, rows)[i, j].sqrt()
    k = len(distances)
    low = distances.kthvalue((k + 1) // 2).values
    high = distances.kthvalue(k // 2 + 1).values
    median = float((low + high) / 2.0)
    if median > 0.0:
        return median
    positive = distances[distances > 0]
    return float(positive.mean()) if len(positive) else 1.0


# fit keeps the reference's whole pair matrix up to this many rows (32 MiB in float64), so the
# permutation test reads that block instead of recomputing it on every window
CACHE_MAX_ROWS = 2048


def check_positive_int(value: int, name: str, minimum: int = 1) -> None:
    """A ValueError unless ``value`` is an integer of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_alpha(alpha: float) -> None:
    """A ValueError unless ``0 < alpha < 1``."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha!r}")


class PermutationTwoSampleTest(Params):
    """Shared ``fit``/``score`` of the tests built from pair sums with a permutation p-value.

    Subclasses define the pair function (kernel or distance) and the statistic as a function of
    the three pair sums. Rows with a missing (NaN) or infinite value are dropped. The data are
    centred on the reference mean first (distances do not change, and the matrix-product path
    of :func:`squared_distances` loses less to rounding near the origin), then divided by the
    length ``_prepare`` returns.

    When the pooled sample has more than ``permutation_rows`` rows, the statistic is still
    computed on all rows but the p-value comes from a permutation test on a random subsample of
    ``permutation_rows`` pooled rows (drawn at random, each side in proportion): the cost of
    the permutations grows with the square of the pooled size. The subsample and the
    permutations are drawn from ``seed`` and the window's values together
    (:func:`~detectors.permutations.window_seed`): the same window gives the same p-value, and
    each window draws its own permutations, so the false-alarm rate over many windows is the
    test's exact level rather than the level of one fixed set of permutations.

    ``n_permutations="auto"`` draws enough permutations that the smallest p-value passes the
    correction over ``family_size`` tests (:mod:`detectors.permutations`): 200 for one
    test at alpha 0.05, ``ceil(2 m / alpha) - 1`` for a family of ``m``. The monitor sets
    ``family_size`` to the number of features it corrects together; alone, a test is its own
    family. The number drawn is in the result's ``extra["n_permutations"]``.
    """

    method = ""
    min_rows = 1  # complete rows needed on each side
    min_permutations = 200  # what "auto" draws at least
    n_permutations: Permutations
    family_size: int | None
    seed: int
    alpha: float
    chunk_size: int
    permutation_rows: int
    _device: torch.device

    def min_reference_rows(self) -> int:
        return self.min_rows

    def _init_state(self) -> None:
        check_permutations(self.n_permutations)
        check_family_size(self.family_size)
        check_positive_int(self.chunk_size, "chunk_size")
        check_positive_int(self.permutation_rows, "permutation_rows", 2 * self.min_rows)
        check_alpha(self.alpha)
        self._ref: torch.Tensor | None = None
        self._center = torch.zeros(0)
        self._divisor = 1.0
        self._prefix: torch.Tensor | None = None
        self._s_xx = 0.0
        self.features_: tuple[str, ...] = ()

    # --- what a subclass defines -------------------------------------------------------------
    def _prepare(self, reference: torch.Tensor) -> float:
        """Learn what the pair function needs from the (centred) reference; return the length
        every row is divided by before distances are taken (an RBF kernel's bandwidth)."""
        return 1.0

    def _pair_function(self) -> PairFunction:
        raise NotImplementedError

    def _statistic(
        self, s_xx: torch.Tensor, s_xy: torch.Tensor, s_yy: torch.Tensor, n: int, m: int
    ) -> torch.Tensor:
        """The statistic the permutation test compares (larger means more different)."""
        raise NotImplementedError

    def _reported(self, statistic: float) -> float:
        """The statistic as the result shows it (a monotone function of the tested one)."""
        return statistic

    def _extra(self) -> dict[str, np.ndarray]:
        return {}

    # --- shared ------------------------------------------------------------------------------
    def permutations(self) -> int:
        """How many permutations ``score`` draws (``n_permutations``, resolved if "auto")."""
        return resolve_permutations(
            self.n_permutations,
            family_size=self.family_size or 1,
            alpha=self.alpha,
            minimum=self.min_permutations,
        )

    # --- fit and score ------------------------------------------------------------------------
    def _complete(self, data: np.ndarray, name: str) -> torch.Tensor:
        return complete_tensor(data, name, self.min_rows, self._device)

    def fit(self, reference: np.ndarray, features: Sequence[str] | None = None) -> Self:
        data = check_matrix(reference, name="reference")
        self.features_ = feature_names(features, data.shape[1])
        x = self._complete(data, "reference")
        self._center = x.mean(dim=0)
        x = x - self._center
        # dividing the rows, rather than squared distances by sigma^2, keeps tiny or huge
        # bandwidths from under- or overflowing
        self._divisor = self._prepare(x)
        x = x / self._divisor
        fn = self._pair_function()
        if len(x) <= CACHE_MAX_ROWS:
            self._prefix = pair_matrix(x, fn, self.chunk_size)
            self._s_xx = float(self._prefix.sum())
        else:
            self._prefix = None
            self._s_xx = pair_sum(x, None, fn, self.chunk_size)
        self._ref = x
        return self

    def score(self, current: np.ndarray) -> DriftResult:
        if self._ref is None:
            raise RuntimeError("call fit(reference) before score(current)")
        data = check_matrix(current, name="current", n_features=len(self.features_))
        x = self._ref
        y = (self._complete(data, "current") - self._center) / self._divisor
        fn = self._pair_function()
        sums = (
            self._s_xx,
            pair_sum(x, y, fn, self.chunk_size),
            pair_sum(y, None, fn, self.chunk_size),
        )
        s_xx, s_xy, s_yy = (torch.tensor(s, dtype=torch.float64) for s in sums)
        statistic = float(self._statistic(s_xx, s_xy, s_yy, len(x), len(y)))
        return multivariate_result(
            method=self.method,
            statistic=self._reported(statistic),
            p_value=self._p_value(x, y, fn, window_seed(self.seed, data)),
            alpha=self.alpha,
            n_reference=len(x),
            n_current=len(y),
            extra={**self._extra(), "n_permutations": np.asarray(self.permutations())},
        )

    def _p_value(self, x: torch.Tensor, y: torch.Tensor, fn: PairFunction, seed: int) -> float:
        generator = torch.Generator().manual_seed(seed)
        first, second = subsample_split(len(x), len(y), self.permutation_rows, generator)
        prefix = self._prefix
        if len(first) < len(x) and prefix is not None:
            prefix = prefix[first.to(prefix.device)][:, first.to(prefix.device)]
        rows = torch.cat([x[first.to(x.device)], y[second.to(y.device)]])
        n, m = len(first), len(second)
        s_xx, s_xy, s_yy = chunked_permutation_sums(
            rows, n, self.permutations(), generator, fn, self.chunk_size, prefix
        )
        values = self._statistic(s_xx, s_xy, s_yy, n, m).cpu().numpy()
        # ties are judged against the size of a typical pair value (mean kernel or distance)
        scale = abs(float(s_xy[0])) / (n * m)
        return permutation_p_value(float(values[0]), values[1:], scale)
