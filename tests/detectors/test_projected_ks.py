"""The embedding test: no drift on the same distribution, drift on a shifted one."""

from __future__ import annotations

import numpy as np
import pytest

from detectors import ProjectedKSTest
from detectors.multivariate.per_vector import PerVector

RNG = np.random.default_rng(3)


def test_detects_a_mean_shift_and_not_noise() -> None:
    cov = np.diag(np.linspace(3, 0.1, 16))
    ref = RNG.multivariate_normal(np.zeros(16), cov, size=1500)
    same = RNG.multivariate_normal(np.zeros(16), cov, size=800)
    shifted = RNG.multivariate_normal(np.r_[0.6, np.zeros(15)], cov, size=800)
    test = PerVector(lambda: ProjectedKSTest(device="cpu")).fit([ref, ref[:, :4]], ["a", "b"])
    calm = test.score([same, same[:, :4]])
    moved = test.score([shifted, shifted[:, :4]])
    assert not calm.drift.any()
    assert moved.drift.all()
    assert moved.method == "ks_pca" and moved.features == ("a", "b")


def test_rows_with_missing_values_are_left_out() -> None:
    ref = RNG.normal(size=(200, 4))
    cur = RNG.normal(size=(100, 4))
    cur[:10] = np.nan
    result = ProjectedKSTest(device="cpu").fit(ref).score(cur)
    assert int(result.n_current[0]) == 90
    assert 0.0 <= float(result.p_value[0]) <= 1.0
    assert result.statistic.shape == (1,)  # one entry, like a univariate result of one feature


def test_needs_complete_reference_rows() -> None:
    with pytest.raises(ValueError, match="four complete"):
        ProjectedKSTest(device="cpu").fit(np.full((5, 3), np.nan))
    with pytest.raises(ValueError, match="shape"):
        ProjectedKSTest(device="cpu").fit(RNG.normal(size=(50, 3))).score(np.zeros((4, 2)))


@pytest.mark.parametrize(("rows", "window", "dim"), [(2000, 2000, 50), (900, 200, 64)])
def test_exchangeable_windows_of_alike_features_keep_the_level(
    rows: int, window: int, dim: int
) -> None:
    """Independent normal features, every direction alike: directions fitted on the rows the
    test compares with made those rows spread wider than a window's along the top component,
    and 62% (2,000 rows, 50 features) and 20% (900 against 200, 64) of exchangeable windows
    were flagged at alpha 0.05. Now at most alpha + 2 standard errors over 60 windows."""
    rng = np.random.default_rng(dim)
    flagged = 0
    for seed in range(60):
        test = ProjectedKSTest(device="cpu", seed=seed).fit(rng.normal(size=(rows, dim)))
        flagged += bool(test.score(rng.normal(size=(window, dim))).drift[0])
    assert flagged / 60 <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 60), flagged


def test_large_samples_take_the_asymptotic_p_value_small_ones_the_exact() -> None:
    """Half the reference against a window: sizes differ, and KS's exact p-value is a lattice
    walk of n x m; from 1,000 rows a side the asymptotic one (within 3.5% there) is used."""
    from scipy import stats

    from detectors.multivariate.projected_ks import ASYMPTOTIC_FROM

    rng = np.random.default_rng(8)
    for rows, window, method in [(2 * ASYMPTOTIC_FROM, 1500, "asymp"), (400, 150, "exact")]:
        test = ProjectedKSTest(device="cpu", n_components=2).fit(rng.normal(size=(rows, 3)))
        current = rng.normal(size=(window, 3)) * [1.08, 1.0, 1.0]
        result = test.score(current)
        assert test._ks is not None and test._ks._ref is not None
        # the sorted projections of the reference's other half
        held_out = test._ks._ref.values.numpy()
        basis, mean = test._basis, test._mean
        assert basis is not None and mean is not None
        window_projected = (current - mean.numpy()) @ basis.numpy()
        expected = [
            stats.ks_2samp(held_out[j], window_projected[:, j], method=method).pvalue
            for j in range(2)
        ]
        assert np.allclose(result.extra["component_p_values"], expected, rtol=1e-6), method
