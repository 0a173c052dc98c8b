"""A monitor's joint stage in the pipeline: which numeric block it tests, how it is fitted,
and how a run's message names the stage that fired (:mod:`detectors.joint` has the method).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detectors import registry as detector_registry
from detectors.joint import (
    MIN_BLOCK_FEATURES,
    BandwidthsMMD,
    BlockTest,
    Bonferroni,
    joint_family_size,
)
from detectors.verdict import WindowVerdict
from monitor.spec.model import MonitorConfig

# the feature name of the joint test's stored result: no declared feature can take it (names
# start with a letter or digit), and reports and alerts already read "*" as a test of several
# columns, with no column of its own to plot
JOINT_FEATURE = "*"
# rows a side the joint test uses by default: the cost of these tests is linear in them, the
# quadratic tests' (mmd, energy) grows with their square and their permutations
LINEAR_TESTS = frozenset({"fourier_mmd", "mahalanobis", "ks_pca"})
LINEAR_MAX_ROWS = 10_000
QUADRATIC_MAX_ROWS = 1000


def joint_columns(monitor: MonitorConfig, numeric: dict[str, np.ndarray]) -> list[str]:
    """The numeric features the joint stage tests together; none when it is off, when numeric
    features are not tested, or when there are fewer than two."""
    if monitor.joint is None or "numeric" not in monitor.tested_kinds():
        return []
    names = list(numeric)
    return names if len(names) >= MIN_BLOCK_FEATURES else []


def _build(monitor: MonitorConfig, name: str, device: str, family: int, per_test: int) -> Any:
    """One joint test, its permutations (if any) sized for its share of the level."""
    joint = monitor.joint
    assert joint is not None
    params = joint.params_of(name)
    if name == "fourier_mmd" and "bandwidths" not in params:
        params.setdefault("factors", joint.bandwidths)
    if name == "mmd" and "bandwidth" not in params:
        return BandwidthsMMD(
            factors=joint.bandwidths,
            device=device,
            alpha=monitor.alpha,
            family_size=family * per_test,
            n_permutations=params.get("n_permutations", "auto"),
            seed=params.get("seed", 0),
            options={k: v for k, v in params.items() if k not in ("n_permutations", "seed")},
        )
    return detector_registry.build(
        name,
        params,
        device=device,
        alpha=monitor.alpha,
        family_size=family * per_test,
        per_vector=False,
    )


def fit_joint(
    monitor: MonitorConfig, numeric: dict[str, np.ndarray], names: list[str], device: str
) -> BlockTest:
    """The joint test (several: Bonferroni-combined) fitted on the reference's ``names``
    columns."""
    joint = monitor.joint
    assert joint is not None
    family = joint_family_size(joint.share)
    tests = joint.detectors()
    built = [_build(monitor, name, device, family, len(tests)) for name in tests]
    detector = built[0] if len(built) == 1 else Bonferroni(built, alpha=monitor.alpha)
    linear = all(name in LINEAR_TESTS for name in tests)
    rows = joint.max_rows or (LINEAR_MAX_ROWS if linear else QUADRATIC_MAX_ROWS)
    block = BlockTest(detector, max_rows=rows)
    return block.fit(np.stack([numeric[n] for n in names], axis=1), names)


def score_joint(block: BlockTest, numeric: dict[str, np.ndarray]) -> Any:
    """The joint test's result on the window's columns, in the fitted order."""
    return block.score(np.stack([numeric[n] for n in block.features_], axis=1))


def stage_message(verdict: WindowVerdict, n_block: int, method: str) -> str:
    """What the run's message adds about the joint stage: whether it fired, and over what."""
    if not verdict.n_joint:
        return ""
    fired = "joint" in verdict.stages
    return (
        f"; joint test ({method} over {n_block} numeric features) "
        f"{'flagged' if fired else 'passed'} (p={verdict.p_value[-1]:.3g})"
    )
