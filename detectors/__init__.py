"""Pure computation: drift tests, performance metrics and estimates, data quality, streaming
concept drift. Batched in PyTorch (CUDA when present); knows nothing about HTTP or SQL; results
are numpy arrays and Python numbers.

Layout: ``univariate/`` (numeric features), ``categorical/``, ``multivariate/`` (embeddings),
``performance/`` (metrics with labels, CBPE and DLE without), ``prediction.py`` (prediction
drift), ``quality.py``, ``streaming.py``, ``registry.py`` (config names), ``correction.py``.

>>> from detectors import KSTest
>>> import numpy as np
>>> res = KSTest(device="cpu").fit(np.zeros((10, 1))).score(np.zeros((10, 1)))
>>> float(res.p_value[0])
1.0
"""

from detectors.categorical.chisquare import ChiSquareTest
from detectors.categorical.distances import CategoricalJensenShannon, CategoricalPSI, TotalVariation
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
    "JensenShannon",
    "KLDivergence",
    "KSTest",
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
