"""Shared fixtures of the realized performance metric tests (``test_performance_metrics_*``).

Tolerances: classification and regression metrics to 1e-12 (absolute for values in [0, 1],
relative otherwise): both sides are the same few sums of float64 values, only in another
summation order. Confusion matrices, counts and hand-worked detection fixtures are compared
exactly or to 1e-12 (the fixtures use boxes whose IoU and AP are exact small fractions).
"""

from __future__ import annotations

import numpy as np

from detectors.performance.detection import Box

RNG = np.random.default_rng(20260301)
TOL = 1e-12

REGRESSION = {
    "normal": (RNG.normal(5, 2, 300), None),
    "zeros in y_true (MAPE epsilon)": (np.array([0.0, 1.0, -2.0, 0.0, 3.5, 4.0]), None),
    "large scale": (RNG.exponential(1e6, 200), None),
    "two rows": (np.array([1.0, 3.0]), np.array([2.0, 2.5])),
    "constant target, imperfect": (np.full(5, 3.0), np.array([3.0, 3.0, 2.0, 3.0, 4.0])),
    "constant target, perfect": (np.full(4, -1.5), np.full(4, -1.5)),
}


def _missed_box_case() -> tuple[list[list[Box]], list[list[Box]]]:
    gt = [
        [
            Box("cat", 0, 0, 4, 4),
            Box("cat", 10, 10, 14, 14),
            Box("cat", 20, 0, 24, 4),
            Box("cat", 40, 40, 44, 44),  # never predicted: a miss
        ]
    ]
    pred = [
        [
            Box("cat", 0, 0, 4, 2, 0.95),  # IoU 8 / 16 = 0.5 exactly: matches (>=)
            Box("cat", 10, 10, 14, 13, 0.9),  # IoU 12 / 16 = 0.75: TP
            Box("cat", 30, 30, 34, 34, 0.8),  # no overlap: FP
            Box("cat", 20, 0, 24, 3, 0.3),  # IoU 0.75 with the third: TP, but late
        ]
    ]
    return gt, pred
