"""Run a multivariate test on each vector feature (embedding) of a model separately.

A model may declare several embeddings; each gets its own instance of the test, fitted once,
and the verdicts are gathered into one per-feature result like the univariate tests give.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Self

import numpy as np

from detectors.base import BatchDetector, feature_names
from detectors.correction import adjust
from detectors.result import DriftResult


class PerVector:
    """Fit and score ``make()`` on each (rows, dim) array of a list, one per vector feature.

    >>> import numpy as np
    >>> from detectors.multivariate.projected_ks import ProjectedKSTest
    >>> rng = np.random.default_rng(0)
    >>> ref = [rng.normal(size=(300, 4)), rng.normal(size=(300, 2))]
    >>> test = PerVector(lambda: ProjectedKSTest(device="cpu")).fit(ref, ["a", "b"])
    >>> test.score([rng.normal(size=(200, 4)), rng.normal(size=(200, 2)) + 2]).drift.tolist()
    [False, True]
    """

    def __init__(
        self, make: Callable[[], Any], *, alpha: float = 0.05, correction: str = "none"
    ) -> None:
        self.make = make
        self.alpha = alpha
        self.correction = correction
        self._fitted: list[BatchDetector] = []
        self.features_: tuple[str, ...] = ()
        self.method = str(make().method)

    def min_reference_rows(self) -> int:
        return int(self.make().min_reference_rows())

    def fit(self, reference: Sequence[np.ndarray], features: Sequence[str] | None = None) -> Self:
        self.features_ = feature_names(features, len(reference))
        self._fitted = [self.make().fit(np.asarray(x, dtype=np.float64)) for x in reference]
        return self

    def score(self, current: Sequence[np.ndarray]) -> DriftResult:
        if len(current) != len(self._fitted):
            raise ValueError(f"expected {len(self._fitted)} vector features, got {len(current)}")
        results = [
            d.score(np.asarray(x, dtype=np.float64))
            for d, x in zip(self._fitted, current, strict=True)
        ]
        flat = lambda name: np.array([float(getattr(r, name)[0]) for r in results])  # noqa: E731
        p_value = flat("p_value")
        has_p = ~np.isnan(p_value)
        p_adjusted = adjust(p_value, self.correction)
        own = np.array([bool(r.drift[0]) for r in results], dtype=bool)
        return DriftResult(
            method=self.method,
            features=self.features_,
            statistic=flat("statistic"),
            p_value=p_value,
            p_adjusted=p_adjusted,
            drift=np.where(has_p, np.nan_to_num(p_adjusted, nan=1.0) < self.alpha, own),
            threshold=results[0].threshold if results else self.alpha,
            correction=self.correction,
            n_reference=flat("n_reference").astype(np.int64),
            n_current=flat("n_current").astype(np.int64),
        )
