"""Regression metrics (MAE, RMSE, MAPE, R2) against scikit-learn, bad input and invariants.
Tolerances: see ``performance_helpers``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from detectors.performance.regression import regression_metrics
from tests.detectors.performance_helpers import REGRESSION, TOL


@pytest.mark.parametrize("name", list(REGRESSION))
def test_regression_matches_sklearn(name: str) -> None:
    y, pred = REGRESSION[name]
    if pred is None:
        pred = y + np.random.default_rng(len(name)).normal(0, np.abs(y).mean() / 5, len(y))
    m = regression_metrics(y, pred, device="cpu")
    assert m.n == len(y)
    assert m.mae == pytest.approx(skm.mean_absolute_error(y, pred), rel=TOL)
    assert m.rmse == pytest.approx(skm.root_mean_squared_error(y, pred), rel=TOL)
    assert m.mape == pytest.approx(skm.mean_absolute_percentage_error(y, pred), rel=TOL)
    assert m.r2 == pytest.approx(skm.r2_score(y, pred), rel=TOL, abs=TOL)


def test_regression_single_row_and_bad_input() -> None:
    assert np.isnan(regression_metrics([1.0], [2.0], device="cpu").r2)
    with pytest.raises(ValueError, match="must match"):
        regression_metrics([1.0, 2.0], [1.0], device="cpu")
    with pytest.raises(ValueError, match="finite"):
        regression_metrics([1.0, np.nan], [1.0, 2.0], device="cpu")
    with pytest.raises(ValueError, match="1-D"):
        regression_metrics([[1.0, 2.0]], [[1.0, 2.0]], device="cpu")
    with pytest.raises(ValueError, match="empty"):
        regression_metrics([], [], device="cpu")


# values in cents: squares of tiny floats (1e-293) underflow to 0 in any implementation
finite = st.integers(-(10**8), 10**8).map(lambda v: v / 100)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(finite, finite), min_size=2, max_size=30))
def test_regression_invariants(rows: list[tuple[float, float]]) -> None:
    y, pred = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
    m = regression_metrics(y, pred, device="cpu")
    assert 0.0 <= m.mae <= m.rmse * (1 + 1e-12)
    assert m.r2 <= 1.0
    assert m.mae == pytest.approx(skm.mean_absolute_error(y, pred), rel=1e-12, abs=1e-300)
