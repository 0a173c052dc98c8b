"""How many permutations, which ones, and in what batches (detectors/permutations.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detectors.multivariate import kernels
from detectors.multivariate.kernels import (
    chunked_permutation_sums,
    permutation_indicators,
    permutation_sums,
    rows_tensor,
)
from detectors.multivariate.mmd import MMD, unit_rbf
from detectors.permutations import (
    MAX_PERMUTATIONS,
    check_permutations,
    floor_permutations,
    random_subsets,
    resolve_permutations,
    smallest_p_value,
    window_seed,
)
from detectors.registry import build
from detectors.univariate import permutation
from detectors.univariate.wasserstein import WassersteinDistance


@pytest.mark.parametrize("alpha", [0.1, 0.05, 0.01, 0.001])
@pytest.mark.parametrize("family", [1, 2, 5, 21, 100, 1000])
def test_auto_floor_passes_the_smallest_correction_level(family: int, alpha: float) -> None:
    drawn = resolve_permutations("auto", family_size=family, alpha=alpha, minimum=200)
    assert drawn >= 200
    if drawn < MAX_PERMUTATIONS:
        # the floor is at most half of alpha / m, and not much less (no wasted permutations)
        assert smallest_p_value(drawn) <= alpha / family / 2
        if drawn > 200:
            assert smallest_p_value(drawn - 1) > alpha / family / 2
    else:
        assert floor_permutations(family, alpha) > MAX_PERMUTATIONS


def test_configured_counts_are_kept_and_bad_ones_refused() -> None:
    assert resolve_permutations(50, family_size=100, alpha=0.05, minimum=200) == 50
    for bad in (0, -1, 2.5, True, "many"):
        with pytest.raises(ValueError, match="n_permutations"):
            check_permutations(bad)
    check_permutations(0, minimum=0)
    with pytest.raises(ValueError, match="family_size"):
        MMD(family_size=0)


def test_registry_build_passes_the_family_to_permutation_tests() -> None:
    mmd = build("mmd", device="cpu", alpha=0.05, family_size=21).make()
    assert mmd.family_size == 21 and mmd.permutations() == 839
    assert build("anderson", device="cpu", alpha=0.01, family_size=40).permutations() == 7999
    assert not hasattr(build("ks", device="cpu", family_size=21), "family_size")


def test_random_subsets_are_the_smallest_keys() -> None:
    """A selection gives the same sets as sorting the keys (and as the former argsort)."""
    mask = random_subsets(50, 17, 300, torch.Generator().manual_seed(4))
    keys = torch.rand((300, 50), generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    expected = torch.zeros_like(keys).scatter_(1, torch.argsort(keys, dim=1)[:, :17], 1.0)
    assert torch.equal(mask, expected)
    assert (mask.sum(dim=1) == 17).all()
    # every position is chosen about 17/50 of the time
    assert mask.mean(dim=0).sub(17 / 50).abs().max() < 0.1


def test_window_seed_depends_on_values_shape_and_seed() -> None:
    a = np.arange(12.0).reshape(4, 3)
    assert window_seed(0, a) == window_seed(0, a.copy())
    assert len({window_seed(0, a), window_seed(1, a), window_seed(0, a + 1)}) == 3
    assert window_seed(0, a) != window_seed(0, a.reshape(3, 4))
    assert 0 <= window_seed(2**40, a) < 2**63


def test_kernel_permutations_in_batches_equal_a_plain_loop() -> None:
    """With a small budget the permutations come in several batches: each permuted statistic
    is still that of its own split, recomputed from the pair matrix."""
    rng = np.random.default_rng(5)
    rows = rows_tensor(rng.normal(size=(30, 3)), torch.device("cpu"))
    n_first, n_perm = 18, 70
    s_xx, s_xy, s_yy = chunked_permutation_sums(
        rows, n_first, n_perm, torch.Generator().manual_seed(9), unit_rbf, 7, budget=30 * 16
    )
    assert len(s_xx) == n_perm + 1
    # the same generator, batch by batch (16 permutations per batch of 30 rows)
    generator = torch.Generator().manual_seed(9)
    masks = torch.cat(
        [permutation_indicators(30, n_first, size, generator) for size in (16, 16, 16, 16, 6)]
    )
    k = unit_rbf(torch.cdist(rows, rows).square())
    for p, mask in enumerate(masks, start=1):
        x = mask.bool()
        assert float(s_xx[p]) == pytest.approx(float(k[x][:, x].sum()), rel=1e-12)
        assert float(s_xy[p]) == pytest.approx(float(k[x][:, ~x].sum()), rel=1e-12)
        assert float(s_yy[p]) == pytest.approx(float(k[~x][:, ~x].sum()), rel=1e-12)
    # one batch: exactly what one call of permutation_sums draws
    whole = chunked_permutation_sums(
        rows, n_first, n_perm, torch.Generator().manual_seed(9), unit_rbf, 7
    )
    once = permutation_sums(rows, n_first, n_perm, torch.Generator().manual_seed(9), unit_rbf, 7)
    for a, b in zip(whole, once, strict=True):
        assert torch.equal(a, b)


def test_univariate_permutations_in_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """A budget that forces several batches gives p-values as valid as one batch: the same
    observed statistics, p-values on the grid 1/(P + 1), and a clear shift at the floor."""
    rng = np.random.default_rng(6)
    ref = rng.normal(size=(80, 4))
    cur = rng.normal(size=(60, 4)) + np.array([0.0, 0.0, 0.0, 1.5])
    one = WassersteinDistance(device="cpu", n_permutations=300).fit(ref).score(cur)
    monkeypatch.setattr(permutation, "BUDGET", 2 * 141 * 10)
    many = WassersteinDistance(device="cpu", n_permutations=300).fit(ref).score(cur)
    np.testing.assert_array_equal(one.statistic, many.statistic)
    counts = many.p_value * 301
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-9)
    assert many.p_value[3] == one.p_value[3] == smallest_p_value(300)
    np.testing.assert_allclose(many.p_value[:3], one.p_value[:3], atol=0.1)
    assert (many.extra["n_permutations"] == 300).all()


def test_kernel_budget_keeps_the_observed_split_first(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    ref, cur = rng.normal(size=(40, 2)), rng.normal(size=(30, 2)) + 2.0
    monkeypatch.setattr(kernels, "PERMUTATION_BUDGET", 70 * 8)
    result = MMD(device="cpu", n_permutations=100).fit(ref).score(cur)
    assert result.p_value[0] == smallest_p_value(100)
    assert int(result.extra["n_permutations"]) == 100
