"""Two-sample Kolmogorov-Smirnov test, batched over all features in PyTorch."""

from __future__ import annotations

import math
from functools import partial
from typing import Literal

import numpy as np
import torch

from detectors.univariate.columns import SortedColumns
from detectors.univariate.kolmogorov import kstwo_sf
from detectors.univariate.sorted_test import Outcome, SortedColumnsTest

# scipy's rule for method="auto": exact while both samples have at most this many values
MAX_EXACT_N = 10_000
KSMethod = Literal["auto", "exact", "asymp"]


def ref_counts_at_or_below(ref: SortedColumns, cur: SortedColumns) -> torch.Tensor:
    """``#ref <= y`` for every current value ``y``, per feature (int64, cur's shape).

    On the CPU, both rows are already sorted, so a stable argsort of the pooled row is one merge
    (numpy's stable sort is a timsort, linear on two sorted runs): the current value ``k`` lands
    at pooled position ``p``, after ``p - k`` reference values, equal ones included (the
    reference comes first among equals). That took about a third of the time of a binary search
    per value (``torch.searchsorted``), which stays the GPU's path.
    """
    if ref.values.device.type != "cpu":
        return torch.searchsorted(ref.values, cur.values, right=True)
    x, y = ref.values.numpy(), cur.values.numpy()
    order = np.argsort(np.concatenate([x, y], axis=1), axis=1, kind="stable")
    positions = np.nonzero(order >= x.shape[1])[1].reshape(y.shape)  # row by row, ascending
    return torch.from_numpy(positions - np.arange(y.shape[1]))


def ks_statistic(ref: SortedColumns, cur: SortedColumns) -> torch.Tensor:
    """Largest gap between the two empirical CDFs, one value per feature, exact with ties.

    Only the current values are placed in the sorted reference (no pooled statistic is built):
    between two consecutive distinct current values ``y_a < y_b`` the current ECDF is constant
    and the reference ECDF rises from ``#ref <= y_a`` to ``#ref < y_b``, so the gap's extremes
    over that interval are at those two counts. Before the first current value the gap is
    ``#ref < y_1 / n``. This is the supremum scipy's ``ks_2samp`` takes over all pooled values.

    Continuous data without missing values (no value repeated within the window or shared with
    the reference) takes a shorter path with the same result: every current value is then the
    last of its ties and ``#ref < y`` equals ``#ref <= y``.
    """
    y = cur.values
    width = y.shape[1]
    le_counts = ref_counts_at_or_below(ref, cur)
    n = ref.counts.clamp(min=1).to(torch.float64)[:, None]
    m = cur.counts.clamp(min=1).to(torch.float64)[:, None]
    # a current value shared with the reference equals the reference value just below its count
    just_below = ref.values.gather(1, (le_counts - 1).clamp(min=0))
    shared = bool((just_below == y).any())  # (missing values, +inf on both sides, count too)
    repeated = bool((y[:, 1:] == y[:, :-1]).any())
    ref_le = le_counts.to(torch.float64).div_(n)
    k = torch.arange(width, device=y.device)
    cur_le = (k + 1).to(torch.float64)[None, :] / m
    if not shared and not repeated and width > 0:
        below = (cur_le - ref_le).amax(dim=1)  # the current ECDF above the reference's
        gap = torch.maximum(below, ref_le[:, 0])
        if width > 1:  # the reference's ECDF just below the next current value, above
            gap = torch.maximum(gap, (ref_le[:, 1:] - cur_le[:, :-1]).amax(dim=1))
        return gap
    ref_lt = (
        torch.searchsorted(ref.values, y, right=False).to(torch.float64) / n if shared else ref_le
    )
    valid = k[None, :] < cur.counts[:, None]
    following = torch.cat([y[:, 1:], torch.full_like(y[:, :1], float("inf"))], dim=1)
    last_of_ties = valid & (y != following)  # the current ECDF steps here: #cur <= y is k + 1
    # reference ECDF just below the next distinct current value (1 after the last one)
    ref_below_next = torch.cat([ref_lt[:, 1:], torch.ones_like(ref_lt[:, :1])], dim=1)
    zero = torch.zeros((), dtype=torch.float64, device=y.device)
    at_values = torch.where(last_of_ties, (ref_le - cur_le).abs(), zero).amax(dim=1)
    between = torch.where(last_of_ties, ref_below_next - cur_le, zero).amax(dim=1)
    before_first = ref_lt[:, 0]
    return torch.maximum(torch.maximum(at_values, between), before_first)


def ks_asymptotic_p_value(
    statistic: np.ndarray,
    n_ref: np.ndarray,
    n_cur: np.ndarray,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Two-sided p-value from Smirnov's distribution, as ``ks_2samp(method="asymp")``.

    All features at once on ``device`` (scipy's ``kstwo.sf`` is a Python loop per value with
    an O(n) sum each for a large statistic; see :mod:`detectors.univariate.kolmogorov`).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        en = np.round(n_ref * n_cur / (n_ref + n_cur))
    as_tensor = partial(torch.as_tensor, dtype=torch.float64, device=device)
    p = kstwo_sf(as_tensor(statistic), as_tensor(en))
    return p.cpu().numpy()


def _prob_outside_square(n: int, h: int) -> float:
    """P(D >= h/n) for two samples of equal size n (scipy's Horner-like closed form)."""
    total = 0.0
    k = n // h
    while k >= 0:
        term = 1.0
        for j in range(h):
            term = (n - k * h - j) * term / (n + k * h + j + 1)
        total = term * (1.0 - total)
        k -= 1
    return 2.0 * total


def _prob_outside_band(n1: int, n2: int, hg: np.ndarray) -> np.ndarray:
    """P(D >= d) for each band half-width ``hg`` (in units of 1/(n1*n2)), sizes n1 != n2.

    Under the null every interleaving of the two sorted samples is equally likely: a uniformly
    random lattice path from (0, 0) to (n1, n2). The path's probability mass is pushed along
    anti-diagonals; mass that reaches a point with |i*n2 - j*n1| >= hg is absorbed and summed.
    Summing absorbed mass (instead of 1 - mass kept inside) keeps small p-values accurate, and
    all band widths are computed together. numpy, not torch: n1 + n2 small sequential steps,
    where per-operation overhead matters more than throughput.
    """
    if n1 > n2:  # the state vector runs over the smaller sample
        n1, n2 = n2, n1
    total = n1 + n2
    i = np.arange(n1 + 1, dtype=np.float64)
    limit = np.asarray(hg, dtype=np.float64)[:, None]
    mass = np.zeros((len(hg), n1 + 1))
    mass[:, 0] = 1.0
    absorbed = np.zeros(len(hg))
    from_first = np.empty_like(mass)
    for s in range(total):
        remaining = float(total - s)
        np.multiply(mass, (n1 - i) / remaining, out=from_first)  # next value from sample 1
        mass *= (n2 - (s - i)) / remaining  # ... from sample 2
        mass[:, 1:] += from_first[:, :-1]
        outside = np.abs(i * total - (s + 1) * n1) >= limit  # |i*n2 - j*n1| with j = s+1-i
        absorbed += np.where(outside, mass, 0.0).sum(axis=1)
        mass[outside] = 0.0
    return np.clip(absorbed, 0.0, 1.0)


def ks_exact_p_value(statistic: np.ndarray, n_ref: np.ndarray, n_cur: np.ndarray) -> np.ndarray:
    """Exact two-sided p-values, as ``ks_2samp(method="exact")``, for features of any sizes.

    Features sharing sizes and the same lattice distance are computed once.
    """
    p = np.full(statistic.shape, np.nan)
    for n1, n2 in {(int(a), int(b)) for a, b in zip(n_ref, n_cur, strict=True)}:
        members = np.flatnonzero((n_ref == n1) & (n_cur == n2))
        g = math.gcd(n1, n2)
        lcm = (n1 // g) * n2
        h = np.round(statistic[members] * lcm).astype(np.int64)
        distinct = np.unique(h[h > 0])
        if n1 == n2:
            values = np.array([_prob_outside_square(n1, int(x)) for x in distinct])
        elif len(distinct):
            values = _prob_outside_band(n1, n2, distinct * g)
        else:
            values = np.zeros(0)
        found = values.astype(np.float64).tolist()
        lookup = dict(zip(distinct.tolist(), found, strict=True))
        p[members] = [1.0 if x == 0 else lookup[int(x)] for x in h]
    return np.clip(p, 0.0, 1.0)


class KSTest(SortedColumnsTest):
    """Kolmogorov-Smirnov drift test for numeric features.

    ``fit`` sorts the reference columns once; ``score`` sorts the current window and compares
    all features in one batched computation. Missing values (NaN) are left out per feature.
    ``method`` follows ``scipy.stats.ks_2samp``: ``"auto"`` gives the exact p-value while both
    samples have at most 10,000 values and the asymptotic one beyond; ``"exact"``, ``"asymp"``.

    >>> import numpy as np
    >>> ref = np.column_stack([np.linspace(0, 1, 500), np.linspace(0, 1, 500)])
    >>> cur = np.column_stack([np.linspace(0, 1, 400), np.linspace(0.5, 1.5, 400)])
    >>> KSTest(device="cpu").fit(ref).score(cur).drift.tolist()
    [False, True]
    """

    method = "ks"

    def __init__(
        self,
        *,
        device: str = "auto",
        alpha: float = 0.05,
        correction: str = "bh",
        mode: KSMethod = "auto",
    ) -> None:
        if mode not in ("auto", "exact", "asymp"):
            raise ValueError(f"mode must be 'auto', 'exact' or 'asymp', got {mode!r}")
        super().__init__(device=device, alpha=alpha, correction=correction)
        self.mode = mode

    def _statistic(
        self, start: int, stop: int, ref: SortedColumns, cur: SortedColumns
    ) -> torch.Tensor:
        return ks_statistic(ref, cur)

    def _test(
        self,
        raw: np.ndarray,
        n_ref: np.ndarray,
        n_cur: np.ndarray,
        cur: SortedColumns,
        current: np.ndarray,
    ) -> Outcome:
        testable = (n_ref > 0) & (n_cur > 0)
        p = np.full(raw.shape, np.nan)
        if self.mode == "asymp":
            exact = np.zeros_like(testable)
        else:
            # scipy switches to the asymptotic form when the lattice would overflow int32
            small = np.maximum(n_ref, n_cur) <= MAX_EXACT_N if self.mode == "auto" else True
            gcd = np.gcd(np.maximum(n_ref, 1), np.maximum(n_cur, 1))
            fits = (n_ref // gcd) < np.iinfo(np.int32).max / np.maximum(n_cur // gcd, 1)
            exact = testable & small & fits
        asymp = testable & ~exact
        if asymp.any():
            p[asymp] = ks_asymptotic_p_value(raw[asymp], n_ref[asymp], n_cur[asymp], self._device)
        if exact.any():
            p[exact] = ks_exact_p_value(raw[exact], n_ref[exact], n_cur[exact])
        return Outcome(raw, p, testable)
