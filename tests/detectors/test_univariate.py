"""Univariate numeric and categorical detectors against independent implementations.

Tolerances: CvM and Anderson-Darling statistics to 1e-12 absolute and p-values to 1e-9
relative against scipy (same formulas, float64); Wasserstein to 1e-12 against
``scipy.stats.wasserstein_distance``; binned distances to 1e-12 against numpy/scipy on the same
bins; permutation p-values exactly equal to a plain loop over the same permutations.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats
from scipy.spatial import distance

from detectors.categorical.distances import CategoricalJensenShannon, CategoricalPSI, TotalVariation
from detectors.permutations import window_seed
from detectors.univariate.anderson import AndersonDarlingTest
from detectors.univariate.binned import PSI, Hellinger, JensenShannon, KLDivergence
from detectors.univariate.cvm import CVMTest
from detectors.univariate.ks import KSTest
from detectors.univariate.permutation import running_counts
from detectors.univariate.wasserstein import WassersteinDistance

RNG = np.random.default_rng(7)


def _with_ties(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a[:, 0] = np.round(a[:, 0])
    return a


DATASETS = {
    "shifted": (RNG.normal(size=(400, 3)), RNG.normal(size=(300, 3)) + np.array([0.0, 0.2, 0.6])),
    "ties": (_with_ties(RNG.normal(size=(500, 3))), _with_ties(RNG.normal(size=(450, 3)) + 0.1)),
    "tiny": (RNG.normal(size=(12, 3)), RNG.normal(size=(9, 3)) + np.array([0.0, 0.5, 2.0])),
    "scales": (
        RNG.exponential(size=(800, 3)) * [1, 100, 1e-3],
        RNG.exponential(size=(600, 3)) * [1.1, 100, 1e-3],
    ),
}


def _heavy_ties(x: np.ndarray, y: np.ndarray) -> bool:
    pooled = np.concatenate([x, y])
    return len(np.unique(pooled)) <= len(pooled) / 2


def _cvm_integral(x: np.ndarray, y: np.ndarray) -> float:
    """``n m / N^2 * sum (F_x - F_y)^2`` over every pooled value (Anderson's 1962 definition,
    which his rank formula equals when nothing is tied)."""
    pooled = np.concatenate([x, y])
    fx = np.searchsorted(np.sort(x), pooled, side="right") / len(x)
    fy = np.searchsorted(np.sort(y), pooled, side="right") / len(y)
    n, m = len(x), len(y)
    return float(n * m / (n + m) ** 2 * np.sum((fx - fy) ** 2))


def _check_cvm(result: object, j: int, x: np.ndarray, y: np.ndarray) -> None:
    """scipy's statistic and p-value, or on a tie-heavy feature the integral form and a
    permutation p-value within Monte Carlo error of scipy's ``permutation_test`` (9,999)."""
    statistic, p_value = result.statistic[j], result.p_value[j]  # type: ignore[attr-defined]
    if not _heavy_ties(x, y):
        expected = stats.cramervonmises_2samp(x, y)
        assert statistic == pytest.approx(expected.statistic, abs=1e-12)
        assert p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-12)
        return
    assert statistic == pytest.approx(_cvm_integral(x, y), rel=1e-12, abs=1e-15)
    exact = stats.permutation_test(
        (x, y), _cvm_integral, alternative="greater", n_resamples=9999, random_state=0
    ).pvalue
    assert p_value == pytest.approx(exact, abs=4 * np.sqrt(max(exact, 1e-3) * (1 - exact) / 999))


@pytest.mark.parametrize("name", list(DATASETS))
def test_cvm_matches_scipy(name: str) -> None:
    ref, cur = DATASETS[name]
    result = CVMTest(device="cpu", correction="none").fit(ref).score(cur)
    for j in range(ref.shape[1]):
        _check_cvm(result, j, ref[:, j], cur[:, j])


def test_cvm_rank_formula_is_inflated_by_ties() -> None:
    """Why tie-heavy features leave scipy's formula: on exchangeable Poisson(2) samples the
    midrank statistic is several times the integral form and its p-value tiny."""
    rng = np.random.default_rng(4)
    x, y = rng.poisson(2.0, 200).astype(float), rng.poisson(2.0, 100).astype(float)
    scipy_result = stats.cramervonmises_2samp(x, y)
    ours = CVMTest(device="cpu", correction="none").fit(x[:, None]).score(y[:, None])
    assert scipy_result.statistic > 3 * _cvm_integral(x, y)
    assert scipy_result.pvalue < 0.05 < ours.p_value[0]
    assert ours.extra["n_permutations"][0] >= 999


@pytest.mark.parametrize("name", list(DATASETS))
def test_anderson_darling_matches_scipy(name: str) -> None:
    ref, cur = DATASETS[name]
    test = AndersonDarlingTest(device="cpu", correction="none", ties="permutation")
    result = test.fit(ref).score(cur)
    for j in range(ref.shape[1]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns when it caps the p-value
            expected = stats.anderson_ksamp([ref[:, j], cur[:, j]])
        assert result.statistic[j] == pytest.approx(expected.statistic, abs=1e-12)
        pooled = np.concatenate([ref[:, j], cur[:, j]])
        if len(np.unique(pooled)) > len(pooled) / 2:
            # scipy interpolates Scholz and Stephens' table, and caps to its range; ours is
            # the limit's tail, within 3% of the table's interpolation inside that range
            if 0.001 < expected.pvalue < 0.25:
                assert result.p_value[j] == pytest.approx(expected.pvalue, rel=0.03)
            elif expected.pvalue == 0.001:
                assert result.p_value[j] < 0.001 * 1.03
            else:
                assert result.p_value[j] > 0.25 * 0.97
            continue
        # heavy ties: a permutation p-value, within Monte Carlo error of scipy's (9,999 draws)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            method = stats.PermutationMethod(n_resamples=9999, random_state=0)
            exact = stats.anderson_ksamp([ref[:, j], cur[:, j]], method=method).pvalue
        assert result.p_value[j] == pytest.approx(
            exact, abs=4 * np.sqrt(max(exact, 1e-3) * (1 - exact) / 999)
        )


@pytest.mark.parametrize("name", list(DATASETS))
def test_wasserstein_matches_scipy(name: str) -> None:
    ref, cur = DATASETS[name]
    raw = WassersteinDistance(device="cpu", normalized=False, threshold=1.0).fit(ref).score(cur)
    normed = WassersteinDistance(device="cpu").fit(ref).score(cur)
    for j in range(ref.shape[1]):
        expected = stats.wasserstein_distance(ref[:, j], cur[:, j])
        assert raw.statistic[j] == pytest.approx(expected, rel=1e-12, abs=1e-15)
        scale = max(np.std(ref[:, j]), 1e-3)
        assert normed.statistic[j] == pytest.approx(expected / scale, rel=1e-12)


def _numpy_bins(ref: np.ndarray, cur: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    edges = np.quantile(ref, np.arange(1, n_bins) / n_bins)
    r = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=n_bins) / len(ref)
    c = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=n_bins) / len(cur)
    return r, c


def _smooth(p: np.ndarray) -> np.ndarray:
    return np.where(p == 0, 1e-4, p)


BINNED = {
    "psi": (PSI, lambda r, c: np.sum((_smooth(c) - _smooth(r)) * np.log(_smooth(c) / _smooth(r)))),
    "jensen_shannon": (JensenShannon, lambda r, c: distance.jensenshannon(r, c)),
    "hellinger": (Hellinger, lambda r, c: np.sqrt(1 - np.sum(np.sqrt(r * c)))),
    "kl_divergence": (KLDivergence, lambda r, c: stats.entropy(_smooth(r), _smooth(c))),
}


@pytest.mark.parametrize("n_bins", [4, 10])
@pytest.mark.parametrize("method", list(BINNED))
@pytest.mark.parametrize("name", list(DATASETS))
def test_binned_distances_match_numpy_and_scipy(name: str, method: str, n_bins: int) -> None:
    cls, expected_fn = BINNED[method]
    ref, cur = DATASETS[name]
    result = cls(device="cpu", n_bins=n_bins).fit(ref).score(cur)
    for j in range(ref.shape[1]):
        r, c = _numpy_bins(ref[:, j], cur[:, j], n_bins)
        np.testing.assert_allclose(result.extra["reference_bins"][j], r, atol=1e-12)
        np.testing.assert_allclose(result.extra["current_bins"][j], c, atol=1e-12)
        assert result.statistic[j] == pytest.approx(expected_fn(r, c), rel=1e-9, abs=1e-12)


def _naive_permutation_p(statistic, z: np.ndarray, masks: np.ndarray, observed: float) -> float:  # type: ignore[no-untyped-def]
    values = np.array([statistic(z[~m], z[m]) for m in masks])
    return float((1 + np.sum(values >= observed - 1e-9 * abs(observed))) / (1 + len(masks)))


@pytest.mark.parametrize("method", ["wasserstein", "jensen_shannon", "psi"])
def test_permutation_p_values_equal_a_plain_loop(method: str) -> None:
    ref, cur = DATASETS["ties"]
    n_perm = 150
    if method == "wasserstein":
        detector = WassersteinDistance(device="cpu", normalized=False, n_permutations=n_perm)
        fn = stats.wasserstein_distance
    else:
        cls, formula = BINNED[method]
        detector = cls(device="cpu", n_permutations=n_perm, seed=3)

        def fn(a: np.ndarray, b: np.ndarray) -> float:
            # each split is binned on its own reference's quantiles, as the observed one is
            return float(formula(*_numpy_bins(a, b, 10)))

    result = detector.fit(ref).score(cur)
    # the permutations come from the seed and the window's values
    seed = window_seed(detector.seed, cur)
    counts = running_counts(len(ref) + len(cur), len(cur), n_perm, seed, torch.device("cpu"))
    masks = np.diff(counts.numpy(), axis=1) > 0
    for j in range(ref.shape[1]):
        z = np.sort(np.concatenate([ref[:, j], cur[:, j]]))
        observed = fn(ref[:, j], cur[:, j])
        assert result.p_value[j] == _naive_permutation_p(fn, z, masks, observed)


def test_permutation_p_values_are_reproducible_and_detect_shift() -> None:
    ref, cur = DATASETS["shifted"]
    a = WassersteinDistance(device="cpu", n_permutations=200, seed=11).fit(ref).score(cur)
    b = WassersteinDistance(device="cpu", n_permutations=200, seed=11).fit(ref).score(cur)
    c = WassersteinDistance(device="cpu", n_permutations=200, seed=12).fit(ref).score(cur)
    np.testing.assert_array_equal(a.p_value, b.p_value)
    assert not np.array_equal(a.p_value, c.p_value) or a.p_value[2] == c.p_value[2]
    assert a.p_value[2] == pytest.approx(1 / 201)  # a 0.6 sd shift: no permutation reaches it
    assert a.drift[2] and a.threshold == 0.05


CATEGORICAL = {
    "psi_categorical": CategoricalPSI,
    "jensen_shannon_categorical": CategoricalJensenShannon,
    "tvd": TotalVariation,
}


def test_categorical_distances_match_numpy_with_unseen_categories() -> None:
    ref = np.array([["a", 1]] * 50 + [["b", 2]] * 30 + [["c", 2]] * 20, dtype=object)
    cur = np.array([["a", 1]] * 20 + [["b", 3]] * 30 + [["new", None]] * 50, dtype=object)
    # feature 0 over a, b, c, new: reference 0.5 0.3 0.2 0, current 0.2 0.3 0 0.5
    r0, c0 = np.array([0.5, 0.3, 0.2, 0.0]), np.array([0.2, 0.3, 0.0, 0.5])
    # feature 1 (None is missing) over 1, 2, 3: reference 0.5 0.5 0, current 0.4 0 0.6
    r1, c1 = np.array([0.5, 0.5, 0.0]), np.array([0.4, 0.0, 0.6])
    expected = {
        "psi_categorical": lambda r, c: np.sum(
            (_smooth(c) - _smooth(r)) * np.log(_smooth(c) / _smooth(r))
        ),
        "jensen_shannon_categorical": lambda r, c: distance.jensenshannon(r, c),
        "tvd": lambda r, c: np.abs(r - c).sum() / 2,
    }
    for method, cls in CATEGORICAL.items():
        result = cls(device="cpu").fit(ref).score(cur)
        assert result.statistic[0] == pytest.approx(expected[method](r0, c0), rel=1e-12)
        assert result.statistic[1] == pytest.approx(expected[method](r1, c1), rel=1e-12)
        assert result.n_current.tolist() == [100, 50]
        assert result.drift.all()


ALL_NUMERIC = [
    KSTest,
    CVMTest,
    AndersonDarlingTest,
    WassersteinDistance,
    PSI,
    JensenShannon,
    Hellinger,
    KLDivergence,
]


@pytest.mark.parametrize("cls", ALL_NUMERIC, ids=lambda c: c.__name__)
@settings(max_examples=25, deadline=None)
@given(
    data=arrays(
        np.float64, st.tuples(st.integers(30, 80), st.integers(1, 3)), elements=st.floats(-1e3, 1e3)
    ),
    seed=st.integers(0, 2**16),
)
def test_properties(cls: type, data: np.ndarray, seed: int) -> None:
    """Identical samples never drift; p-values lie in [0, 1]; row order does not matter."""
    same = cls(device="cpu").fit(data).score(data)
    assert not same.drift.any()
    shuffled = data[np.random.default_rng(seed).permutation(len(data))]
    other = data[: len(data) // 2] * 1.5 + 1
    a = cls(device="cpu").fit(data).score(other)
    b = cls(device="cpu").fit(shuffled).score(other[::-1])
    np.testing.assert_allclose(a.statistic, b.statistic, rtol=1e-9, atol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(a.drift, b.drift)
    p = a.p_value[~np.isnan(a.p_value)]
    assert ((p >= 0) & (p <= 1)).all()


@pytest.mark.parametrize("cls", ALL_NUMERIC, ids=lambda c: c.__name__)
def test_missing_values_are_left_out(cls: type) -> None:
    ref, cur = DATASETS["shifted"]
    holed = cur.copy()
    holed[::4, 1] = np.nan
    full = cls(device="cpu").fit(ref).score(cur[~np.isnan(holed[:, 1])])
    part = cls(device="cpu").fit(ref).score(holed)
    assert part.n_current[1] == full.n_current[1]
    assert part.statistic[1] == pytest.approx(full.statistic[1], rel=1e-12)


@pytest.mark.parametrize("cls", [*ALL_NUMERIC, *CATEGORICAL.values()], ids=lambda c: c.__name__)
def test_bad_input_is_refused(cls: type) -> None:
    detector = cls(device="cpu")
    with pytest.raises(RuntimeError, match="fit"):
        detector.score(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="2-D"):
        detector.fit(np.zeros(5))
    detector.fit(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="shape"):
        detector.score(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="feature names"):
        cls(device="cpu").fit(np.zeros((5, 2)), features=["only-one"])


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, st.tuples(st.integers(2, 40), st.just(2)), elements=st.integers(-3, 3)),
    arrays(np.float64, st.tuples(st.integers(2, 40), st.just(2)), elements=st.integers(-3, 3)),
)
def test_cvm_matches_scipy_with_many_ties(ref: np.ndarray, cur: np.ndarray) -> None:
    """Small integers: midranks come from tie groups within and across the samples (scipy's
    formula where ties are light, the integral form and a permutation p-value where heavy)."""
    result = CVMTest(device="cpu", correction="none").fit(ref).score(cur)
    for j in range(2):
        _check_cvm(result, j, ref[:, j], cur[:, j])
