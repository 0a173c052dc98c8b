"""Data quality of a detection window: the declared input features against the reference.

Runs beside the drift tests in every detection run whose monitor has ``quality`` on; each
check of each feature becomes one stored row, flagged as a problem beyond the default
thresholds of :class:`detectors.quality.QualityThresholds`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detectors.quality import DataQuality, QualityReport, QualityThresholds
from monitor.data.arrays import Columns
from monitor.spec.model import ModelSpec


@dataclass(frozen=True)
class QualityRow:
    feature: str
    check: str
    value: float | None
    reference_value: float | None
    problem: bool

    def __post_init__(self) -> None:
        # numpy booleans would reach the database driver otherwise
        object.__setattr__(self, "problem", bool(self.problem))


def _inputs(
    columns: Columns, spec: ModelSpec
) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    # only the declared inputs, cut to the table's rows (per-box prediction columns pad them)
    n = columns.n_rows
    numeric = [f.name for f in spec.features if f.kind == "numeric"]
    categorical = [f.name for f in spec.features if f.kind == "categorical"]
    num = (
        np.column_stack([columns.numeric[c][:n] for c in numeric]) if numeric else np.zeros((n, 0))
    )
    cat = (
        np.column_stack([columns.categorical[c][:n] for c in categorical])
        if categorical
        else np.zeros((n, 0), dtype=object)
    )
    return numeric, num, categorical, cat


def fit_quality(columns: Columns, spec: ModelSpec, device: str) -> DataQuality | None:
    numeric, num, categorical, cat = _inputs(columns, spec)
    if (not numeric and not categorical) or columns.n_rows == 0:
        return None
    return DataQuality(device=device).fit(
        num, cat, numeric_names=numeric, categorical_names=categorical
    )


def score_quality(quality: DataQuality, columns: Columns, spec: ModelSpec) -> list[QualityRow]:
    _, num, _, cat = _inputs(columns, spec)
    return report_rows(quality.score(num, cat))


def _num(value: float) -> float | None:
    value = float(value)
    return None if np.isnan(value) else value


def report_rows(report: QualityReport, t: QualityThresholds | None = None) -> list[QualityRow]:
    t = t or QualityThresholds()
    rows: list[QualityRow] = []
    num, cat = report.numeric, report.categorical
    for j, name in enumerate(num.features):
        missing, ref_missing = float(num.missing_rate[j]), float(num.reference_missing_rate[j])
        out = _num(num.out_of_range_share[j])
        rows += [
            QualityRow(
                name,
                "missing_rate",
                missing,
                ref_missing,
                missing - ref_missing > t.missing_increase,
            ),
            QualityRow(
                name, "inf_count", float(num.inf_count[j]), None, num.inf_count[j] > t.max_inf_count
            ),
            QualityRow(
                name, "out_of_range_share", out, None, out is not None and out > t.out_of_range
            ),
            QualityRow(name, "constant", float(num.is_constant[j]), None, bool(num.is_constant[j])),
        ]
        image = report.image_checks.get(name)
        if image is not None:
            share = _num(image.outside_share)
            problem = share is not None and share > t.image_outside
            rows.append(QualityRow(name, "image_outside_share", share, None, problem))
    for j, name in enumerate(cat.features):
        missing, ref_missing = float(cat.missing_rate[j]), float(cat.reference_missing_rate[j])
        unseen = _num(cat.unseen_share[j])
        rows += [
            QualityRow(
                name,
                "missing_rate",
                missing,
                ref_missing,
                missing - ref_missing > t.missing_increase,
            ),
            QualityRow(
                name, "unseen_share", unseen, None, unseen is not None and unseen > t.unseen
            ),
            QualityRow(name, "constant", float(cat.is_constant[j]), None, bool(cat.is_constant[j])),
        ]
    return rows
