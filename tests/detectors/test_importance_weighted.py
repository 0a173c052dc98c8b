"""Importance-weighted CBPE against CBPE where the calibration map moves with the inputs.

The model scores ``x1`` only; the truth is ``sigmoid(k(x2) * x1)`` with ``k`` falling from 3.3
to 0.3 as ``x2`` passes 1.5. The reference has ``x2 ~ N(0, 1)``; a shifted window has
``x2 ~ N(1.5, 1)``, where the labels depend much less on the score than the reference says:
CBPE, which keeps the reference's ``P(y | score)``, overrates the model by about 0.09.

Tolerances, reference 10,000 rows, windows 3,000, five seeds: on shifted windows the
importance-weighted MAE of accuracy stays below 0.03 (its error has a standard deviation of
about 0.013 per window: 3,000 rows' labels and a calibration resting on about 2,000 effective
reference rows; the mean of five is below 0.03 with a margin of more than four of its standard
deviations) and below a third of CBPE's, which is above 0.05; on unshifted windows the two
estimates agree within 0.01 (the weights are then close to 1) and both are within 0.02 of the
realized accuracy (three standard deviations of a 3,000-row window's accuracy and a 10,000-row
calibration). Seeded: deterministic.
"""

from __future__ import annotations

import numpy as np
import pytest

from detectors.performance.cbpe import CBPE
from detectors.performance.importance import ImportanceWeightedCBPE

SEEDS = range(5)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _draw(rng: np.random.Generator, n: int, shift: float) -> tuple[np.ndarray, ...]:
    x = np.column_stack([rng.normal(size=n), rng.normal(shift, 1.0, size=n)])
    slope = 3.0 / (1.0 + np.exp(2.0 * (x[:, 1] - 1.5))) + 0.3
    labels = (rng.uniform(size=n) < _sigmoid(slope * x[:, 0])).astype(int)
    return x, _sigmoid(2.0 * x[:, 0]), labels


def _errors(shift: float) -> tuple[np.ndarray, np.ndarray, list[float]]:
    cbpe, weighted, effective = [], [], []
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        ref_x, ref_p, ref_y = _draw(rng, 10_000, 0.0)
        x, p, y = _draw(rng, 3_000, shift)
        realized = float(np.mean((p >= 0.5) == y))
        plain = CBPE(metrics=("accuracy",)).fit(ref_p, ref_y).estimate(p)
        iw = ImportanceWeightedCBPE(metrics=("accuracy",)).fit(ref_p, ref_y, ref_x)
        estimate = iw.estimate(p, x)
        cbpe.append(plain["accuracy"].value - realized)
        weighted.append(estimate["accuracy"].value - realized)
        assert estimate.effective_rows is not None
        effective.append(estimate.effective_rows)
    return np.array(cbpe), np.array(weighted), effective


def test_weighted_calibration_follows_the_shift_cbpe_misses() -> None:
    cbpe, weighted, effective = _errors(1.5)
    assert np.mean(np.abs(cbpe)) > 0.05
    assert np.mean(np.abs(weighted)) < 0.03
    assert np.mean(np.abs(weighted)) < np.mean(np.abs(cbpe)) / 3
    # the window sits where the reference is thin: far fewer effective rows than 10,000
    assert max(effective) < 5_000


def test_without_shift_both_estimates_agree() -> None:
    cbpe, weighted, effective = _errors(0.0)
    assert np.max(np.abs(cbpe - weighted)) < 0.01
    assert np.mean(np.abs(cbpe)) < 0.02 and np.mean(np.abs(weighted)) < 0.02
    assert min(effective) > 9_000


def test_bad_input_is_refused_clearly() -> None:
    rng = np.random.default_rng(0)
    x, p, y = _draw(rng, 500, 0.0)
    fitted = ImportanceWeightedCBPE().fit(p, y, x)
    with pytest.raises(ValueError, match="to both fit and estimate"):
        fitted.estimate(p)
    with pytest.raises(ValueError, match="must have 2 columns"):
        fitted.estimate(p, x[:, :1])
    with pytest.raises(ValueError, match="one row per probability row"):
        ImportanceWeightedCBPE().fit(p, y, x[:10])
    with pytest.raises(ValueError, match="max_weight"):
        ImportanceWeightedCBPE(max_weight=0.5)
    with pytest.raises(RuntimeError, match="fit"):
        ImportanceWeightedCBPE().estimate(p, x)
