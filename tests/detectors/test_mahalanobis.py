"""The Mahalanobis-distance test: leave-one-out distances as refits give them, Ledoit-Wolf as
scikit-learn computes it, its level on exchangeable windows, and what it sees."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detectors.multivariate.mahalanobis import MahalanobisTest, ledoit_wolf_shrinkage
from detectors.registry import REGISTRY, build


def _correlated(rng: np.random.Generator, rows: int, dim: int, rho: float = 0.8) -> np.ndarray:
    """AR(1)-correlated Gaussian rows: neighbouring coordinates alike, as pixels are."""
    lags = np.abs(np.subtract.outer(np.arange(dim), np.arange(dim)))
    return rng.normal(size=(rows, dim)) @ np.linalg.cholesky(rho**lags).T


def _refit_distance(reference: np.ndarray, i: int, shrinkage: float) -> float:
    """Row i's squared distance from the mean and shrunk covariance of the other rows, with the
    identity target's scale (the mean variance) of the whole reference, as fit keeps it."""
    n, d = reference.shape
    centred = reference - reference.mean(axis=0)
    mu = np.trace(centred.T @ centred / (n - 1)) / d
    others = np.delete(reference, i, axis=0)
    offset = others - others.mean(axis=0)
    covariance = (1 - shrinkage) * offset.T @ offset / (n - 2) + shrinkage * mu * np.eye(d)
    r = reference[i] - others.mean(axis=0)
    return float(r @ np.linalg.solve(covariance, r))


@pytest.mark.parametrize(("rows", "dim"), [(60, 5), (40, 30), (25, 40)])
def test_reference_distances_leave_each_row_out_as_a_refit_does(rows: int, dim: int) -> None:
    rng = np.random.default_rng(rows)
    reference = _correlated(rng, rows, dim) * rng.uniform(0.5, 3.0, size=dim)
    test = MahalanobisTest(device="cpu").fit(reference)
    assert 0.0 < test.shrinkage_ <= 1.0
    expected = [_refit_distance(reference, i, test.shrinkage_) for i in range(rows)]
    assert np.allclose(test.reference_distances_, expected, rtol=1e-9)
    # and a window row is measured by the whole reference's fit
    window = _correlated(rng, 3, dim)
    n, d = reference.shape
    centred = reference - reference.mean(axis=0)
    s, mu = test.shrinkage_, np.trace(centred.T @ centred / (n - 1)) / d
    covariance = (1 - s) * centred.T @ centred / (n - 1) + s * mu * np.eye(d)
    offsets = window - reference.mean(axis=0)
    direct = np.einsum("ij,ij->i", offsets, np.linalg.solve(covariance, offsets.T).T)
    assert np.allclose(test.distances(window), direct, rtol=1e-9)


def test_ledoit_wolf_intensity_is_scikit_learns() -> None:
    from sklearn.covariance import ledoit_wolf_shrinkage as sklearn_shrinkage

    rng = np.random.default_rng(3)
    for rows, dim in [(500, 10), (50, 40), (30, 100)]:
        x = _correlated(rng, rows, dim, rho=0.5)
        centred = x - x.mean(axis=0)
        ours = ledoit_wolf_shrinkage(torch.as_tensor(centred))
        assert ours == pytest.approx(float(sklearn_shrinkage(centred, assume_centered=True)))


def test_false_alarms_on_exchangeable_windows_stay_at_the_level() -> None:
    """Exchangeable windows, alpha 0.05, three shapes of data: Gaussian with correlated columns,
    heavy tails (Student t, 3 degrees of freedom), and more features than a window has rows
    (the shrinkage matters). Flagged share at most alpha + 2 standard errors over 200 windows
    each; without leaving reference rows out, the first case flags about half the windows."""
    windows, alpha = 200, 0.05
    limit = alpha + 2 * np.sqrt(alpha * (1 - alpha) / windows)
    rng = np.random.default_rng(11)
    cases = {
        "correlated": lambda n: _correlated(rng, n, 16),
        "heavy tails": lambda n: _correlated(rng, n, 8) * np.sqrt(3 / rng.chisquare(3, (n, 1))),
        "wide": lambda n: _correlated(rng, n, 80),
    }
    for name, draw in cases.items():
        flagged = 0
        for _ in range(windows):
            test = MahalanobisTest(device="cpu", alpha=alpha).fit(draw(300))
            flagged += bool(test.score(draw(60)).drift[0])
        assert flagged / windows <= limit, (name, flagged)


def test_in_sample_distances_would_be_too_short() -> None:
    """Why the reference's distances leave each row out: measured in sample they are shorter
    than an exchangeable window's, which the test would call drift."""
    rng = np.random.default_rng(5)
    reference, window = _correlated(rng, 300, 40), _correlated(rng, 300, 40)
    test = MahalanobisTest(device="cpu").fit(reference)
    in_sample = test.distances(reference)
    assert in_sample.mean() < 0.92 * test.distances(window).mean()
    assert test.reference_distances_.mean() == pytest.approx(test.distances(window).mean(), rel=0.1)
    assert float(test.score(window).p_value[0]) > 0.01


def test_sees_changes_that_keep_every_marginal_or_spread_over_many_columns() -> None:
    rng = np.random.default_rng(7)
    reference = _correlated(rng, 1000, 16)
    test = MahalanobisTest(device="cpu").fit(reference)
    # decorrelated columns, each with its N(0, 1) marginal: rows far off the reference's ridge
    decoupled = test.score(rng.normal(size=(300, 16)))
    assert decoupled.p_value[0] < 1e-6 and decoupled.drift[0]
    assert decoupled.extra["distance_ratio"] > 1.5
    # neighbours more alike (a blur): the high-frequency directions shrink
    smoothed = test.score(_correlated(rng, 300, 16, rho=0.9))
    assert smoothed.p_value[0] < 1e-6 and smoothed.extra["distance_ratio"] < 0.8
    # a 5% contraction of every column (a contrast change)
    contracted = test.score(_correlated(rng, 300, 16) * 0.95)
    assert contracted.p_value[0] < 0.01 and contracted.extra["distance_ratio"] < 1.0
    # blind to a change that keeps every distance: a mirror image
    mirrored = -_correlated(rng, 300, 16)
    assert test.score(mirrored).p_value[0] > 0.001


def test_rows_with_nan_are_dropped_and_bad_input_is_refused() -> None:
    rng = np.random.default_rng(2)
    reference = rng.normal(size=(200, 4))
    test = MahalanobisTest(device="cpu").fit(reference)
    window = rng.normal(size=(50, 4))
    holed = window.copy()
    holed[:5, 1] = np.nan
    assert test.score(holed).n_current[0] == 45
    assert test.score(holed).p_value[0] == test.score(window[5:]).p_value[0]
    with pytest.raises(ValueError, match="4"):
        test.score(rng.normal(size=(50, 3)))
    with pytest.raises(ValueError, match="at least 3 complete rows"):
        MahalanobisTest(device="cpu").fit(reference[:2])
    with pytest.raises(ValueError, match="shrinkage"):
        MahalanobisTest(shrinkage=0.0)
    with pytest.raises(RuntimeError, match="fit"):
        MahalanobisTest(device="cpu").score(window)


def test_constant_reference_still_measures_a_change() -> None:
    reference = np.ones((50, 3))
    test = MahalanobisTest(device="cpu").fit(reference)
    assert test.score(np.ones((20, 3))).p_value[0] == 1.0
    assert test.score(np.ones((20, 3)) * 2.0).p_value[0] < 1e-6


def test_registry_builds_it_as_a_multivariate_test() -> None:
    assert REGISTRY["mahalanobis"].multivariate
    rng = np.random.default_rng(0)
    detector = build("mahalanobis", {"shrinkage": 0.1}, device="cpu", per_vector=False)
    assert detector.fit(rng.normal(size=(100, 3))).shrinkage_ == 0.1
    with pytest.raises(ValueError, match="shrinkage"):
        build("mahalanobis", {"shrinkage": 2.0}, device="cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_gives_the_cpu_p_value() -> None:
    rng = np.random.default_rng(0)
    reference, window = _correlated(rng, 2000, 32), _correlated(rng, 500, 32, rho=0.85)
    cpu = MahalanobisTest(device="cpu").fit(reference).score(window)
    cuda = MahalanobisTest(device="cuda").fit(reference).score(window)
    assert cuda.p_value[0] == pytest.approx(cpu.p_value[0], rel=1e-6)
