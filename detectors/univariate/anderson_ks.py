"""Anderson-Darling and Kolmogorov-Smirnov on each feature, one p-value.

Anderson-Darling weighs the tails (a share of values moved to an extreme, a change of scale);
KS's largest gap between the two distribution functions is where a small shift of the bulk
shows first. On ``benchmarks/quality.py`` (200 windows a cell) each loses to the other
somewhere: AD flags 0.74 of the windows with 10% of image patches occluded where KS flags
0.14, KS 0.69 of a mild brightness/contrast change where AD flags 0.65. Both statistics come
from the same sorted columns, and their p-values are combined by the Cauchy combination test
(Liu and Xie, 2020, JASA 115:393): the mean of ``tan((0.5 - p) pi)`` over the tests is
standard Cauchy in the tail whatever the dependence between them, so the combined p-value
keeps its level without the price of a Bonferroni split.

Measured there, it matches KS on the brightness change (0.69) and keeps most of AD's tails
(0.67 on the 10% occlusion, 0.53 on a scale change x1.5 where AD flags 0.67 and KS 0.17). It is
not the numeric default: inside the default monitor it gained 0.04 on that brightness change
and lost 0.08 on the occlusion and 0.11 on the scale change, and below 1,000 rows a side its
KS p-value is KS's exact lattice walk (the default monitor then cost 3x the Anderson-Darling
one on 900 against 200 rows). ``{"numeric": "anderson_ks"}`` asks for it.
"""

from __future__ import annotations

import numpy as np

from detectors.univariate.anderson import AndersonDarlingTest
from detectors.univariate.columns import SortedColumns
from detectors.univariate.ks import ks_p_values_by_size
from detectors.univariate.sorted_test import Outcome


def cauchy_combination(*p_values: np.ndarray) -> np.ndarray:
    """The Cauchy combination (equal weights) of p-values of the same features: the standard
    Cauchy tail at the mean of ``tan((0.5 - p) pi)``. ``cot(p pi)`` and ``arctan(1 / t)`` keep
    small p-values accurate (``tan`` near ``pi / 2`` would lose them).

    >>> same = np.array([0.01, 0.5])
    >>> cauchy_combination(same, same).round(4).tolist()
    [0.01, 0.5]
    """
    # p is kept off 0: a p-value of 0 beside one of 1 would average inf and -inf
    with np.errstate(divide="ignore"):
        t = np.mean([1.0 / np.tan(np.clip(p, 1e-300, 1.0) * np.pi) for p in p_values], axis=0)
    positive = t > 0
    out = 0.5 - np.arctan(t) / np.pi
    out[positive] = np.arctan(1.0 / t[positive]) / np.pi
    return np.clip(out, 0.0, 1.0)


class AndersonKSTest(AndersonDarlingTest):
    """Anderson-Darling and KS per feature, Cauchy-combined (:func:`cauchy_combination`).

    AD's p-value is its limit's (:class:`AndersonDarlingTest`); KS's is asymptotic from 1,000
    values a side and exact below (up to 10,000 on the larger side, as ``ks_2samp``)
    (:func:`detectors.univariate.ks.ks_p_values_by_size`). A tie-heavy feature is decided by
    ``ties`` alone, as in :class:`AndersonDarlingTest` (by KS, exact with ties, by default).
    The statistic is AD's; ``extra`` holds ``p_anderson``, ``p_ks`` and ``ks_statistic``.

    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> test = AndersonKSTest(device="cpu").fit(rng.normal(size=(500, 2)))
    >>> test.score(rng.normal(size=(400, 2)) * [1, 1.5]).drift.tolist()
    [False, True]
    """

    method = "anderson_ks"
    ks_everywhere = True

    def _test(
        self,
        raw: np.ndarray,
        n_ref: np.ndarray,
        n_cur: np.ndarray,
        cur: SortedColumns,
        current: np.ndarray,
    ) -> Outcome:
        ks_d = raw.reshape(-1, 3)[:, 2].copy()
        outcome = super()._test(raw, n_ref, n_cur, cur, current)
        p_anderson = outcome.p_value.copy()
        p_ks = np.full(len(ks_d), np.nan)
        # a tie-heavy feature keeps the one test its ties mode chose
        both = outcome.testable & (outcome.extra["ks_on_ties"] == 0)
        both &= outcome.extra["n_permutations"] == 0
        if both.any():
            p_ks[both] = ks_p_values_by_size(ks_d[both], n_ref[both], n_cur[both], self._device)
            outcome.p_value[both] = cauchy_combination(p_anderson[both], p_ks[both])
        outcome.extra.update(p_anderson=p_anderson, p_ks=p_ks, ks_statistic=ks_d)
        return outcome
