"""A window's verdict from its detectors' results, as the service forms it.

Every feature of a monitor, whatever its kind and detector, is one test of one correction
family: the p-values of all results are adjusted together (Benjamini-Hochberg by default), and
a feature drifts when its adjusted p-value is below alpha. A distance without a p-value (PSI,
Jensen-Shannon, ... with their default thresholds) keeps its own verdict (statistic above its
threshold) and does not count as a test in the family. The window is flagged when any feature
drifts.

>>> import numpy as np
>>> from detectors import KSTest
>>> rng = np.random.default_rng(0)
>>> ref = rng.normal(size=(500, 3))
>>> res = KSTest(device="cpu", correction="none").fit(ref).score(rng.normal(size=(300, 3)) + 1)
>>> window_verdict([res], alpha=0.05, correction="bh").flagged
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from detectors.correction import adjust
from detectors.result import DriftResult


@dataclass(frozen=True)
class WindowVerdict:
    """Per feature, in the order of the results and their features: the raw and adjusted
    p-value (NaN for a distance without one, or a feature that could not be tested) and the
    verdict."""

    p_value: np.ndarray
    p_adjusted: np.ndarray
    drift: np.ndarray
    n_joint: int = 0  # the last n_joint entries are the joint stage's tests

    @property
    def flagged(self) -> bool:
        """The dataset-level verdict: any feature drifts."""
        return bool(self.drift.any())

    @property
    def stages(self) -> tuple[str, ...]:
        """Which stages flagged the window: ``("marginal",)``, ``("joint",)``, both or none."""
        split = len(self.drift) - self.n_joint
        fired = (("marginal", self.drift[:split]), ("joint", self.drift[split:]))
        return tuple(name for name, drift in fired if drift.any())


def window_verdict(
    results: Sequence[DriftResult],
    *,
    alpha: float,
    correction: str,
    joint: Sequence[DriftResult] = (),
    share: float = 0.1,
) -> WindowVerdict:
    """Correct the p-values of all ``results`` (and the ``joint`` stage's, weighted by
    ``share``) together and decide each feature.

    >>> import numpy as np
    >>> from detectors.result import DriftResult
    >>> def one(p):
    ...     return DriftResult("x", ("a",) * len(p), np.zeros(len(p)), np.array(p), np.array(p),
    ...                        np.zeros(len(p), bool), 0.05, "none", np.ones(len(p), int),
    ...                        np.ones(len(p), int))
    >>> marginal, block = one([0.2] * 9), one([0.009])
    >>> window_verdict([marginal, block], alpha=0.05, correction="bh").flagged  # 0.009 * 10
    False
    >>> v = window_verdict([marginal], alpha=0.05, correction="bh", joint=[block], share=0.2)
    >>> v.flagged, v.stages, round(float(v.p_adjusted[-1]), 3)  # 0.009 / (0.2 * 10) * 10
    (True, ('joint',), 0.045)
    """
    everything = [*results, *joint]
    if not everything:
        empty = np.zeros(0)
        return WindowVerdict(empty, empty.copy(), np.zeros(0, dtype=bool))
    p_value = np.concatenate([r.p_value for r in everything]).astype(np.float64)
    n_joint = sum(len(r.p_value) for r in joint)
    weighted = p_value
    if n_joint and correction != "none":
        from detectors.joint import stage_weights

        tested = ~np.isnan(p_value)
        is_joint = np.arange(len(p_value)) >= len(p_value) - n_joint
        weights = np.ones_like(p_value)
        # the joint entries come last, as stage_weights() orders its weights
        weights[tested] = stage_weights(
            int((tested & ~is_joint).sum()), int((tested & is_joint).sum()), share
        )
        weighted = np.minimum(p_value / weights, 1.0)
    p_adjusted = adjust(weighted, correction)
    # distances without a p-value keep their own verdict (statistic above its threshold)
    own = np.concatenate([r.drift for r in everything]).astype(bool)
    drift = np.where(np.isnan(p_value), own, np.nan_to_num(p_adjusted, nan=1.0) < alpha)
    return WindowVerdict(p_value, p_adjusted, drift, n_joint)


def family_size(n_features: int, correction: str) -> int:
    """How many tests one correction family holds: every feature under ``bonferroni`` or
    ``bh``, each on its own under ``none``. Detectors that draw permutations size them so the
    smallest p-value they can give passes the correction over this many tests.

    >>> family_size(21, "bh"), family_size(21, "none")
    (21, 1)
    """
    return max(1, n_features) if correction != "none" else 1
