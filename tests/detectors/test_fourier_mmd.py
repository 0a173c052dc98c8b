"""The Fourier-feature MMD (the joint stage's default) and the tail of a weighted sum of
chi-squares its p-value comes from."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from detectors.multivariate.fourier_mmd import FourierMMD
from detectors.quadratic_forms import imhof_sf, weighted_chi2_sf


@pytest.mark.parametrize("dof", [1, 3, 20, 128])
@pytest.mark.parametrize("p", [0.3, 0.05, 0.01, 1e-3, 1e-6])
def test_equal_weights_give_the_chi2_tail(dof: int, p: float) -> None:
    t = 2.5 * stats.chi2.isf(p, dof)  # weights 2.5: a scaled chi-square
    # the saddlepoint's error is largest for one degree of freedom (6% at 1e-6)
    assert weighted_chi2_sf(t, np.full(dof, 2.5)) == pytest.approx(p, rel=0.08)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unequal_weights_match_a_monte_carlo_tail(seed: int) -> None:
    rng = np.random.default_rng(seed)
    weights = rng.exponential(size=40) ** 2  # a few dominant weights, many small ones
    draws = np.square(rng.standard_normal((400_000, len(weights)))) @ weights
    for p in (0.8, 0.5, 0.2, 0.05, 0.01, 0.002):
        t = float(np.quantile(draws, 1.0 - p))
        # Monte Carlo's own error at 0.002 is about 3.5% (800 draws beyond t)
        assert weighted_chi2_sf(t, weights) == pytest.approx(p, rel=0.12), (seed, p)


def test_degenerate_weights() -> None:
    assert weighted_chi2_sf(1.0, np.zeros(3)) == 0.0
    assert weighted_chi2_sf(0.0, np.zeros(3)) == 1.0
    assert weighted_chi2_sf(1e9, np.ones(4)) == 0.0
    assert weighted_chi2_sf(-1e-12, np.array([1.0, -1e-17])) == pytest.approx(1.0)


def _correlated(rng: np.random.Generator, rows: int, rho: float) -> np.ndarray:
    return rng.multivariate_normal([0, 0, 0], [[1, rho, 0], [rho, 1, 0], [0, 0, 1]], size=rows)


def test_it_sees_a_change_of_correlation_that_keeps_every_marginal() -> None:
    rng = np.random.default_rng(0)
    test = FourierMMD(device="cpu").fit(_correlated(rng, 1000, 0.8))
    changed = test.score(_correlated(rng, 500, -0.8))
    same = test.score(_correlated(rng, 500, 0.8))
    assert changed.p_value[0] < 1e-6
    assert same.p_value[0] > 0.01
    assert changed.extra["p_values"].shape == (3,)  # one p-value per bandwidth
    assert changed.method == "fourier_mmd"


def test_its_p_value_agrees_with_a_permutation_test_of_the_same_statistic() -> None:
    """The asymptotic null against the exact one: the same statistic (squared distance of the
    mean features) recomputed on 2,000 random splits of the pooled rows."""
    rng = np.random.default_rng(1)
    ref, cur = rng.normal(size=(400, 6)), rng.normal(size=(200, 6))
    cur[:, :2] *= 1.25  # a change giving p-values near the levels that matter
    test = FourierMMD(device="cpu", factors=(0.5,)).fit(ref)
    asymptotic = float(test.score(cur).p_value[0])
    pooled = np.concatenate([ref, cur])
    features = test._features(torch.as_tensor(pooled))[0].double()
    observed = float(
        (features[:400].mean(0) - features[400:].mean(0)).square().sum()  # the same statistic
    )
    generator = torch.Generator().manual_seed(0)
    permuted = []
    for _ in range(2000):
        order = torch.randperm(len(pooled), generator=generator)
        a, b = features[order[:400]], features[order[400:]]
        permuted.append(float((a.mean(0) - b.mean(0)).square().sum()))
    exact = (1 + sum(s >= observed for s in permuted)) / 2001
    assert 0.001 < exact < 0.2  # the check means something: a p-value in the range that counts
    assert asymptotic == pytest.approx(exact, rel=0.35), (asymptotic, exact)


def test_false_alarms_stay_near_alpha_on_heavy_tailed_correlated_rows() -> None:
    rng = np.random.default_rng(2)
    mix = rng.normal(size=(8, 8)) / np.sqrt(8)
    flagged = 0
    for _ in range(150):
        ref = rng.standard_t(4, size=(300, 8)) @ mix
        cur = rng.standard_t(4, size=(100, 8)) @ mix
        flagged += bool(FourierMMD(device="cpu").fit(ref).score(cur).p_value[0] < 0.05)
    assert flagged / 150 <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 150)


def test_a_window_scored_twice_gets_the_same_p_value_and_rows_with_nan_are_dropped() -> None:
    rng = np.random.default_rng(3)
    test = FourierMMD(device="cpu").fit(rng.normal(size=(300, 4)))
    cur = rng.normal(size=(100, 4)) + 0.2
    first, second = test.score(cur), test.score(cur)
    assert first.p_value[0] == second.p_value[0]
    with_nan = np.concatenate([cur, np.full((5, 4), np.nan)])
    assert test.score(with_nan).p_value[0] == first.p_value[0]
    assert int(test.score(with_nan).n_current[0]) == 100


def test_given_bandwidths_are_used_as_they_are() -> None:
    rng = np.random.default_rng(4)
    test = FourierMMD(device="cpu", bandwidths=[0.5, 2.0]).fit(rng.normal(size=(100, 3)))
    assert test.bandwidths_ == (0.5, 2.0)
    assert test.score(rng.normal(size=(50, 3))).extra["bandwidth"].tolist() == [0.5, 2.0]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"factors": []}, "factors"),
        ({"factors": [0.0]}, "factors"),
        ({"bandwidths": [float("nan")]}, "bandwidths"),
        ({"n_frequencies": 0}, "n_frequencies"),
        ({"alpha": 1.5}, "alpha"),
    ],
)
def test_bad_parameters_are_refused(params: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FourierMMD(device="cpu", **params)  # type: ignore[arg-type]


def test_too_few_rows_and_scoring_before_fitting_are_errors() -> None:
    test = FourierMMD(device="cpu")
    with pytest.raises(RuntimeError, match="fit"):
        test.score(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="2 complete rows"):
        test.fit(np.array([[1.0, 2.0], [np.nan, 1.0]]))
    test.fit(np.random.default_rng(5).normal(size=(20, 2)))
    with pytest.raises(ValueError, match="shape"):
        test.score(np.zeros((5, 3)))


@pytest.mark.parametrize(("dof", "rel"), [(1, 0.05), (4, 0.01), (16, 1e-5), (64, 1e-5)])
def test_imhof_gives_the_chi2_tail(dof: int, rel: float) -> None:
    """Many digits from 16 degrees of freedom; with one or four (the integrand decays slowly)
    within 5% and 1% (measured: 4.4% at 1e-4 for one, 0.7% for four)."""
    for p in (0.5, 0.05, 0.01, 1e-4):
        t = 0.7 * stats.chi2.isf(p, dof)
        assert imhof_sf(t, np.full(dof, 0.7)) == pytest.approx(p, rel=rel)


def test_imhof_matches_a_large_monte_carlo_on_unequal_weights() -> None:
    rng = np.random.default_rng(7)
    weights = rng.exponential(size=128)
    draws = np.concatenate(
        [np.square(rng.standard_normal((200_000, 128))) @ weights for _ in range(5)]
    )
    for p in (0.05, 0.01):
        t = float(np.quantile(draws, 1.0 - p))
        # one million draws: Monte Carlo's standard error is 0.9% at 0.05 and 1.0% at 0.01
        assert imhof_sf(t, weights) == pytest.approx(p, rel=0.04), p
    far = float(np.quantile(draws, 1.0 - 1e-5)) * 3  # far beyond the integral's accuracy
    assert imhof_sf(far, weights) == weighted_chi2_sf(far, weights)
