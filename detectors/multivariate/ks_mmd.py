"""The default test of a vector feature (an embedding, an image's pixels): KS on every component
and an MMD on the whole vector, one p-value.

``ks_pca`` (KS on the top principal components) is cheap but weak: on images declared as one
vector it lost most corruption cells to KS on every pixel, and a change inside a few components
(an occluded patch) hides from both when no single component moves far. So a vector is tested
twice, and the two p-values are combined by Simes (``min(2 min(p), max(p))``, valid for
independent or positively dependent tests):

- every component by two-sample KS, combined by Simes over the components;
- the whole vector by an RBF-kernel MMD with a permutation p-value, on components standardized
  by the reference, at most ``max_rows`` rows a side (:class:`detectors.joint.BlockTest`).

The statistic is the largest component KS distance; ``extra`` keeps both parts' p-values
(``p_components``, ``p_mmd``) so a report can say which part fired.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> test = ComponentKSMMD(device="cpu").fit(rng.normal(size=(400, 8)))
>>> bool(test.score(rng.normal(size=(300, 8))).drift[0])
False
>>> bool(test.score(rng.normal(size=(300, 8)) + 0.5).drift[0])
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np

from detectors.base import check_matrix, multivariate_result
from detectors.joint import MIN_BLOCK_FEATURES, BlockTest
from detectors.multivariate.mmd import MMD
from detectors.params import Params
from detectors.permutations import Permutations
from detectors.result import DriftResult
from detectors.univariate.ks import KSTest


def simes(p_values: np.ndarray) -> float:
    """Simes' combined p-value of the non-NaN ``p_values`` (NaN when there is none).

    >>> simes(np.array([0.01, 0.04, np.nan])), simes(np.array([0.3, 0.2]))
    (0.02, 0.3)
    """
    p = np.sort(np.asarray(p_values, dtype=np.float64)[~np.isnan(p_values)])
    if p.size == 0:
        return float("nan")
    return float(min(1.0, np.min(p * p.size / np.arange(1, p.size + 1))))


class ComponentKSMMD(Params):
    """One verdict for a (rows, dim) vector: Simes of per-component KS and a standardized MMD."""

    method = "ks_mmd"

    def min_reference_rows(self) -> int:
        return 2

    def __init__(
        self,
        *,
        device: str = "auto",
        alpha: float = 0.05,
        n_permutations: Permutations = "auto",
        family_size: int | None = None,
        seed: int = 0,
        max_rows: int = 1000,
    ) -> None:
        self.device = device
        self.alpha = alpha
        self.n_permutations = n_permutations
        self.family_size = family_size
        self.seed = seed
        self.max_rows = max_rows
        self._ks = KSTest(device=device, alpha=alpha, correction="none")
        # Simes of two p-values halves the MMD's smallest level: its permutations cover that
        self._mmd = BlockTest(
            MMD(
                device=device,
                alpha=alpha,
                n_permutations=n_permutations,
                family_size=2 * (family_size or 1),
                seed=seed,
            ),
            max_rows=max_rows,
            seed=seed,
        )
        self._dim: int | None = None

    def fit(self, reference: np.ndarray, features: Sequence[str] | None = None) -> Self:
        x = check_matrix(reference, name="reference")
        self._dim = x.shape[1]
        self._ks.fit(x)
        if self._dim >= MIN_BLOCK_FEATURES:
            self._mmd.fit(x)
        return self

    def score(self, current: np.ndarray) -> DriftResult:
        if self._dim is None:
            raise RuntimeError("call fit(reference) before score(current)")
        x = check_matrix(current, name="current", n_features=self._dim)
        ks = self._ks.score(x)
        p_components = simes(ks.p_value)
        p_mmd = float("nan")
        if self._dim >= MIN_BLOCK_FEATURES:
            p_mmd = float(self._mmd.score(x).p_value[0])
        p = simes(np.array([p_components, p_mmd]))
        tested = not np.isnan(p)
        return multivariate_result(
            method=self.method,
            statistic=float(np.nanmax(ks.statistic)) if tested else float("nan"),
            p_value=p if tested else None,
            threshold=None if tested else float("inf"),
            alpha=self.alpha,
            n_reference=int(ks.n_reference.min()),
            n_current=int(ks.n_current.max()),
            extra={"p_components": np.asarray(p_components), "p_mmd": np.asarray(p_mmd)},
        )
