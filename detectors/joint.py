"""The joint stage of a monitor: one multivariate test over all its numeric features at once,
sharing one false-alarm budget with the per-feature tests.

Per-feature tests (KS by default) see each feature's distribution move. They cannot see a change
that keeps every marginal and moves the joint distribution (two features that decorrelate), and
they miss a change that moves a few correlated features a little each (a small occluded patch
of an image whose pixels each stay within their usual range): a kernel two-sample test over the
block of features sees both. The block test alone loses small marginal changes spread over
many features (noise, blur) that the per-feature tests catch, so a monitor runs both.

One budget: every test of the monitor, per-feature and joint, is one hypothesis of one
*weighted* Benjamini-Hochberg family (Genovese, Roeder & Wasserman, 2006, "False discovery
control with p-value weighting", Biometrika 93(3)): the joint test gets the share ``share`` of
the weight and the per-feature tests the rest, evenly; hypothesis ``i`` is rejected when
``p_i / u_i`` passes plain BH, the weights ``u_i`` averaging 1. The window is flagged when any
hypothesis is rejected, which is the weighted Simes test of the global null (Benjamini &
Hochberg, 1997): its level is ``alpha`` for independent or positively dependent tests (PRDS),
the case of features of one data set, and the calibration suite checks it on exchangeable
windows. The default share, 0.1, keeps 90% of the budget for the per-feature tests, so a
single drifted feature needs ``p < 0.9 alpha / m`` instead of ``alpha / m`` and the joint test
needs ``p < 0.1 alpha``. It was chosen by measurement (``benchmarks/quality.py``, 50 windows a
cell, one run, with the Fourier-feature MMD as the joint test): each point of share costs the
cells that only per-feature tests see (15% occlusion: 0.76, 0.74 and 0.72 at shares 0.05, 0.1
and 0.2, KS alone 0.78), and 0.1 is the smallest share that still catches more than one MMD
and per-feature KS in every cell only the joint test sees (75% of rows decoupled: 0.20, 0.34
and 0.54, one MMD 0.22). With the quadratic MMD of earlier, a share of 0.5 instead of 0.2
gained nothing that counts and lost elsewhere (20 windows a cell: tabular false alarms 0.10
against 0.05).

The block test sees standardized columns (reference mean and standard deviation), so features
in different units weigh alike; a missing value becomes the reference mean (missing values are
the data-quality checks' concern); and it uses at most ``max_rows`` rows of each side, a seeded
subsample, so the cost of a quadratic test does not grow with the square of a large window.
The default test is :class:`~detectors.multivariate.fourier_mmd.FourierMMD` (linear in the
rows, no permutations); :class:`BandwidthsMMD` is the quadratic MMD at the same bandwidths.

>>> import numpy as np
>>> from detectors.multivariate.mmd import MMD
>>> rng = np.random.default_rng(0)
>>> ref = rng.multivariate_normal([0, 0], [[1, 0.9], [0.9, 1]], size=600)
>>> cur = rng.multivariate_normal([0, 0], [[1, -0.9], [-0.9, 1]], size=300)  # same marginals
>>> block = BlockTest(MMD(device="cpu", n_permutations=200)).fit(ref, ["a", "b"])
>>> bool(block.score(cur).p_value[0] < 0.01)
True
>>> bool(np.isnan(block.score(cur[:1]).p_value[0]))  # one row: untested
True
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Self

import numpy as np

from detectors.base import multivariate_result
from detectors.params import Params
from detectors.permutations import Permutations, window_seed
from detectors.result import DriftResult

# A block of one feature is that feature's own test again: the joint stage needs two or more.
MIN_BLOCK_FEATURES = 2


def stage_weights(n_marginal: int, n_joint: int, share: float) -> np.ndarray:
    """Weights of the monitor's tests, the ``n_marginal`` per-feature tests first, averaging 1:
    the ``n_joint`` joint tests share ``share`` of the total, the per-feature tests the rest.

    >>> stage_weights(4, 1, 0.2).tolist()
    [1.0, 1.0, 1.0, 1.0, 1.0]
    >>> stage_weights(8, 1, 0.2).round(3).tolist()[-2:]
    [0.9, 1.8]
    >>> stage_weights(3, 0, 0.2).tolist()
    [1.0, 1.0, 1.0]
    """
    if not 0.0 < share < 1.0:
        raise ValueError(f"share must be strictly between 0 and 1, got {share!r}")
    n = n_marginal + n_joint
    if n_joint == 0 or n_marginal == 0:
        return np.ones(n)
    marginal = np.full(n_marginal, (1.0 - share) * n / n_marginal)
    joint = np.full(n_joint, share * n / n_joint)
    return np.concatenate([marginal, joint])


def joint_family_size(share: float, n_joint: int = 1) -> int:
    """The family a joint permutation test sizes its permutations for: its smallest level under
    the weighted correction is ``share * alpha / n_joint``, that of ``n_joint / share`` tests.

    >>> joint_family_size(0.2), joint_family_size(0.3)
    (5, 4)
    """
    return max(1, int(np.ceil(n_joint / share - 1e-9)))


def marginal_family_size(n_marginal: int, share: float) -> int:
    """The family each per-feature permutation test sizes its permutations for: its smallest
    level is ``(1 - share) * alpha / n_marginal``.

    >>> marginal_family_size(20, 0.2)
    25
    """
    return max(1, int(np.ceil(n_marginal / (1.0 - share) - 1e-9)))


class BlockTest:
    """A multivariate ``detector`` (an MMD, energy or classifier test, unwrapped) over the
    block of numeric features: standardized by the reference, missing values at the reference
    mean, at most ``max_rows`` rows a side. Its result is one entry named ``"*"``."""

    def __init__(self, detector: Any, *, max_rows: int = 1000, seed: int = 0) -> None:
        if max_rows < 2:
            raise ValueError(f"max_rows must be at least 2, got {max_rows!r}")
        self.detector = detector
        self.max_rows = max_rows
        self.seed = seed
        self.method = str(detector.method)
        self.features_: tuple[str, ...] = ()
        self._mean: np.ndarray | None = None
        self._scale: np.ndarray | None = None
        self._rows = 0

    def _standardized(self, data: np.ndarray, name: str) -> np.ndarray:
        assert self._mean is not None and self._scale is not None
        x = np.asarray(data, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self._mean):
            raise ValueError(f"{name}: expected (rows, {len(self._mean)}), got {x.shape}")
        z = (x - self._mean) / self._scale
        # missing or infinite values: the reference mean (their share is data quality's concern)
        return np.where(np.isfinite(z), z, 0.0)

    def _subsample(self, z: np.ndarray, seed: int) -> np.ndarray:
        if z.shape[0] <= self.max_rows:
            return z
        rows = np.random.default_rng(seed).choice(z.shape[0], self.max_rows, replace=False)
        return z[np.sort(rows)]

    def fit(self, reference: np.ndarray, features: Sequence[str] | None = None) -> Self:
        x = np.asarray(reference, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] < MIN_BLOCK_FEATURES:
            raise ValueError(f"a block test needs (rows, >= {MIN_BLOCK_FEATURES}) values")
        self.features_ = tuple(features) if features is not None else ()
        if np.isfinite(x).all():  # the usual case, without nan-aware copies
            mean, scale = x.mean(axis=0), x.std(axis=0)
        else:
            finite = np.where(np.isfinite(x), x, np.nan)
            with warnings.catch_warnings():  # "Mean of empty slice": all missing, mean 0
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(finite, axis=0)
                scale = np.nanstd(finite, axis=0)
        self._mean = np.nan_to_num(mean, nan=0.0)
        # a constant (or empty) reference column keeps its units: any change in it still shows
        self._scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        z = self._subsample(self._standardized(x, "reference"), self.seed)
        self._rows = int(x.shape[0])
        self.detector.fit(z)
        return self

    def score(self, current: np.ndarray) -> DriftResult:
        if self._mean is None:
            raise RuntimeError("call fit(reference) before score(current)")
        z = self._standardized(current, "current")
        if z.shape[0] < int(self.detector.min_reference_rows()):
            # too few rows to test (a monitor with a tiny min_samples): untested, not an error
            return multivariate_result(
                method=self.method,
                statistic=float("nan"),
                p_value=None,
                threshold=float("inf"),
                alpha=float(getattr(self.detector, "alpha", 0.05)),
                n_reference=min(self.max_rows, self._rows),
                n_current=int(z.shape[0]),
            )
        if z.shape[0] > self.max_rows:  # hashing the window for a seed costs: only when needed
            z = self._subsample(z, window_seed(self.seed, z))
        return self.detector.score(z)


class BandwidthsMMD(Params):
    """The joint stage's default test: an RBF MMD at several bandwidths, ``factors`` of the
    median distance between reference rows, Bonferroni-combined (``k`` times the smallest
    p-value).

    One bandwidth is a bet on the scale of the change. The median heuristic suits a large move
    of the whole distribution, which the per-feature tests catch anyway; on the change the joint
    stage is for it is weak: in ``benchmarks/quality.py`` (15 seeded windows a cell, p < 0.01)
    a quarter of the median caught 100% of the tabular correlation changes where the median
    caught 13%, and 100% of image noise and 93% of blur where the median caught none. Several
    bandwidths at once hedge the bet (as MMDAgg does, Schrab et al., 2023, JMLR 24(194), with a
    sharper combination than Bonferroni); each draws permutations for its share of the level.
    """

    method = "mmd"

    def min_reference_rows(self) -> int:
        return 2

    def __init__(
        self,
        *,
        factors: Sequence[float] = (0.25, 0.5, 1.0),
        device: str = "auto",
        alpha: float = 0.05,
        n_permutations: Permutations = "auto",
        family_size: int | None = None,
        seed: int = 0,
        options: dict[str, Any] | None = None,
    ) -> None:
        if not factors or any(not (f > 0 and np.isfinite(f)) for f in factors):
            raise ValueError(f"factors must be positive numbers, got {factors!r}")
        self.factors = tuple(float(f) for f in factors)
        self.device = device
        self.alpha = alpha
        self.n_permutations = n_permutations
        self.family_size = family_size
        self.seed = seed
        self.options = dict(options or {})  # more MMD parameters (chunk_size, ...)
        self._tests: list[Any] = []

    def fit(self, reference: np.ndarray, features: Sequence[str] | None = None) -> Self:
        import torch

        from detectors.multivariate.kernels import median_distance
        from detectors.multivariate.mmd import MMD

        x = np.asarray(reference, dtype=np.float64)
        complete = torch.as_tensor(x[np.isfinite(x).all(axis=1)])
        median = median_distance(complete - complete.mean(dim=0), self.seed)
        k = len(self.factors)
        self._tests = [
            MMD(
                device=self.device,
                alpha=self.alpha,
                n_permutations=self.n_permutations,
                family_size=k * (self.family_size or 1),
                seed=self.seed,
                bandwidth=factor * median,
                **self.options,
            ).fit(x, features)
            for factor in self.factors
        ]
        return self

    def score(self, current: np.ndarray) -> DriftResult:
        if not self._tests:
            raise RuntimeError("call fit(reference) before score(current)")
        return bonferroni(
            [test.score(current) for test in self._tests],
            method=self.method,
            alpha=self.alpha,
            extra={
                "bandwidth": np.array([t.bandwidth_ for t in self._tests]),
                "permutations": np.asarray(self._tests[0].permutations()),
            },
        )


def bonferroni(
    results: Sequence[DriftResult],
    *,
    method: str,
    alpha: float,
    extra: dict[str, np.ndarray] | None = None,
) -> DriftResult:
    """One result from several tests' one-entry results: ``k`` times the smallest p-value, the
    statistic and sizes of the test that has it; ``extra`` gets each p-value in order
    (``"p_values"``) and ``"decided_by"``, its index. An untested result (NaN) counts in ``k``;
    when none was tested the first result stands."""
    p = np.array([float(r.p_value[0]) for r in results])
    tested = np.flatnonzero(np.isfinite(p))
    if not len(tested):
        return results[0]
    best = int(tested[np.argmin(p[tested])])
    return multivariate_result(
        method=method,
        statistic=float(results[best].statistic[0]),
        p_value=float(min(1.0, len(p) * p[best])),
        alpha=alpha,
        n_reference=int(results[best].n_reference[0]),
        n_current=int(results[best].n_current[0]),
        extra={**(extra or {}), "p_values": p, "decided_by": np.asarray(best)},
    )


class Bonferroni:
    """Several multivariate tests of one block as one joint test: ``k`` times the smallest of
    the ``k`` p-values (Bonferroni, valid whatever the dependence between the tests). Each
    test sees what the others miss: an MMD any change of the joint distribution but small
    coordinated ones weakly, the Mahalanobis test changes of spread along the reference's
    low-variance directions, the principal-component test a change of one dominant direction
    (``benchmarks/quality.py`` measures each). The method reads ``"a+b"``, the statistic is
    that of the test with the smallest p-value; ``extra`` has each test's p-value in order (an
    untested one, NaN, counts in ``k`` all the same) and the index of the test that decided."""

    def __init__(self, tests: Sequence[Any], *, alpha: float = 0.05) -> None:
        if len(tests) < 2:
            raise ValueError("combine two or more tests (one is the test itself)")
        self.tests = list(tests)
        self.alpha = alpha
        self.method = "+".join(str(t.method) for t in self.tests)

    def min_reference_rows(self) -> int:
        return max(int(t.min_reference_rows()) for t in self.tests)

    def fit(self, reference: np.ndarray, features: Sequence[str] | None = None) -> Self:
        for test in self.tests:
            test.fit(reference, features)
        return self

    def score(self, current: np.ndarray) -> DriftResult:
        results = [test.score(current) for test in self.tests]
        return bonferroni(results, method=self.method, alpha=self.alpha)
