"""CBPE and DLE estimates against metrics realized on the true labels (scikit-learn).

Tolerances:

- realized metrics of 0/1 label sets (the same code as the expected ones) equal
  ``sklearn.metrics`` to 1e-12, ties in the scores included;
- the band's sampling part (delta method) against the standard deviation of 4,000 label sets
  drawn from the calibrated probabilities: within 10% (the standard error of a standard
  deviation from 4,000 draws is 1.1%, so 10% leaves room for the delta method's O(1/n) error);
- CBPE under covariate shift, 5,000-row windows, 10,000-row reference: estimate within 0.03
  (absolute) of the realized accuracy, F1 and ROC AUC, binary and three classes; the estimates
  rank the windows as the realized values do; the realized value lies inside the 95% band in
  at least 12 of the 15 (window, metric) pairs;
- already calibrated probabilities: estimate on the reference itself within 0.02;
- DLE under a shift into the noisy region, 3,000-row windows, 5,000-row reference: estimated
  MAE and RMSE within 10% (relative) of the realized, rising as the realized does; the
  realized value inside the 95% band in at least 3 of the 4 windows.

The data are seeded, so every assertion is deterministic. The "true model" is a fixed logistic
(or softmax) function of the inputs and the classifier is a monotone distortion of it, so the
shift is in the inputs only, which is the case CBPE is built for.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np
import pytest
import torch
from sklearn.linear_model import LinearRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.tree import DecisionTreeRegressor
from threadpoolctl import threadpool_limits

from detectors.performance.cbpe import CBPE, METRICS
from detectors.performance.dle import DLE
from detectors.performance.expected import (
    Decisions,
    gradients,
    metric_values,
    sampling_variance,
)


@pytest.fixture(autouse=True)
def _one_openmp_thread() -> Iterator[None]:
    # the gradient boosting loss model spins OpenMP threads; on a small machine shared with
    # other processes that makes it ten times slower, so the tests use one thread
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


Labelled = tuple[np.ndarray, np.ndarray]  # (probabilities or features, labels or targets)
Shift = tuple[Labelled, list[Labelled]]  # a reference and windows that move away from it

W_BIN, B_BIN = np.array([2.0, -1.0]), 0.5
W_MC = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])
B_MC = np.array([0.3, 0.0, -0.2])


def _binary(
    rng: np.random.Generator, n: int, toward_boundary: float, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Scores of an overconfident, biased classifier and labels of the true logistic model.

    ``toward_boundary`` moves the inputs' centre onto the decision boundary (1 = on it) and
    ``scale`` shrinks their spread: both make the cases harder.
    """
    centre = -toward_boundary * B_BIN * W_BIN / (W_BIN @ W_BIN)
    z = (rng.normal(size=(n, 2)) * scale + centre) @ W_BIN + B_BIN
    labels = (rng.uniform(size=n) < _sigmoid(z)).astype(int)
    return _sigmoid(1.7 * z + 0.4), labels


def _three_classes(rng: np.random.Generator, n: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities with the wrong temperature and bias; labels of the true softmax."""
    z = rng.normal(size=(n, 2)) * scale @ W_MC.T + B_MC
    cumulative = _softmax(z).cumsum(axis=1)
    labels = (rng.uniform(size=(n, 1)) > cumulative).sum(axis=1).clip(max=2)
    return _softmax(1.6 * z + np.array([0.3, -0.2, 0.0])), labels


def _realized(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    if probabilities.ndim == 1:
        predicted = (probabilities >= 0.5).astype(int)
        return np.array(
            [
                accuracy_score(labels, predicted),
                f1_score(labels, predicted),
                roc_auc_score(labels, probabilities),
            ]
        )
    predicted = probabilities.argmax(axis=1)
    return np.array(
        [
            accuracy_score(labels, predicted),
            f1_score(labels, predicted, average="macro"),
            roc_auc_score(labels, probabilities, multi_class="ovr"),
        ]
    )


@pytest.fixture(scope="module")
def binary_shift() -> Shift:
    rng = np.random.default_rng(7)
    reference = _binary(rng, 10_000, 0.0, 1.0)
    steps = [(0.0, 1.0), (0.3, 0.8), (0.6, 0.6), (0.8, 0.45), (1.0, 0.3)]
    return reference, [_binary(rng, 5_000, toward, scale) for toward, scale in steps]


@pytest.fixture(scope="module")
def multiclass_shift() -> Shift:
    rng = np.random.default_rng(11)
    reference = _three_classes(rng, 10_000, 1.0)
    return reference, [_three_classes(rng, 5_000, s) for s in (1.0, 0.7, 0.5, 0.35, 0.2)]


@pytest.mark.parametrize("n_classes", [2, 3, 4])
def test_realized_metrics_of_label_sets_match_sklearn(n_classes: int) -> None:
    rng = np.random.default_rng(n_classes)
    # 400 rows share 12 distinct score vectors: many ties, which ROC AUC must treat as sklearn
    scores = rng.dirichlet(np.ones(n_classes), size=12)[rng.integers(0, 12, size=400)]
    labels = rng.integers(0, n_classes, size=400)
    decisions = Decisions.of(scores, 0.5, METRICS)
    expected = _realized(scores[:, 1] if n_classes == 2 else scores, labels)
    members = np.eye(n_classes)[labels].T[:, None, :]
    values = metric_values(members, decisions, METRICS)[:, 0]
    np.testing.assert_allclose(values, expected, atol=1e-12)


@pytest.mark.parametrize("n_classes", [2, 4])
@pytest.mark.parametrize("n", [300, 3_000])
def test_sampling_variance_matches_drawn_label_sets(n_classes: int, n: int) -> None:
    rng = np.random.default_rng(40 + n_classes)
    q = rng.dirichlet(np.ones(n_classes) * 0.7, size=n)
    scores = np.clip(q + rng.normal(scale=0.05, size=q.shape), 1e-3, None)
    scores /= scores.sum(axis=1, keepdims=True)
    decisions = Decisions.of(scores, 0.4, METRICS)
    drawn = []
    for _ in range(10):  # 4,000 label sets, 400 at a time
        labels = (rng.uniform(size=(400, n, 1)) > q.cumsum(axis=1)[None]).sum(axis=2)
        members = np.eye(n_classes)[labels.clip(max=n_classes - 1)].transpose(2, 0, 1)
        drawn.append(metric_values(members, decisions, METRICS))
    analytic = np.sqrt(sampling_variance(q.T, gradients(q.T, decisions, METRICS)))
    np.testing.assert_allclose(analytic, np.hstack(drawn).std(axis=1, ddof=1), rtol=0.10)


def _check_tracks(cbpe: CBPE, windows: list[Labelled]) -> None:
    estimates = [cbpe.estimate(p) for p, _ in windows]
    realized = np.array([_realized(p, y) for p, y in windows])
    value = np.array([e.value for e in estimates])
    lower = np.array([e.lower for e in estimates])
    upper = np.array([e.upper for e in estimates])
    np.testing.assert_array_less(np.abs(value - realized), 0.03)
    for m in range(len(METRICS)):
        assert np.argsort(value[:, m]).tolist() == np.argsort(realized[:, m]).tolist()
    inside = (lower <= realized) & (realized <= upper)
    assert inside.sum() >= 12, f"realized inside the band in only {inside.sum()} of 15"
    assert all(e.n == len(p) for e, (p, _) in zip(estimates, windows, strict=True))


def test_binary_estimates_track_the_realized_metrics(binary_shift: Shift) -> None:
    (ref_p, ref_y), windows = binary_shift
    realized_accuracy = [_realized(p, y)[0] for p, y in windows]
    # the shift does what the test needs: accuracy falls by several tolerances
    assert realized_accuracy[0] - realized_accuracy[-1] > 0.15
    _check_tracks(CBPE(device="cpu").fit(ref_p, ref_y), windows)


def test_multiclass_estimates_track_the_realized_metrics(multiclass_shift: Shift) -> None:
    (ref_p, ref_y), windows = multiclass_shift
    realized_accuracy = [_realized(p, y)[0] for p, y in windows]
    assert realized_accuracy[0] - realized_accuracy[-1] > 0.15
    _check_tracks(CBPE(device="cpu").fit(ref_p, ref_y), windows)


def test_without_calibration_a_miscalibrated_model_is_overrated(binary_shift: Shift) -> None:
    (ref_p, ref_y), windows = binary_shift
    raw = CBPE(device="cpu", calibrate="never").fit(ref_p, ref_y)
    gaps = [raw.estimate(p)["accuracy"].value - _realized(p, y)[0] for p, y in windows]
    assert min(gaps) > 0.05
    auto = CBPE(device="cpu", calibrate="auto").fit(ref_p, ref_y)
    assert auto.calibrated_ and auto.ece_calibrated_ < auto.ece_raw_
    assert not raw.calibrated_


@pytest.mark.parametrize("calibrate", ["always", "auto", "never"])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_calibrated_probabilities_estimate_the_reference_itself(
    calibrate: Literal["always", "auto", "never"], n_classes: int
) -> None:
    rng = np.random.default_rng(100 + n_classes)
    probabilities = rng.dirichlet(np.ones(n_classes), size=5_000)
    labels = (rng.uniform(size=(5_000, 1)) > probabilities.cumsum(axis=1)).sum(axis=1)
    labels = labels.clip(max=n_classes - 1)
    scores = probabilities[:, 1] if n_classes == 2 else probabilities
    cbpe = CBPE(device="cpu", calibrate=calibrate).fit(scores, labels)
    estimate = cbpe.estimate(scores)
    np.testing.assert_allclose(estimate.value, _realized(scores, labels), atol=0.02)
    assert np.all(estimate.lower <= estimate.value) and np.all(estimate.value <= estimate.upper)


def test_binary_input_forms_and_class_names_agree() -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(size=2_000)
    y = (rng.uniform(size=2_000) < p).astype(int)
    one_column = CBPE(device="cpu").fit(p, y).estimate(p[:700])
    two_columns = CBPE(device="cpu").fit(np.column_stack([1 - p, p]), y).estimate(p[:700])
    named = (
        CBPE(device="cpu")
        .fit(p, np.where(y == 1, "churn", "stay"), classes=["stay", "churn"])
        .estimate(np.column_stack([1 - p[:700], p[:700]]))
    )
    for other in (two_columns, named):
        np.testing.assert_allclose(other.value, one_column.value, atol=1e-12)
        np.testing.assert_allclose(other.lower, one_column.lower, atol=1e-12)
    assert one_column["roc_auc"].value == pytest.approx(float(one_column.value[2]))
    with pytest.raises(KeyError, match="was not estimated"):
        CBPE(metrics=("accuracy",), device="cpu").fit(p, y).estimate(p)["f1"]


def test_the_same_seed_gives_the_same_band() -> None:
    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.ones(3), size=3_000)
    y = p.argmax(axis=1)
    y[::4] = rng.integers(0, 3, size=len(y[::4]))
    first = CBPE(device="cpu", seed=3).fit(p, y)
    again = CBPE(device="cpu", seed=3).fit(p, y)
    other = CBPE(device="cpu", seed=4).fit(p, y)
    window = p[:1_000]
    a, b, c = first.estimate(window), again.estimate(window), other.estimate(window)
    np.testing.assert_array_equal(a.lower, b.lower)
    np.testing.assert_array_equal(a.upper, b.upper)
    np.testing.assert_array_equal(first.estimate(window).upper, a.upper)
    # another seed moves the band, not the estimate (the full-reference calibration is the same)
    np.testing.assert_allclose(c.value, a.value, atol=1e-12)
    assert not np.array_equal(c.lower, a.lower)


def test_cbpe_bad_input_is_refused_clearly() -> None:
    p, y = np.array([0.1, 0.9, 0.4, 0.7]), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="unknown metric"):
        CBPE(metrics=("accuracy", "precision"))
    with pytest.raises(ValueError, match="confidence"):
        CBPE(confidence=1.5)
    with pytest.raises(ValueError, match="calibrate"):
        CBPE(calibrate="sometimes")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="fit"):
        CBPE(device="cpu").estimate(p)
    for bad in (p * 2, p - 0.5, np.where(p > 0.5, np.nan, p)):
        with pytest.raises(ValueError, match=r"in \[0, 1\]"):
            CBPE(device="cpu").fit(bad, y)
    with pytest.raises(ValueError, match="must match"):
        CBPE(device="cpu").fit(p, y[:3])
    with pytest.raises(ValueError, match="classes"):
        CBPE(device="cpu").fit(np.full((4, 3), 1 / 3), y)
    with pytest.raises(ValueError, match="not among classes"):
        CBPE(device="cpu").fit(p, np.array([0, 1, 2, 1]), classes=[0, 1])
    with pytest.raises(ValueError, match="no example of class"):
        CBPE(device="cpu").fit(p, np.array([0, 0, 0, 0]), classes=[0, 1])
    fitted = CBPE(device="cpu").fit(p, y)
    with pytest.raises(ValueError, match="must have 2 columns"):
        fitted.estimate(np.full((4, 3), 1 / 3))
    with pytest.raises(ValueError, match="no rows"):
        fitted.estimate(np.empty(0))
    with pytest.raises(ValueError, match="at least 2 classes"):
        fitted.estimate(np.ones((4, 2, 1)))


def _regression(rng: np.random.Generator, n: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """Linear target whose noise grows with the second feature; ``shift`` moves it up."""
    x = rng.normal(size=(n, 3))
    x[:, 1] += shift
    y = x @ np.array([1.5, -1.0, 0.5]) + rng.normal(size=n) * 0.3 * np.exp(0.6 * x[:, 1])
    return x, y


@pytest.fixture(scope="module")
def regression_shift() -> tuple[LinearRegression, Shift]:
    rng = np.random.default_rng(2)
    # the monitored model learns on its own data, so the reference losses are honest ones
    model = LinearRegression().fit(*_regression(rng, 2_000, 0.0))
    reference = _regression(rng, 5_000, 0.0)
    return model, (reference, [_regression(rng, 3_000, s) for s in (0.0, 0.3, 0.6, 0.9)])


@pytest.mark.parametrize("loss", ["absolute", "squared"])
def test_dle_estimates_rise_with_the_realized_error(
    regression_shift: tuple[LinearRegression, Shift], loss: Literal["absolute", "squared"]
) -> None:
    model, ((ref_x, ref_y), windows) = regression_shift
    dle = DLE(loss=loss).fit(ref_x, model.predict(ref_x), ref_y)
    estimates, realized = [], []
    for x, y in windows:
        error = y - model.predict(x)
        realized.append(
            np.mean(np.abs(error)) if loss == "absolute" else np.sqrt(np.mean(error**2))
        )
        estimates.append(dle.estimate(x, model.predict(x)))
    value = np.array([e.value for e in estimates])
    assert np.all(np.diff(realized) > 0) and np.all(np.diff(value) > 0)
    np.testing.assert_allclose(value, realized, rtol=0.10)
    inside = [e.lower <= r <= e.upper for e, r in zip(estimates, realized, strict=True)]
    assert sum(inside) >= 3, f"realized inside the band in only {sum(inside)} of 4 windows"
    # rows expected to err more err more variably: the band widens with the shift
    width = np.array([e.upper - e.lower for e in estimates])
    assert np.all(np.diff(width) > 0)
    assert {e.metric for e in estimates} == {"mae" if loss == "absolute" else "rmse"}


def test_dle_is_reproducible_and_leaves_the_given_model_alone(
    regression_shift: tuple[LinearRegression, Shift],
) -> None:
    model, ((ref_x, ref_y), windows) = regression_shift
    x, _ = windows[2]
    tree = DecisionTreeRegressor(min_samples_leaf=40, random_state=0)
    first = DLE(model=tree, seed=1).fit(ref_x, model.predict(ref_x), ref_y)
    again = DLE(model=tree, seed=1).fit(ref_x, model.predict(ref_x), ref_y)
    assert first.estimate(x, model.predict(x)) == again.estimate(x, model.predict(x))
    assert not hasattr(tree, "tree_"), "the model passed in must be cloned, not fitted"


def test_dle_bad_input_is_refused_clearly() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(100, 2)), rng.normal(size=100)
    with pytest.raises(ValueError, match="loss must be one of"):
        DLE(loss="huber")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="regressor"):
        DLE(model="tree")
    with pytest.raises(RuntimeError, match="fit"):
        DLE().estimate(x, y)
    with pytest.raises(ValueError, match="2-D"):
        DLE().fit(y, y, y)
    with pytest.raises(ValueError, match=r"shape \(100,\)"):
        DLE().fit(x, y[:90], y)
    with pytest.raises(ValueError, match="finite"):
        DLE().fit(x, y, np.where(y > 1, np.nan, y))
    with pytest.raises(ValueError, match="at least 50 rows"):
        DLE().fit(x[:20], y[:20], y[:20])
    tree = DecisionTreeRegressor(min_samples_leaf=10, random_state=0)
    fitted = DLE(model=tree).fit(x, y, y + rng.normal(size=100))
    with pytest.raises(ValueError, match=r"shape \(rows, 2\)"):
        fitted.estimate(np.zeros((5, 3)), np.zeros(5))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cbpe_on_cuda_gives_the_cpu_estimate() -> None:
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(3), size=4_000)
    y = (rng.uniform(size=(4_000, 1)) > p.cumsum(axis=1)).sum(axis=1).clip(max=2)
    cpu = CBPE(device="cpu").fit(p, y).estimate(p[:2_000])
    gpu = CBPE(device="cuda").fit(p, y).estimate(p[:2_000])
    np.testing.assert_allclose(gpu.value, cpu.value, atol=1e-9)
    np.testing.assert_allclose(gpu.lower, cpu.lower, atol=1e-9)
