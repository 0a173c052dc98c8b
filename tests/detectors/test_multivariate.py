"""MMD, LinearMMD, EnergyDistance and ClassifierTest against independent implementations.

Tolerances (relative): MMD statistic vs frouros' MMD with the same sigma 1e-9 (frouros computes
distances with scipy's cdist, we with torch; both are double precision); chunked vs unchunked
1e-12 (only the summation order differs); batched permutation statistics vs a loop that
rebuilds each permuted sample 1e-9; energy distance vs scipy.stats.energy_distance (1-D) and a
numpy computation (d dimensions) 1e-9; LinearMMD vs a plain numpy loop 1e-10; AUC vs
scikit-learn 1e-12. Rejection rates under no drift are counted over fixed seeded draws, with
bounds that a correct level-0.05 test exceeds with probability below 0.5% (binomial tails).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
from frouros.detectors.data_drift import MMD as FrourosMMD
from frouros.detectors.data_drift import EnergyDistance as FrourosEnergy
from frouros.utils.kernels import rbf_kernel
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats
from scipy.spatial.distance import cdist, pdist
from sklearn.metrics import roc_auc_score

from detectors.multivariate.classifier import ClassifierTest, fold_p_values, mann_whitney_auc
from detectors.multivariate.energy import EnergyDistance
from detectors.multivariate.kernels import permutation_indicators, permutation_sums, rows_tensor
from detectors.multivariate.mmd import MMD, LinearMMD
from detectors.permutations import window_seed

RNG = np.random.default_rng(20261125)
DATASETS = {
    "small shift": (RNG.normal(size=(150, 3)), RNG.normal(size=(120, 3)) + 0.2),
    "scales and offset": (  # far from the origin, columns on different scales
        RNG.normal(size=(90, 5)) * [1, 10, 0.1, 1, 5] + 1000.0,
        RNG.normal(size=(110, 5)) * [1, 12, 0.1, 1, 5] + 1000.0,
    ),
    "wide (matrix-product distances)": (RNG.normal(size=(80, 40)), RNG.normal(size=(60, 40))),
}


def naive_mmd(x: np.ndarray, y: np.ndarray, sigma: float) -> float:
    """Unbiased MMD^2, straight from the definition."""
    k = lambda a, b: np.exp(-cdist(a, b, "sqeuclidean") / (2 * sigma**2))  # noqa: E731
    kxx, kyy, n, m = k(x, x), k(y, y), len(x), len(y)
    return float(
        (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
        + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        - 2 * k(x, y).mean()
    )


def naive_energy(x: np.ndarray, y: np.ndarray) -> float:
    """Squared energy distance over all pairs (V-statistic)."""
    return float(2 * cdist(x, y).mean() - cdist(x, x).mean() - cdist(y, y).mean())


# --- MMD ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(DATASETS))
def test_mmd_matches_frouros(name: str) -> None:
    ref, cur = DATASETS[name]
    test = MMD(device="cpu", n_permutations=20).fit(ref)
    result = test.score(cur)
    sigma = test.bandwidth_
    assert sigma is not None and sigma == pytest.approx(
        np.median(pdist(ref)), rel=1e-12
    )  # the median heuristic
    frouros = FrourosMMD(kernel=partial(rbf_kernel, sigma=sigma))
    frouros.fit(X=ref)
    expected = frouros.compare(X=cur)[0].distance
    assert float(result.statistic[0]) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert float(result.statistic[0]) == pytest.approx(naive_mmd(ref, cur, sigma), rel=1e-9)
    assert float(result.extra["bandwidth"]) == sigma


def test_mmd_given_bandwidth_matches_frouros() -> None:
    ref, cur = DATASETS["small shift"]
    result = MMD(device="cpu", bandwidth=0.7, n_permutations=20).fit(ref).score(cur)
    frouros = FrourosMMD(kernel=partial(rbf_kernel, sigma=0.7))
    frouros.fit(X=ref)
    assert float(result.statistic[0]) == pytest.approx(frouros.compare(X=cur)[0].distance, rel=1e-9)


@pytest.mark.parametrize("cls", [MMD, EnergyDistance])
@pytest.mark.parametrize("name", ["small shift", "wide (matrix-product distances)"])
def test_chunked_equals_unchunked(
    cls: type[MMD] | type[EnergyDistance], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref, cur = DATASETS[name]
    whole = cls(device="cpu", n_permutations=50, chunk_size=10_000).fit(ref).score(cur)
    # tiny blocks, and no cached reference matrix: every block is computed by the chunked loops
    monkeypatch.setattr("detectors.multivariate.kernels.CACHE_MAX_ROWS", 0)
    chunked = cls(device="cpu", n_permutations=50, chunk_size=7).fit(ref).score(cur)
    assert float(chunked.statistic[0]) == pytest.approx(float(whole.statistic[0]), rel=1e-12)
    assert float(chunked.p_value[0]) == float(whole.p_value[0])


@pytest.mark.parametrize("cls", [MMD, EnergyDistance])
def test_permutation_statistics_equal_a_naive_loop(
    cls: type[MMD] | type[EnergyDistance],
) -> None:
    """Rebuild each permuted sample explicitly, recompute the statistic, count the p-value."""
    rng = np.random.default_rng(3)
    ref, cur = rng.normal(size=(14, 3)), rng.normal(size=(9, 3)) + 0.4
    n_perm, seed = 60, 11
    test = cls(device="cpu", n_permutations=n_perm, seed=seed, chunk_size=5).fit(ref)
    result = test.score(cur)
    pooled = np.concatenate([ref, cur])
    drawn_from = window_seed(seed, cur)  # the permutations come from the seed and the window
    masks = permutation_indicators(
        len(pooled), len(ref), n_perm, torch.Generator().manual_seed(drawn_from)
    )

    def statistic(x: np.ndarray, y: np.ndarray) -> float:
        if isinstance(test, MMD):
            assert test.bandwidth_ is not None
            return naive_mmd(x, y, test.bandwidth_)
        return naive_energy(x, y)

    observed = statistic(ref, cur)
    permuted = np.array([statistic(pooled[m], pooled[~m]) for m in masks.numpy().astype(bool)])
    # the batched statistics themselves, as the detector computes them (centred on the reference)
    divisor = test.bandwidth_ if isinstance(test, MMD) else 1.0
    assert divisor is not None
    x = rows_tensor((pooled - ref.mean(axis=0)) / divisor, torch.device("cpu"))
    sums = permutation_sums(
        x, len(ref), n_perm, torch.Generator().manual_seed(drawn_from), test._pair_function(), 5
    )
    batched = test._statistic(*sums, len(ref), len(cur)).numpy()
    np.testing.assert_allclose(batched[1:], permuted, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(batched[0], observed, rtol=1e-9, atol=1e-12)
    expected_p = (1 + np.sum(permuted >= observed)) / (1 + n_perm)
    assert float(result.p_value[0]) == pytest.approx(expected_p, abs=1e-15)


def test_same_seed_same_p_value_and_other_seeds_close() -> None:
    rng = np.random.default_rng(5)
    ref, cur = rng.normal(size=(120, 4)), rng.normal(size=(100, 4)) + 0.12
    p = [float(MMD(device="cpu", seed=s).fit(ref).score(cur).p_value[0]) for s in (0, 0, 1, 2, 3)]
    assert p[0] == p[1]
    assert 0.02 < p[0] < 0.9  # a middling p-value, so "close" below says something
    # with 200 permutations a p-value near 0.3 has a standard error near 0.03
    assert max(p) - min(p) < 0.15


def test_subsampled_permutation_test() -> None:
    """Above permutation_rows pooled rows the p-value comes from a seeded subsample."""
    rng = np.random.default_rng(6)
    ref, cur = rng.normal(size=(60, 3)), rng.normal(size=(50, 3)) + 1.0
    full = MMD(device="cpu", n_permutations=50).fit(ref).score(cur)
    sub = MMD(device="cpu", n_permutations=50, permutation_rows=40).fit(ref).score(cur)
    again = MMD(device="cpu", n_permutations=50, permutation_rows=40).fit(ref).score(cur)
    assert float(sub.statistic[0]) == float(full.statistic[0])  # the statistic uses every row
    assert float(sub.p_value[0]) == float(again.p_value[0])
    assert bool(sub.drift[0]) and int(sub.n_reference[0]) == 60


@pytest.mark.parametrize("cls", [MMD, EnergyDistance])
def test_shifted_mean_drifts(cls: type[MMD] | type[EnergyDistance]) -> None:
    rng = np.random.default_rng(7)
    test = cls(device="cpu", n_permutations=100).fit(rng.normal(size=(200, 6)))
    assert bool(test.score(rng.normal(size=(150, 6)) + 0.4).drift[0])
    assert not bool(test.score(rng.normal(size=(150, 6))).drift[0])


@pytest.mark.parametrize("cls", [MMD, EnergyDistance])
def test_level_under_no_drift(cls: type[MMD] | type[EnergyDistance]) -> None:
    """40 draws without drift: at alpha=0.05 about 2 rejections; P(Binomial(40, 0.05) >= 7)
    is 0.4%. (MMD's median bandwidth comes from the reference alone; this checks that holding
    it fixed over the permutations keeps the level.)"""
    rejections = 0
    for seed in range(40):
        rng = np.random.default_rng(3000 + seed)
        test = cls(device="cpu", n_permutations=100, seed=seed).fit(rng.normal(size=(60, 2)))
        rejections += bool(test.score(rng.normal(size=(50, 2))).drift[0])
    assert rejections <= 6


@pytest.mark.parametrize("cls", [MMD, EnergyDistance])
def test_rows_with_nan_are_dropped(cls: type[MMD] | type[EnergyDistance]) -> None:
    ref, cur = DATASETS["small shift"]
    holey = cur.copy()
    holey[::4, 1] = np.nan
    result = cls(device="cpu", n_permutations=30).fit(ref).score(holey)
    complete = cur[np.isfinite(holey).all(axis=1)]
    clean = cls(device="cpu", n_permutations=30).fit(ref).score(complete)
    assert float(result.statistic[0]) == float(clean.statistic[0])
    assert float(result.p_value[0]) == float(clean.p_value[0])
    assert int(result.n_current[0]) == len(complete)


@pytest.mark.parametrize("cls", [MMD, EnergyDistance, LinearMMD, ClassifierTest])
def test_input_errors_are_clear(cls: type) -> None:
    with pytest.raises(RuntimeError, match="fit"):
        cls(device="cpu").score(np.zeros((10, 2)))
    test = cls(device="cpu").fit(np.random.default_rng(0).normal(size=(20, 2)))
    with pytest.raises(ValueError, match=r"shape \(rows, 2\)"):
        test.score(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="2-D"):
        cls(device="cpu").fit(np.zeros(5))
    with pytest.raises(ValueError, match="complete rows"):
        cls(device="cpu").fit(np.full((10, 2), np.nan))
    with pytest.raises(ValueError, match="alpha"):
        cls(alpha=1.5)


def test_parameter_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="bandwidth"):
        MMD(bandwidth=0.0)
    with pytest.raises(ValueError, match="n_permutations"):
        MMD(n_permutations=0)
    with pytest.raises(ValueError, match="chunk_size"):
        EnergyDistance(chunk_size=0)
    with pytest.raises(ValueError, match="n_folds"):
        ClassifierTest(n_folds=1)


finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
samples = st.integers(1, 3).flatmap(
    lambda dim: st.tuples(
        arrays(np.float64, st.tuples(st.integers(2, 25), st.just(dim)), elements=finite),
        arrays(np.float64, st.tuples(st.integers(2, 25), st.just(dim)), elements=finite),
    )
)


@settings(max_examples=30, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(2, 25), st.integers(1, 3)), elements=finite))
@example(np.array([[1.15943463e-156], [0.0]]))  # sigma^2 underflows: rows are divided by sigma
def test_identical_samples_give_no_drift(data: np.ndarray) -> None:
    # equal sizes: every other split of the pooled rows is at least as far apart as this one
    for cls in (MMD, EnergyDistance):
        result = cls(device="cpu", n_permutations=30).fit(data).score(data)
        assert float(result.p_value[0]) == 1.0 and not bool(result.drift[0])
    assert float(MMD(device="cpu", n_permutations=5).fit(data).score(data).statistic[0]) <= 1e-12


def test_identical_wide_samples_have_zero_energy_distance() -> None:
    """Beyond 16 columns distances come from a matrix product; identical rows stay at zero."""
    data = np.random.default_rng(12).normal(size=(150, 40)) + 3.0
    result = EnergyDistance(device="cpu", n_permutations=30).fit(data).score(data)
    # the sum orders differ (cached reference block vs cross blocks): 1e-16 of a distance near
    # 9, which the square root turns into at most ~1e-7
    assert float(result.statistic[0]) < 1e-6 and float(result.p_value[0]) == 1.0


@settings(max_examples=30, deadline=None)
@given(samples)
def test_p_values_are_probabilities_reproducible_and_row_order_free(
    pair: tuple[np.ndarray, np.ndarray],
) -> None:
    ref, cur = pair
    order = np.random.default_rng(0)
    for cls in (MMD, EnergyDistance):
        result = cls(device="cpu", n_permutations=20).fit(ref).score(cur)
        assert 0.0 < float(result.p_value[0]) <= 1.0
        repeated = cls(device="cpu", n_permutations=20).fit(ref).score(cur)
        assert float(repeated.p_value[0]) == float(result.p_value[0])  # the seed fixes permutations
        shuffled = cls(device="cpu", n_permutations=20).fit(ref[order.permutation(len(ref))])
        again = shuffled.score(cur[order.permutation(len(cur))])
        if cls is MMD:
            assert float(again.statistic[0]) == pytest.approx(
                float(result.statistic[0]), rel=1e-9, abs=1e-12
            )
        else:  # the squared form: its rounding (relative to the squared data scale) is what
            # the square root blows up near zero
            scale = (1.0 + np.abs(np.concatenate([ref, cur])).max()) ** 2
            assert float(again.statistic[0]) ** 2 == pytest.approx(
                float(result.statistic[0]) ** 2, rel=1e-9, abs=1e-13 * scale
            )


# --- LinearMMD ---------------------------------------------------------------------------------


def naive_linear_mmd(x: np.ndarray, y: np.ndarray, sigma: float) -> tuple[float, float]:
    k = lambda a, b: np.exp(-np.sum((a - b) ** 2) / (2 * sigma**2))  # noqa: E731
    h = [
        k(x[2 * i], x[2 * i + 1])
        + k(y[2 * i], y[2 * i + 1])
        - k(x[2 * i], y[2 * i + 1])
        - k(x[2 * i + 1], y[2 * i])
        for i in range(min(len(x), len(y)) // 2)
    ]
    mean, std = np.mean(h), np.std(h, ddof=1)
    return float(mean), float(stats.norm.sf(mean / (std / np.sqrt(len(h)))))


@pytest.mark.parametrize("sizes", [(301, 250), (200, 333)])
def test_linear_mmd_matches_a_naive_loop(sizes: tuple[int, int]) -> None:
    rng = np.random.default_rng(sizes[0])
    ref, cur = rng.normal(size=(sizes[0], 4)), rng.normal(size=(sizes[1], 4)) * 1.1 + 5.0
    test = LinearMMD(device="cpu").fit(ref)
    result = test.score(cur)
    sigma = test.bandwidth_
    assert sigma is not None and sigma == pytest.approx(np.median(pdist(ref)), rel=1e-12)
    statistic, p_value = naive_linear_mmd(ref, cur, sigma)
    assert float(result.statistic[0]) == pytest.approx(statistic, rel=1e-10)
    assert float(result.p_value[0]) == pytest.approx(p_value, rel=1e-10)


def test_linear_mmd_detects_a_shift_on_large_windows() -> None:
    rng = np.random.default_rng(8)
    test = LinearMMD(device="cpu").fit(rng.normal(size=(20_000, 8)))
    assert bool(test.score(rng.normal(size=(20_000, 8)) + 0.2).drift[0])


def test_linear_mmd_level_under_no_drift() -> None:
    """100 draws without drift: at alpha=0.05 about 5 rejections; P(Binomial(100, 0.05) >= 13)
    is 0.2%."""
    rejections = 0
    for seed in range(100):
        rng = np.random.default_rng(1000 + seed)
        result = (
            LinearMMD(device="cpu").fit(rng.normal(size=(400, 3))).score(rng.normal(size=(400, 3)))
        )
        rejections += bool(result.drift[0])
    assert rejections <= 12


# --- EnergyDistance ----------------------------------------------------------------------------

ONE_D = {
    "normal": (RNG.normal(size=(200, 1)), RNG.normal(size=(150, 1)) * 1.3),
    "ties": (
        RNG.integers(0, 5, size=(120, 1)).astype(float),
        RNG.integers(0, 6, size=(90, 1)).astype(float),
    ),
    "offset": (RNG.exponential(size=(70, 1)) + 1e4, RNG.exponential(size=(80, 1)) + 1e4),
}


@pytest.mark.parametrize("name", list(ONE_D))
def test_energy_matches_scipy_and_frouros_in_one_dimension(name: str) -> None:
    ref, cur = ONE_D[name]
    result = EnergyDistance(device="cpu", n_permutations=20).fit(ref).score(cur)
    expected = stats.energy_distance(ref[:, 0], cur[:, 0])  # the square-root form, as ours
    assert float(result.statistic[0]) == pytest.approx(expected, rel=1e-9)
    frouros = FrourosEnergy()
    frouros.fit(X=ref[:, 0])
    assert float(result.statistic[0]) == pytest.approx(frouros.compare(X=cur[:, 0])[0].distance)


@pytest.mark.parametrize("name", list(DATASETS))
def test_energy_matches_numpy_in_several_dimensions(name: str) -> None:
    ref, cur = DATASETS[name]
    result = EnergyDistance(device="cpu", n_permutations=20).fit(ref).score(cur)
    assert float(result.statistic[0]) ** 2 == pytest.approx(naive_energy(ref, cur), rel=1e-9)


# --- ClassifierTest ----------------------------------------------------------------------------


def test_auc_and_fold_p_values_match_scikit_learn_and_scipy() -> None:
    rng = np.random.default_rng(9)
    scores = np.round(rng.normal(size=90), 1)  # with ties
    labels = (rng.random(90) < 0.4).astype(float)
    assert mann_whitney_auc(scores, labels) == pytest.approx(
        roc_auc_score(labels, scores), rel=1e-12
    )
    folds = np.arange(90) % 3
    p = fold_p_values(scores + labels * 0.3, labels, folds, 3)
    for fold in range(3):
        held_out = folds == fold
        fold_scores, fold_labels = scores[held_out] + labels[held_out] * 0.3, labels[held_out]
        # the one-sided Mann-Whitney p-value is a permutation p-value of the fold's AUC
        auc = mann_whitney_auc(fold_scores, fold_labels)
        permuted = [
            mann_whitney_auc(fold_scores, rng.permutation(fold_labels)) for _ in range(4000)
        ]
        assert p[fold] == pytest.approx(np.mean(np.array(permuted) >= auc - 1e-12), abs=0.03)


def test_classifier_detects_a_clear_shift_and_is_reproducible() -> None:
    rng = np.random.default_rng(10)
    ref, cur = rng.normal(size=(200, 4)), rng.normal(size=(150, 4)) + np.array([1.0, 0, 0, 0])
    result = ClassifierTest(device="cpu", seed=3).fit(ref).score(cur)
    assert bool(result.drift[0]) and float(result.statistic[0]) > 0.7
    again = ClassifierTest(device="cpu", seed=3).fit(ref).score(cur)
    assert float(again.statistic[0]) == float(result.statistic[0])
    assert float(again.p_value[0]) == float(result.p_value[0])
    other = ClassifierTest(device="cpu", seed=4).fit(ref).score(cur)
    assert bool(other.drift[0])


def test_classifier_logistic_regression_detects_a_mean_shift() -> None:
    rng = np.random.default_rng(11)
    test = ClassifierTest(device="cpu", hidden=0).fit(rng.normal(size=(200, 3)))
    assert bool(test.score(rng.normal(size=(200, 3)) + 0.5).drift[0])


def test_classifier_level_under_no_drift() -> None:
    """30 draws without drift: at alpha=0.05 about 1.5 rejections; P(Binomial(30, 0.05) >= 6)
    is 0.3%."""
    rejections = 0
    for seed in range(30):
        rng = np.random.default_rng(2000 + seed)
        test = ClassifierTest(device="cpu", seed=seed, epochs=50)
        rejections += bool(
            test.fit(rng.normal(size=(100, 3))).score(rng.normal(size=(80, 3))).drift
        )
    assert rejections <= 5
