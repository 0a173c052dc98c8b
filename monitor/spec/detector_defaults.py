"""Which drift test runs on which kind of column when a monitor does not say.

Light on purpose (no pydantic, no detectors): the status reads stored monitor configurations
through it without validating whole specs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

COLUMN_KINDS = ("numeric", "categorical", "vector")
# KS and the variance-weighted KS, Cauchy-combined, on numeric columns: with the joint stage, at
# or above the better of KS and one MMD in every cell of benchmarks/quality.py, and far above
# KS and Anderson-Darling where a change reaches the tails (a few values moved to an extreme, a
# change of scale), where Anderson-Darling, the default before it, fell short of KS on the
# mildest shift of the bulk (README, Measured: detection quality)
DEFAULT_DETECTORS: dict[str, str] = {
    "numeric": "ks_weighted_ks",
    "categorical": "chi2",
    "vector": "ks_mmd",
}
# the joint stage's share of a monitor's false-alarm budget (detectors.joint): the smallest of
# 0.05, 0.1 and 0.2 whose default still caught more than one MMD and per-feature KS in every
# cell where the joint test is what sees the change (benchmarks/quality.py, 50 windows a cell)
JOINT_SHARE = 0.1
# the joint stage's tests, Bonferroni-combined (detectors.joint.Bonferroni): each catches
# changes the others miss (benchmarks/quality.py)
JOINT_DETECTORS = ("fourier_mmd", "mahalanobis", "ks_pca")
# a kind mapped to this is deliberately not tested (and the status says so)
NOT_TESTED = "none"


def merged(detectors: Mapping[str, Any]) -> dict[str, Any]:
    """A monitor's ``detectors`` over the defaults: a mapping changes only the kinds it names
    ({"numeric": "psi"} keeps chi2 and ks_mmd); an empty mapping tests nothing (a monitor of
    performance only)."""
    return {**DEFAULT_DETECTORS, **detectors} if detectors else {}


def tested_kinds(detectors: Mapping[str, Any]) -> list[str]:
    """The column kinds a (merged) ``detectors`` mapping runs a test on."""
    return [k for k in COLUMN_KINDS if detectors.get(k, NOT_TESTED) != NOT_TESTED]


def untested_features(
    features: list[Mapping[str, Any]], detectors: Mapping[str, Any], only: list[str] | None
) -> list[str]:
    """Names of the declared input features (``only`` those, if given) of a kind left untested."""
    tested = set(tested_kinds(detectors))
    return [
        f["name"]
        for f in features
        if f["kind"] not in tested and (only is None or f["name"] in only)
    ]
