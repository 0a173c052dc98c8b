"""Prediction drift: what a model's outputs look like, as columns the drift tests compare.

Each task's outputs become named columns: categorical ones get the chi-squared test, numeric
ones KS (the defaults of :class:`PredictionDrift`; a monitor may choose others).

- classification: ``label`` (class mix), ``confidence`` (top probability) and ``entropy``
  (natural log) of the class probabilities;
- detection: per image ``boxes`` (count); per box ``box_class`` (class mix of boxes),
  ``box_area``, ``box_aspect`` (width / height) and ``box_score``;
- segmentation: ``area.<class>``, the area fraction of each class;
- regression: ``value``.

Per-box columns have one entry per box, not per image; they are padded with missing values to a
common length so every column of a task fits one table (missing values are left out by every
test).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np

from detectors.categorical.chisquare import ChiSquareTest
from detectors.correction import adjust
from detectors.params import Params
from detectors.result import DriftResult
from detectors.univariate.ks import KSTest


@dataclass(frozen=True)
class PredictionColumns:
    numeric: dict[str, np.ndarray]
    categorical: dict[str, np.ndarray]


def classification_columns(
    labels: Sequence[Any] | None, probabilities: np.ndarray | None
) -> PredictionColumns:
    """Class mix, confidence and entropy; either input may be missing (rows of NaN allowed)."""
    numeric: dict[str, np.ndarray] = {}
    categorical: dict[str, np.ndarray] = {}
    if labels is not None:
        categorical["label"] = np.asarray(list(labels), dtype=object)
    if probabilities is not None:
        p = np.asarray(probabilities, dtype=np.float64)
        if p.ndim != 2:
            raise ValueError(f"probabilities must be (rows, classes), got shape {p.shape}")
        numeric["confidence"] = p.max(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(p > 0, -p * np.log(p), 0.0)
        numeric["entropy"] = np.where(np.isnan(p).any(axis=1), np.nan, terms.sum(axis=1))
    return PredictionColumns(numeric, categorical)


def _box_value(box: Any, key: str) -> Any:
    return box[key] if isinstance(box, Mapping) else getattr(box, key)


def detection_columns(boxes: Sequence[Sequence[Any] | None]) -> PredictionColumns:
    """``boxes``: one list per image of boxes with ``label, score, x1, y1, x2, y2`` (mappings or
    objects). An image given as None is missing; an empty list is an image with no boxes."""
    flat = [b for image in boxes if image for b in image]
    n = max(len(boxes), len(flat))

    def pad(values: list[Any], fill: Any, dtype: Any) -> np.ndarray:
        out = np.full(n, fill, dtype=dtype)
        out[: len(values)] = values
        return out

    counts = [np.nan if image is None else float(len(image)) for image in boxes]
    width = np.array([_box_value(b, "x2") - _box_value(b, "x1") for b in flat], dtype=np.float64)
    height = np.array([_box_value(b, "y2") - _box_value(b, "y1") for b in flat], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        aspect = np.where(height > 0, width / height, np.nan)
    return PredictionColumns(
        numeric={
            "boxes": pad(counts, np.nan, np.float64),
            "box_area": pad(list(width * height), np.nan, np.float64),
            "box_aspect": pad(list(aspect), np.nan, np.float64),
            "box_score": pad([float(_box_value(b, "score")) for b in flat], np.nan, np.float64),
        },
        categorical={"box_class": pad([str(_box_value(b, "label")) for b in flat], None, object)},
    )


def segmentation_columns(areas: np.ndarray, classes: Sequence[str]) -> PredictionColumns:
    """``areas``: (rows, classes) area fraction of each class."""
    a = np.asarray(areas, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != len(classes):
        raise ValueError(f"areas must be (rows, {len(classes)}), got shape {a.shape}")
    return PredictionColumns({f"area.{c}": a[:, j] for j, c in enumerate(classes)}, {})


def regression_columns(values: Sequence[float] | np.ndarray) -> PredictionColumns:
    return PredictionColumns({"value": np.asarray(values, dtype=np.float64)}, {})


class PredictionDrift(Params):
    """Drift of a model's outputs: KS on the numeric columns, chi-squared on the categorical
    ones, Benjamini-Hochberg (or the given correction) across all of them together.

    Fit and score take :class:`PredictionColumns` (from the ``*_columns`` functions above).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ref = classification_columns(rng.choice(["a", "b"], 500), rng.dirichlet([1, 1], 500))
    >>> cur = classification_columns(["a"] * 300, rng.dirichlet([5, 1], 300))
    >>> res = PredictionDrift(device="cpu").fit(ref).score(cur)
    >>> dict(zip(res.features, res.drift.tolist()))
    {'confidence': True, 'entropy': True, 'label': True}
    """

    method = "prediction"

    def __init__(
        self, *, device: str = "auto", alpha: float = 0.05, correction: str = "bh"
    ) -> None:
        self.device = device
        self.alpha = alpha
        self.correction = correction
        self._numeric: KSTest | None = None
        self._categorical: ChiSquareTest | None = None
        self._names: tuple[list[str], list[str]] = ([], [])

    def fit(self, reference: PredictionColumns) -> Self:
        numeric, categorical = sorted(reference.numeric), sorted(reference.categorical)
        self._names = (numeric, categorical)
        self._numeric = self._categorical = None
        if numeric:
            self._numeric = KSTest(device=self.device, correction="none").fit(
                np.column_stack([reference.numeric[n] for n in numeric]), numeric
            )
        if categorical:
            self._categorical = ChiSquareTest(device=self.device, correction="none").fit(
                np.column_stack([reference.categorical[n] for n in categorical]), categorical
            )
        return self

    def score(self, current: PredictionColumns) -> DriftResult:
        numeric, categorical = self._names
        if not numeric and not categorical:
            raise RuntimeError("call fit(reference) before score(current)")
        missing = (set(numeric) - set(current.numeric)) | (
            set(categorical) - set(current.categorical)
        )
        if missing:
            raise ValueError(f"current predictions lack the columns {sorted(missing)}")
        parts: list[DriftResult] = []
        if self._numeric is not None:
            parts.append(
                self._numeric.score(np.column_stack([current.numeric[n] for n in numeric]))
            )
        if self._categorical is not None:
            parts.append(
                self._categorical.score(
                    np.column_stack([current.categorical[n] for n in categorical])
                )
            )
        p_value = np.concatenate([r.p_value for r in parts])
        p_adjusted = adjust(p_value, self.correction)
        return DriftResult(
            method=self.method,
            features=tuple(n for r in parts for n in r.features),
            statistic=np.concatenate([r.statistic for r in parts]),
            p_value=p_value,
            p_adjusted=p_adjusted,
            drift=np.nan_to_num(p_adjusted, nan=1.0) < self.alpha,
            threshold=self.alpha,
            correction=self.correction,
            n_reference=np.concatenate([r.n_reference for r in parts]),
            n_current=np.concatenate([r.n_current for r in parts]),
            extra={"test": np.array([r.method for r in parts for _ in r.features])},
        )
