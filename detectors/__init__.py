"""Pure computation: drift tests, performance metrics and estimates, data quality, streaming
concept drift. Batched in PyTorch (CUDA when present); knows nothing about HTTP or SQL; results
are numpy arrays and Python numbers.

Layout: ``univariate/`` (numeric features), ``categorical/``, ``multivariate/`` (embeddings),
``performance/`` (metrics with labels, CBPE and DLE without), ``prediction.py`` (prediction
drift), ``quality.py``, ``streaming.py``, ``registry.py`` (config names), ``correction.py``,
``verdict.py`` (a window's verdict, as the service forms it), ``permutations.py`` (how many
permutations, and which), ``calibration.py`` (false alarms of every registry detector).

>>> from detectors import KSTest
>>> import numpy as np
>>> res = KSTest(device="cpu").fit(np.zeros((10, 1))).score(np.zeros((10, 1)))
>>> float(res.p_value[0])
1.0
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from detectors.categorical.chisquare import ChiSquareTest
    from detectors.categorical.distances import (
        CategoricalJensenShannon,
        CategoricalPSI,
        TotalVariation,
    )
    from detectors.correction import CORRECTIONS, adjust
    from detectors.multivariate.classifier import ClassifierTest
    from detectors.multivariate.energy import EnergyDistance
    from detectors.multivariate.mmd import MMD, LinearMMD
    from detectors.multivariate.per_vector import PerVector
    from detectors.multivariate.projected_ks import ProjectedKSTest
    from detectors.performance.cbpe import CBPE, PerformanceEstimate
    from detectors.performance.classification import ClassificationMetrics, classification_metrics
    from detectors.performance.detection import Box, DetectionMetrics, detection_metrics
    from detectors.performance.dle import DLE, RegressionEstimate
    from detectors.performance.importance import ImportanceWeightedCBPE
    from detectors.performance.regression import RegressionMetrics, regression_metrics
    from detectors.prediction import PredictionColumns, PredictionDrift
    from detectors.quality import DataQuality, QualityReport
    from detectors.registry import REGISTRY, DetectorSpec
    from detectors.result import DriftResult
    from detectors.streaming import STREAMING_DETECTORS, StreamingDriftDetector, make_streaming
    from detectors.univariate.anderson import AndersonDarlingTest
    from detectors.univariate.binned import PSI, Hellinger, JensenShannon, KLDivergence
    from detectors.univariate.cvm import CVMTest
    from detectors.univariate.ks import KSTest
    from detectors.univariate.wasserstein import WassersteinDistance
    from detectors.univariate.weighted_ks import KSWeightedKSTest

# Where each public name lives. They are imported on first use (PEP 562): importing the package,
# or `detectors.registry` for the configuration names, loads neither torch, scipy, scikit-learn
# nor frouros, so the commands that only read configuration start in a fraction of a second.
_WHERE = {
    "AndersonDarlingTest": "detectors.univariate.anderson",
    "Box": "detectors.performance.detection",
    "CBPE": "detectors.performance.cbpe",
    "ImportanceWeightedCBPE": "detectors.performance.importance",
    "CORRECTIONS": "detectors.correction",
    "CVMTest": "detectors.univariate.cvm",
    "CategoricalJensenShannon": "detectors.categorical.distances",
    "CategoricalPSI": "detectors.categorical.distances",
    "ChiSquareTest": "detectors.categorical.chisquare",
    "ClassificationMetrics": "detectors.performance.classification",
    "ClassifierTest": "detectors.multivariate.classifier",
    "DLE": "detectors.performance.dle",
    "DataQuality": "detectors.quality",
    "DetectionMetrics": "detectors.performance.detection",
    "DetectorSpec": "detectors.registry",
    "DriftResult": "detectors.result",
    "EnergyDistance": "detectors.multivariate.energy",
    "Hellinger": "detectors.univariate.binned",
    "JensenShannon": "detectors.univariate.binned",
    "KLDivergence": "detectors.univariate.binned",
    "KSTest": "detectors.univariate.ks",
    "KSWeightedKSTest": "detectors.univariate.weighted_ks",
    "LinearMMD": "detectors.multivariate.mmd",
    "MMD": "detectors.multivariate.mmd",
    "PSI": "detectors.univariate.binned",
    "PerVector": "detectors.multivariate.per_vector",
    "PerformanceEstimate": "detectors.performance.cbpe",
    "PredictionColumns": "detectors.prediction",
    "PredictionDrift": "detectors.prediction",
    "ProjectedKSTest": "detectors.multivariate.projected_ks",
    "QualityReport": "detectors.quality",
    "REGISTRY": "detectors.registry",
    "RegressionEstimate": "detectors.performance.dle",
    "RegressionMetrics": "detectors.performance.regression",
    "STREAMING_DETECTORS": "detectors.streaming",
    "StreamingDriftDetector": "detectors.streaming",
    "TotalVariation": "detectors.categorical.distances",
    "WassersteinDistance": "detectors.univariate.wasserstein",
    "adjust": "detectors.correction",
    "classification_metrics": "detectors.performance.classification",
    "detection_metrics": "detectors.performance.detection",
    "make_streaming": "detectors.streaming",
    "regression_metrics": "detectors.performance.regression",
}

__all__ = [
    "CBPE",
    "CORRECTIONS",
    "DLE",
    "MMD",
    "PSI",
    "REGISTRY",
    "STREAMING_DETECTORS",
    "AndersonDarlingTest",
    "Box",
    "CVMTest",
    "CategoricalJensenShannon",
    "CategoricalPSI",
    "ChiSquareTest",
    "ClassificationMetrics",
    "ClassifierTest",
    "DataQuality",
    "DetectionMetrics",
    "DetectorSpec",
    "DriftResult",
    "EnergyDistance",
    "Hellinger",
    "ImportanceWeightedCBPE",
    "JensenShannon",
    "KLDivergence",
    "KSTest",
    "KSWeightedKSTest",
    "LinearMMD",
    "PerVector",
    "PerformanceEstimate",
    "PredictionColumns",
    "PredictionDrift",
    "ProjectedKSTest",
    "QualityReport",
    "RegressionEstimate",
    "RegressionMetrics",
    "StreamingDriftDetector",
    "TotalVariation",
    "WassersteinDistance",
    "adjust",
    "classification_metrics",
    "detection_metrics",
    "make_streaming",
    "regression_metrics",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'detectors' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next look-up is an ordinary attribute
    return value
