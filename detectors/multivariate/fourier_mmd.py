"""An RBF-kernel MMD on random Fourier features at several bandwidths, with an asymptotic
p-value: the joint stage's default, linear in the number of rows and without permutations.

The quadratic MMD (:class:`~detectors.multivariate.mmd.MMD`) compares every pair of rows and
calibrates by permutations: ``P x N^2`` work, which made a monitor's joint stage cost 32x its
per-feature KS tests (issue #18, ``benchmarks/cycle.py``). Here the RBF kernel is replaced by
its random Fourier features (Rahimi & Recht, 2007, "Random features for large-scale kernel
machines", NeurIPS): ``phi(x) = [cos(W x), sin(W x)] / sqrt(J)`` with ``J`` frequencies drawn
from the kernel's spectrum, ``W ~ N(0, I / sigma^2)``, so that ``phi(x) . phi(y)`` estimates
``exp(-|x - y|^2 / (2 sigma^2))``. The statistic is the squared distance between the two
samples' mean features, the MMD of that kernel (Zhao & Meng, 2015, "FastMMD"; a close cousin of
the test of Chwialkowski et al., 2015, "Fast two-sample testing with analytic representations
of probability measures", NeurIPS, which whitens the mean difference instead).

Its null distribution needs no permutations: the mean difference ``d`` of ``2J`` bounded
features is asymptotically normal with covariance ``(1/n + 1/m) S`` (``S`` the features'
covariance, estimated on the reference once), so ``|d|^2`` is a weighted sum of chi-squares,
weights the eigenvalues of that covariance, whose upper tail is computed by the Lugannani-Rice
saddlepoint approximation and, for the p-values that decide, Imhof's integral
(:mod:`detectors.quadratic_forms`). The calibration suite checks the level on exchangeable
windows; a test compares the p-value with a permutation test of the same statistic.

Several bandwidths, ``factors`` of the median distance between reference rows, hedge the bet
on the scale of the change (one bandwidth caught 13% of a correlation change that a quarter of
it caught in full; :class:`~detectors.joint.BandwidthsMMD`'s note); their p-values are
Bonferroni-combined. The work is ``N x dim x J`` per bandwidth for the features; the
reference's covariance (``N x (2J)^2``) and its eigenvalues are computed once, in ``fit``.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> test = FourierMMD(device="cpu").fit(rng.normal(size=(1000, 4)))
>>> bool(test.score(rng.normal(size=(500, 4)) * 1.3).drift[0])
True
>>> bool(test.score(rng.normal(size=(500, 4))).drift[0])
False
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
    check_alpha,
    check_positive_int,
    complete_tensor,
    median_distance,
)
from detectors.params import Params
from detectors.quadratic_forms import imhof_sf, weighted_chi2_sf
from detectors.result import DriftResult

# rows the median heuristic looks at (their 44,850 distinct pairs: enough for a scale)
MEDIAN_ROWS = 300
# Imhof's integral (about 8 ms for 128 weights) refines a combined p-value below this, which
# can decide a window at any usual alpha; above it the saddlepoint's few percent decide nothing
REFINE_BELOW = 0.1
# below this the integral's absolute error (about 1e-12) is no better than the saddlepoint
TAIL_FLOOR = 1e-9


def _subset(rows: torch.Tensor, size: int, seed: int) -> torch.Tensor:
    if len(rows) <= size:
        return rows
    generator = torch.Generator().manual_seed(seed)
    return rows[torch.randperm(len(rows), generator=generator)[:size].to(rows.device)]


class FourierMMD(Params):
    """RBF MMD on ``n_frequencies`` random Fourier features per bandwidth (``factors`` times
    the median distance between reference rows, or the given ``bandwidths``), asymptotic
    p-value per bandwidth, Bonferroni-combined. Rows with a NaN are dropped; each side needs
    at least 2 complete rows. The frequencies are drawn from ``seed``: every window is
    measured with the same features."""

    method = "fourier_mmd"

    def min_reference_rows(self) -> int:
        return 2

    def __init__(
        self,
        *,
        factors: Sequence[float] = (0.25, 0.5, 1.0),
        bandwidths: Sequence[float] | None = None,
        n_frequencies: int = 64,
        alpha: float = 0.05,
        device: str = "auto",
        seed: int = 0,
    ) -> None:
        for name, values in (("factors", factors), ("bandwidths", bandwidths or [1.0])):
            if not values or any(not (math.isfinite(v) and v > 0) for v in values):
                raise ValueError(f"{name} must be positive numbers, got {values!r}")
        check_positive_int(n_frequencies, "n_frequencies")
        check_alpha(alpha)
        self.factors = tuple(float(f) for f in factors)
        self.bandwidths = None if bandwidths is None else tuple(float(b) for b in bandwidths)
        self.n_frequencies = n_frequencies
        self.alpha = alpha
        self.device = device
        self.seed = seed
        self._device = resolve_device(device)
        self.features_: tuple[str, ...] = ()
        self.bandwidths_: tuple[float, ...] = ()
        self._center: torch.Tensor | None = None
        # every bandwidth's frequencies side by side: one product projects a sample on all
        self._frequencies: torch.Tensor | None = None
        self._rows = 0
        self._means: list[torch.Tensor] = []  # the reference's mean features, per bandwidth
        self._spectra: list[np.ndarray] = []

    def _projections(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cosines and sines of the rows' projections on every frequency, (rows, k J) each."""
        assert self._center is not None and self._frequencies is not None
        # single precision: features are in [-1, 1] and the test needs a few digits of their
        # means and covariance, not sixteen; it halves the cost of the products
        projected = (rows - self._center).to(torch.float32) @ self._frequencies
        return projected.cos(), projected.sin()

    def _blocks(self) -> list[slice]:
        j = self.n_frequencies
        return [slice(k * j, (k + 1) * j) for k in range(len(self.bandwidths_))]

    def _features(self, rows: torch.Tensor) -> list[torch.Tensor]:
        """Each bandwidth's (rows, 2 J) random Fourier features."""
        cos, sin = self._projections(rows)
        scale = 1.0 / math.sqrt(self.n_frequencies)
        return [torch.cat([cos[:, b], sin[:, b]], dim=1).mul_(scale) for b in self._blocks()]

    def _mean_features(self, rows: torch.Tensor) -> list[torch.Tensor]:
        """Each bandwidth's mean feature vector (float64), without the (rows, 2 J) matrix."""
        cos, sin = (t.mean(dim=0).double() for t in self._projections(rows))
        scale = 1.0 / math.sqrt(self.n_frequencies)
        return [torch.cat([cos[b], sin[b]]) * scale for b in self._blocks()]

    def _complete(self, data: np.ndarray, name: str) -> torch.Tensor:
        return complete_tensor(data, name, 2, self._device)

    def fit(self, reference: np.ndarray, features: Sequence[str] | None = None) -> Self:
        data = check_matrix(reference, name="reference")
        self.features_ = feature_names(features, data.shape[1])
        x = self._complete(data, "reference")
        self._center = x.mean(dim=0)
        if self.bandwidths is not None:
            self.bandwidths_ = self.bandwidths
        else:
            # the median of 45,000 pairs is as good a scale for a bandwidth as that of 2 million
            # (kernels' MEDIAN_MAX_ROWS), at a fortieth of the cost
            median = median_distance(_subset(x, MEDIAN_ROWS, self.seed) - self._center, self.seed)
            self.bandwidths_ = tuple(f * median for f in self.factors)
        # the same frequencies for every window: statistics compare across windows, and a
        # window scored twice gets the same p-value
        generator = torch.Generator().manual_seed(self.seed)
        dim = data.shape[1]
        self._frequencies = (
            torch.cat(
                [
                    torch.randn(dim, self.n_frequencies, generator=generator, dtype=torch.float64)
                    / s
                    for s in self.bandwidths_
                ],
                dim=1,
            )
            .to(torch.float32)
            .to(self._device)
        )
        # the null covariance of the features, from the reference alone: under the null the
        # window has the same, and the window's own scatter and eigenvalues would double the
        # work of every score
        self._rows, self._means, self._spectra = len(x), [], []
        for f in self._features(x):
            mean = f.mean(dim=0)
            centered = f - mean
            covariance = (centered.T @ centered).double() / max(len(f) - 1, 1)
            self._means.append(mean.double())
            self._spectra.append(torch.linalg.eigvalsh(covariance).clamp_(min=0.0).cpu().numpy())
        return self

    def score(self, current: np.ndarray) -> DriftResult:
        if self._frequencies is None:
            raise RuntimeError("call fit(reference) before score(current)")
        data = check_matrix(current, name="current", n_features=len(self.features_))
        rows = self._complete(data, "current")
        n, m = self._rows, len(rows)
        statistics, p_values = [], []
        for k, mean in enumerate(self._mean_features(rows)):
            difference = self._means[k] - mean
            statistic = float(difference @ difference)
            statistics.append(statistic)
            p_values.append(weighted_chi2_sf(statistic, self._spectra[k] * (1.0 / n + 1.0 / m)))
        p = np.asarray(p_values)
        # the saddlepoint is a few percent low in the tail; the p-values that can decide the
        # window (the smallest and any near it, Bonferroni-combined below REFINE_BELOW) get
        # Imhof's integral, exact to about 1e-12; far in the tail it cannot resolve, they stay
        for k in np.flatnonzero(p <= 2.0 * p.min()):
            if p[k] > TAIL_FLOOR and len(p) * p[k] < REFINE_BELOW:
                p[k] = imhof_sf(statistics[k], self._spectra[k] * (1.0 / n + 1.0 / m))
        best = int(np.argmin(p))
        return multivariate_result(
            method=self.method,
            statistic=statistics[best],
            p_value=float(min(1.0, len(p) * p.min())),
            alpha=self.alpha,
            n_reference=n,
            n_current=m,
            extra={"bandwidth": np.asarray(self.bandwidths_), "p_values": p},
        )
