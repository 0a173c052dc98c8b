"""The batched KS p-value (torch) against scipy.stats.kstwo.sf, over every branch scipy takes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from detectors.univariate.kolmogorov import kstwo_sf

# n across scipy's switches: tiny, <= 140 (Durbin/Pomeranz/exact sums), > 140, > 100,000 (Pelz-
# Good only), > 1,000,000 (smirnov's approximation)
SIZES = [1, 2, 5, 10, 57, 140, 141, 1000, 5000, 10_000, 100_001, 1_000_001]


def statistics(n: int) -> np.ndarray:
    scaled = np.linspace(0.0, 25.0, 60) / np.sqrt(n)  # sqrt(n) * D from 0 to 25
    ends = [0.4 / n, 0.8 / n, 1.0 / n, 1.5 / n, 0.5, 0.75, 1 - 1.5 / n, 1 - 0.5 / n, 1.0, 1.2]
    return np.unique(np.clip(np.concatenate([scaled, ends]), 0.0, 1.2))


@pytest.mark.parametrize("n", SIZES)
def test_equals_scipy(n: int) -> None:
    x = statistics(n)
    sizes = np.full(x.shape, float(n))
    expected = stats.kstwo.sf(x, sizes)
    got = kstwo_sf(torch.tensor(x), torch.tensor(sizes)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-300)
    assert ((expected > 0).sum() > 10 and (expected < 1e-10).any()) or n < 5


def test_mixed_sizes_in_one_call() -> None:
    rng = np.random.default_rng(0)
    sizes = rng.choice([30, 200, 4000, 20_000], size=200).astype(float)
    x = rng.uniform(0.0, 4.0, size=200) / np.sqrt(sizes)
    expected = stats.kstwo.sf(x, sizes)
    got = kstwo_sf(torch.tensor(x), torch.tensor(sizes)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-300)
