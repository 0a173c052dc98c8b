"""Drift in how far rows lie from the reference's centre, measured by the reference's own
covariance: a two-sample test on squared Mahalanobis distances.

A kernel MMD at the median bandwidth, or per-feature tests, miss changes that move many
correlated features a little each in a coordinated way: a blur (neighbouring pixels grow alike,
the high-frequency components shrink), a small rotation, a feature that decouples from the ones
it tracked, a contrast change over the whole row. Each of these changes the rows' spread along
the reference's low-variance directions, which whitening by the reference covariance makes as
loud as the high-variance ones. Each row's squared distance

    D^2(x) = (x - mean)' C^-1 (x - mean)

is one number per row; the test compares the window's distances with the reference's by
Anderson-Darling (:class:`~detectors.univariate.anderson.AndersonDarlingTest`, its limiting
p-value, tie-heavy distances decided by KS). This is the multivariate process-control idea of
Hotelling's T^2 chart (Hotelling, 1947; Montgomery, "Introduction to statistical quality
control", ch. 11), as a two-sample test of the whole distance distribution rather than a
threshold per row.

Two details keep its false-alarm rate at its level:

- **The reference's distances are leave-one-out.** A reference row helped fit the mean and
  covariance, so its in-sample distance is shorter than a new row's (64 features, 900 rows:
  about 8% on average), which alone would flag exchangeable windows. Each reference row is
  measured by the mean and covariance of the other rows, exactly and at no extra cost: removing
  one row is a rank-one downdate of the scatter matrix, and the Sherman-Morrison formula gives
  ``D^2_(i) = (n / (n - 1))^2 q_i / (1 - k q_i)`` from ``q_i``, the row's distance under a
  rescaled covariance (``fit`` has the algebra; a test checks it against refits).
- **The covariance is shrunk towards a multiple of the identity** by the Ledoit-Wolf intensity
  (Ledoit & Wolf, 2004, "A well-conditioned estimator for large-dimensional covariance
  matrices", J. Multivariate Anal. 88(2)), computed from the reference: near-singular
  directions (features that are sums of others, more features than rows) would otherwise
  dominate every distance. ``shrinkage`` fixes the intensity instead.

It is blind to changes that keep every row's distance: a rotation of the whitened data, a
mirror image, a move along a circle of equal distance; the joint stage pairs it with a kernel
test for those (:mod:`detectors.joint`). The cost is one ``(dim x dim)`` eigendecomposition in
``fit`` and one ``(rows x dim) @ (dim x dim)`` product per window.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> cov = [[1.0, 0.9], [0.9, 1.0]]
>>> test = MahalanobisTest(device="cpu").fit(rng.multivariate_normal([0, 0], cov, 1000))
>>> flipped = rng.multivariate_normal([0, 0], [[1.0, -0.9], [-0.9, 1.0]], 300)  # same marginals
>>> bool(test.score(flipped).drift[0])
True
>>> bool(test.score(rng.multivariate_normal([0, 0], cov, 300)).drift[0])
False
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np
import torch

from detectors.base import check_matrix, feature_names, multivariate_result
from detectors.device import resolve_device
from detectors.multivariate.kernels import check_alpha, complete_tensor
from detectors.params import Params
from detectors.permutations import check_family_size
from detectors.result import DriftResult
from detectors.univariate.anderson import AndersonDarlingTest, TiesMode


def ledoit_wolf_shrinkage(centred: torch.Tensor) -> float:
    """The Ledoit-Wolf intensity for rows already centred: the weight of ``mu I`` (``mu`` the
    mean variance) in the shrunk covariance, in [0, 1]; as ``sklearn.covariance.
    ledoit_wolf_shrinkage`` (a test compares them)."""
    n, d = centred.shape
    squares = centred * centred
    empirical = centred.T @ centred / n
    mu = float(torch.trace(empirical)) / d
    # beta: the estimated variance of the empirical covariance's entries; delta: the distance
    # of the empirical covariance from mu I
    beta = float((squares.T @ squares).sum() / n - (empirical * empirical).sum()) / (d * n)
    target = empirical.clone()
    target.diagonal().sub_(mu)
    delta = float((target * target).sum()) / d
    if delta <= 0.0:  # the covariance is already mu I (or zero)
        return 1.0
    return float(min(max(beta, 0.0), delta) / delta)


class MahalanobisTest(Params):
    """Anderson-Darling two-sample test on the rows' squared Mahalanobis distances from the
    reference's mean, under its Ledoit-Wolf-shrunk covariance (``shrinkage``: None for
    Ledoit-Wolf, or a fixed intensity in (0, 1]); the reference's distances leave each row out.
    Rows with a NaN are dropped; the reference needs at least 3 complete rows, a window 2.
    ``ties`` and ``family_size`` go to the Anderson-Darling test (``"ks"``: a distance sample
    with heavy ties, few distinct rows, is decided by KS)."""

    method = "mahalanobis"

    def min_reference_rows(self) -> int:
        return 3  # a reference row left out needs two others for a covariance

    def __init__(
        self,
        *,
        shrinkage: float | None = None,
        device: str = "auto",
        alpha: float = 0.05,
        family_size: int | None = None,
        ties: TiesMode = "ks",
    ) -> None:
        if shrinkage is not None and not 0.0 < shrinkage <= 1.0:
            raise ValueError(f"shrinkage must be in (0, 1] or None, got {shrinkage!r}")
        check_alpha(alpha)
        check_family_size(family_size)
        self.shrinkage = shrinkage
        self.device = device
        self.alpha = alpha
        self.family_size = family_size
        self.ties = ties
        self._device = resolve_device(device)
        self.features_: tuple[str, ...] = ()
        self.shrinkage_ = float("nan")
        # each reference row's squared distance from the other rows' mean and covariance
        self.reference_distances_ = np.empty(0)
        self._mean: torch.Tensor | None = None
        self._whiten: torch.Tensor | None = None  # (dim, dim): distances are |(x - mean) W|^2
        self._reference_mean_distance = float("nan")
        self._test: AndersonDarlingTest | None = None

    def fit(self, reference: np.ndarray, features: Sequence[str] | None = None) -> Self:
        data = check_matrix(reference, name="reference")
        self.features_ = feature_names(features, data.shape[1])
        x = complete_tensor(data, "reference", self.min_reference_rows(), self._device)
        n, d = x.shape
        self._mean = x.mean(dim=0)
        v = x - self._mean
        scatter = v.T @ v
        mu = float(torch.trace(scatter)) / ((n - 1) * d)
        if mu <= 0.0:  # every reference row the same: distances in the data's own units
            mu = 1.0
        s = self.shrinkage if self.shrinkage is not None else ledoit_wolf_shrinkage(v)
        self.shrinkage_ = s
        eigenvalues, vectors = torch.linalg.eigh(scatter)
        eigenvalues = eigenvalues.clamp(min=0.0)
        # A window row's distance: covariance C = (1 - s) scatter / (n - 1) + s mu I
        self._whiten = vectors / ((1.0 - s) * eigenvalues / (n - 1) + s * mu).sqrt()
        # Reference row i left out: its offset from the other rows' mean is n/(n-1) v_i, and
        # their scatter is scatter - n/(n-1) v_i v_i'. With c = (1 - s)/(n - 2) the covariance
        # of the other n - 1 rows is B - k v_i v_i', B = c scatter + s mu I, k = c n/(n-1), and
        # Sherman-Morrison turns its quadratic form into q_i / (1 - k q_i), q_i = v_i' B^-1 v_i.
        c = (1.0 - s) / (n - 2)
        q = ((v @ vectors).square() / (c * eigenvalues + s * mu)).sum(dim=1)
        k = c * n / (n - 1)
        # k q_i < 1 whenever s > 0 (B exceeds k v_i v_i' by s mu I); the floor guards rounding
        left_out = (n / (n - 1)) ** 2 * q / (1.0 - k * q).clamp(min=1e-12)
        distances = self.reference_distances_ = left_out.cpu().numpy()
        self._reference_mean_distance = float(distances.mean())
        self._test = AndersonDarlingTest(
            device=str(self._device),
            alpha=self.alpha,
            correction="none",
            family_size=self.family_size,
            ties=self.ties,
        ).fit(distances[:, None], ["distance"])
        return self

    def distances(self, rows: np.ndarray) -> np.ndarray:
        """The squared Mahalanobis distance of each complete row (rows with a NaN dropped)."""
        if self._mean is None or self._whiten is None:
            raise RuntimeError("call fit(reference) before score(current)")
        data = check_matrix(rows, name="current", n_features=len(self.features_))
        x = complete_tensor(data, "current", 2, self._device)
        return ((x - self._mean) @ self._whiten).square().sum(dim=1).cpu().numpy()

    def score(self, current: np.ndarray) -> DriftResult:
        distances = self.distances(current)
        assert self._test is not None
        result = self._test.score(distances[:, None])
        return multivariate_result(
            method=self.method,
            statistic=float(result.statistic[0]),
            p_value=float(result.p_value[0]),
            alpha=self.alpha,
            n_reference=int(result.n_reference[0]),
            n_current=len(distances),
            extra={
                # the window's mean squared distance over the reference's (left-out) one:
                # above 1 the window spreads wider than the reference, below 1 narrower
                "distance_ratio": np.asarray(
                    distances.mean() / self._reference_mean_distance
                    if self._reference_mean_distance > 0.0
                    else float("nan")  # a constant reference: no spread to compare with
                ),
                "shrinkage": np.asarray(self.shrinkage_),
            },
        )
