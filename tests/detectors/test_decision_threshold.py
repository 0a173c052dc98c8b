"""A binary model's own cut: read from its predictions, and used by CBPE.

Tolerance of the CBPE check: a 5,000-row window's realized accuracy has a standard deviation of
at most sqrt(0.25 / 5,000) = 0.007 around its expectation, and the isotonic calibration learnt on
10,000 reference rows adds about as much; 0.03 is more than three combined standard deviations.
The data are seeded, so the assertions are deterministic; the gap between the two classifiers
(cut 0.3 and cut 0.5) is checked to be two tolerances wide or more, so the test can fail.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from detectors.performance.cbpe import CBPE
from detectors.performance.decision import decision_threshold

CUT = 0.3
TOL = 0.03


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _model(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores of a binary model that overrates the positive class, and labels of the true
    logistic model: rows scored between 0.3 and 0.5 are mostly negative."""
    z = rng.normal(size=n) * 1.5 - 1.5
    labels = (rng.uniform(size=n) < _sigmoid(z)).astype(int)
    return _sigmoid(z + 1.5), labels


def test_the_cut_is_read_back_from_the_predictions() -> None:
    rng = np.random.default_rng(0)
    scores, _ = _model(rng, 3_000)
    found = decision_threshold(scores, scores >= CUT)
    # any cut strictly between the neighbouring scores reproduces the rows; the midpoint does
    below, above = scores[scores < CUT].max(), scores[scores >= CUT].min()
    assert below < found < above
    assert found == pytest.approx((below + above) / 2, abs=1e-15)
    np.testing.assert_array_equal(scores >= found, scores >= CUT)


def test_one_sided_and_rounded_predictions() -> None:
    scores = np.array([0.2, 0.4, 0.6])
    assert decision_threshold(scores, [True, True, True]) == 0.2
    only_negative = decision_threshold(scores, [False, False, False])
    assert 0.6 < only_negative < 0.6 + 1e-15
    # a stored float32 score a hair above the lowest positive one is rounding, not a contradiction
    assert decision_threshold([0.3 + 1e-8, 0.3, 0.9], [False, True, True]) == 0.3


def test_predictions_no_cut_explains_are_refused() -> None:
    scores = np.array([0.1, 0.7, 0.4, 0.9])
    with pytest.raises(ValueError, match=r"not a threshold.*1 row\(s\) predicted negative"):
        decision_threshold(scores, [False, False, True, True])
    with pytest.raises(ValueError, match="same length"):
        decision_threshold(scores, [True])
    with pytest.raises(ValueError, match="no rows"):
        decision_threshold([], [])
    with pytest.raises(ValueError, match="score of 1"):
        decision_threshold([0.5, 1.0], [False, False])


def test_cbpe_estimates_the_classifier_with_the_models_cut() -> None:
    rng = np.random.default_rng(30)
    ref_scores, ref_labels = _model(rng, 10_000)
    scores, labels = _model(rng, 5_000)  # unshifted: the reference's distribution

    cut = decision_threshold(ref_scores, ref_scores >= CUT)
    realized = {
        c: (
            accuracy_score(labels, scores >= c),
            f1_score(labels, (scores >= c).astype(int)),
        )
        for c in (CUT, 0.5)
    }
    # the two classifiers differ by several tolerances, so using the wrong one shows
    assert abs(realized[CUT][0] - realized[0.5][0]) > 3 * TOL
    assert abs(realized[CUT][1] - realized[0.5][1]) > 2 * TOL

    own = CBPE(metrics=("accuracy", "f1"), threshold=cut, device="cpu").fit(ref_scores, ref_labels)
    other = CBPE(metrics=("accuracy", "f1"), device="cpu").fit(ref_scores, ref_labels)
    own_estimate, other_estimate = own.estimate(scores), other.estimate(scores)
    np.testing.assert_allclose(own_estimate.value, realized[CUT], atol=TOL)
    # the default cut of 0.5 estimates another classifier: right for that one, wrong for this
    np.testing.assert_allclose(other_estimate.value, realized[0.5], atol=TOL)
    assert np.all(np.abs(other_estimate.value - np.array(realized[CUT])) > TOL)
