"""On a CUDA device the detectors give the CPU's answers (run where a GPU is present)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detectors import ChiSquareTest, KSTest, ProjectedKSTest

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_cuda_matches_cpu() -> None:
    rng = np.random.default_rng(0)
    ref, cur = rng.normal(size=(3000, 40)), rng.normal(size=(2000, 40)) + 0.05
    cpu = KSTest(device="cpu").fit(ref).score(cur)
    gpu = KSTest(device="cuda").fit(ref).score(cur)
    np.testing.assert_allclose(gpu.statistic, cpu.statistic, atol=1e-12)
    np.testing.assert_allclose(gpu.p_value, cpu.p_value, rtol=1e-9)
    cats = rng.choice(["a", "b", "c"], size=(500, 3)).astype(object)
    np.testing.assert_allclose(
        ChiSquareTest(device="cuda").fit(cats).score(cats[:300]).statistic,
        ChiSquareTest(device="cpu").fit(cats).score(cats[:300]).statistic,
        rtol=1e-9,
    )
    emb = rng.normal(size=(800, 16))
    assert ProjectedKSTest(device="cuda").fit(emb).score(emb).p_value == pytest.approx(
        float(ProjectedKSTest(device="cpu").fit(emb).score(emb).p_value[0]), rel=1e-6
    )


def test_fourier_mmd_on_cuda_matches_cpu() -> None:
    """Single-precision features on both devices: the p-values agree to a few digits."""
    from detectors.multivariate.fourier_mmd import FourierMMD

    rng = np.random.default_rng(1)
    ref, cur = rng.normal(size=(3000, 20)), rng.normal(size=(1000, 20)) * 1.05
    cpu = FourierMMD(device="cpu").fit(ref).score(cur)
    gpu = FourierMMD(device="cuda").fit(ref).score(cur)
    np.testing.assert_allclose(gpu.extra["p_values"], cpu.extra["p_values"], rtol=1e-3)
