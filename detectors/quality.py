"""Data quality of a window against a reference: missing values, ranges, constants, categories.

Drift tests ask whether the distribution moved; these checks ask whether the data is broken:
a feature that went missing, infinite values, values no reference row ever had, a column stuck
at one value, categories never seen before, record ids sent twice, images too dark or blurred.
Numeric checks run in torch over all features at once; categorical ones are Python sets and
counters (object values cannot go to a GPU).

Definitions (numeric features)
    ``missing_rate``: share of rows that are NaN. Infinities are not missing: they are counted
    in ``inf_count`` (``nan_count`` counts the NaN). ``out_of_range_share``: share of the finite
    current values outside the reference's finite [min, max] widened on each side by
    ``range_tolerance * (max - min)`` (``range_low``, ``range_high``); NaN when the window or
    the reference has no finite value. ``is_constant``: the window has exactly one distinct
    finite value while the reference had more than one.

Definitions (categorical features)
    Missing values are ``None``, float NaN and anything not equal to itself (pandas' NA and
    NaT). ``unseen_share``: share of the non-missing current values never seen in the
    reference (NaN without any); values are compared with ``==``, so ``1`` and ``"1"`` differ
    while ``1`` and ``1.0`` do not. ``unseen_categories``: those values, most frequent first,
    at most 20 per feature. ``is_constant`` as for numeric features.

Image checks
    A numeric feature named like one of ``image_features`` (``"brightness"`` itself, or
    ending in ``".brightness"`` or ``"_brightness"``) also gets the reference's 1st and 99th
    percentiles (of finite values, linear interpolation as ``numpy.percentile``) and the share
    of current finite values outside them. About 2% lie outside by construction, so only a
    clearly larger share (default threshold 5%) is reported as a problem.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np
import torch

from detectors.base import check_categories, check_matrix, feature_names
from detectors.device import resolve_device
from detectors.params import Params

MAX_UNSEEN_LISTED = 20  # unseen categories listed per feature; the share counts them all
IMAGE_PERCENTILES = (0.01, 0.99)


@dataclass(frozen=True)
class QualityThresholds:
    """When a finding is a problem; the defaults are the ones ``QualityReport.problems`` uses.

    ``missing_increase``: missing rate above the reference's by more than this (5 points).
    ``max_inf_count``: more infinite values than this in a feature (none allowed).
    ``out_of_range``, ``unseen``: more than this share out of range / unseen (1%).
    ``image_outside``: more than this share outside the 1st-99th percentile range (5%; 2% is
    expected without any change). ``max_duplicate_ids``: more duplicated ids than this (none).
    Constant features are always reported.
    """

    missing_increase: float = 0.05
    max_inf_count: int = 0
    out_of_range: float = 0.01
    unseen: float = 0.01
    image_outside: float = 0.05
    max_duplicate_ids: int = 0


@dataclass(frozen=True)
class NumericQuality:
    """Per numeric feature, one entry each (see the module docstring for the definitions)."""

    features: tuple[str, ...]
    missing_rate: np.ndarray
    reference_missing_rate: np.ndarray
    nan_count: np.ndarray
    inf_count: np.ndarray
    out_of_range_share: np.ndarray
    range_low: np.ndarray
    range_high: np.ndarray
    is_constant: np.ndarray


@dataclass(frozen=True)
class CategoricalQuality:
    """Per categorical feature, one entry each (see the module docstring for the definitions)."""

    features: tuple[str, ...]
    missing_rate: np.ndarray
    reference_missing_rate: np.ndarray
    unseen_share: np.ndarray
    unseen_categories: tuple[tuple[Any, ...], ...]
    is_constant: np.ndarray


@dataclass(frozen=True)
class ImageCheck:
    """The reference's 1st-99th percentile range of one image feature and the share outside."""

    low: float
    high: float
    outside_share: float


@dataclass(frozen=True)
class QualityReport:
    """Outcome of :meth:`DataQuality.score` on one window."""

    n_rows: int
    duplicate_ids: int | None  # ids appearing more than once; None when no ids were given
    numeric: NumericQuality
    categorical: CategoricalQuality
    image_checks: dict[str, ImageCheck] = field(default_factory=dict)

    def issues(self, thresholds: QualityThresholds | None = None) -> list[str]:
        """Human-readable findings beyond ``thresholds`` (the defaults when None), by feature."""
        t = thresholds or QualityThresholds()
        found: list[str] = []
        num = self.numeric
        for j, name in enumerate(num.features):
            found += _missing_and_constant(name, num, j, t)
            if num.inf_count[j] > t.max_inf_count:
                n = int(num.inf_count[j])
                found.append(f"feature {name!r}: {n} infinite value{'s' * (n != 1)}")
            if num.out_of_range_share[j] > t.out_of_range:
                found.append(
                    f"feature {name!r}: {num.out_of_range_share[j]:.1%} of values outside the "
                    f"reference range [{num.range_low[j]:.6g}, {num.range_high[j]:.6g}]"
                )
            check = self.image_checks.get(name)
            if check is not None and check.outside_share > t.image_outside:
                found.append(
                    f"image feature {name!r}: {check.outside_share:.1%} of values outside the "
                    f"reference 1st-99th percentile range [{check.low:.6g}, {check.high:.6g}]"
                )
        cat = self.categorical
        for j, name in enumerate(cat.features):
            found += _missing_and_constant(name, cat, j, t)
            if cat.unseen_share[j] > t.unseen:
                examples = ", ".join(repr(v) for v in cat.unseen_categories[j][:5])
                found.append(
                    f"feature {name!r}: {cat.unseen_share[j]:.1%} of values are categories "
                    f"never seen in the reference ({examples})"
                )
        if self.duplicate_ids is not None and self.duplicate_ids > t.max_duplicate_ids:
            n = self.duplicate_ids
            found.append(f"{n} record id{'s appear' if n != 1 else ' appears'} more than once")
        return found

    @property
    def problems(self) -> list[str]:
        """:meth:`issues` with the default :class:`QualityThresholds`."""
        return self.issues()


def _missing_and_constant(
    name: str, kind: NumericQuality | CategoricalQuality, j: int, t: QualityThresholds
) -> list[str]:
    found = []
    rate, ref_rate = float(kind.missing_rate[j]), float(kind.reference_missing_rate[j])
    if rate - ref_rate > t.missing_increase:
        found.append(f"feature {name!r}: {rate:.1%} missing (reference {ref_rate:.1%})")
    if kind.is_constant[j]:
        found.append(f"feature {name!r}: a single value in this window (the reference varied)")
    return found


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, and NaT
    except (TypeError, ValueError):  # pandas' NA refuses to be a bool: it is missing
        return True


def _plain(value: Any) -> Any:
    """numpy scalars as Python values, so reports show ``3`` and not ``np.int64(3)``."""
    return value.item() if isinstance(value, np.generic) else value


def _percentiles(columns: torch.Tensor, q: Sequence[float]) -> torch.Tensor:
    """(features, len(q)) percentiles of the finite values of each row of ``columns``.

    Linear interpolation between order statistics, as ``numpy.percentile``; NaN for a row
    without finite values. Sorting avoids ``torch.quantile``'s input-size limit.
    """
    finite = torch.isfinite(columns)
    counts = finite.sum(dim=1, keepdim=True)
    ordered = torch.where(finite, columns, torch.inf).sort(dim=1).values  # finite ones first
    qs = torch.as_tensor(q, dtype=columns.dtype, device=columns.device)[None, :]
    position = qs * (counts - 1).clamp(min=0)
    below = position.floor().long()
    above = (below + 1).clamp(max=(counts - 1).clamp(min=0).expand_as(below))
    fraction = position - below
    a, b = ordered.gather(1, below), ordered.gather(1, above)
    value = torch.where(fraction > 0, a + (b - a) * fraction, a)
    return torch.where(counts > 0, value, torch.nan)


def _finite_min_max(columns: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row: finite count, min and max of the finite values (+inf, -inf without any)."""
    finite = torch.isfinite(columns)
    low = torch.where(finite, columns, torch.inf).amin(dim=1)
    high = torch.where(finite, columns, -torch.inf).amax(dim=1)
    return finite.sum(dim=1), low, high


def _categorical_profile(column: np.ndarray) -> tuple[Counter[Any], int]:
    """Counts of the non-missing values and the number of missing ones."""
    kept = [value for value in column.tolist() if not _is_missing(value)]
    return Counter(kept), len(column) - len(kept)


def _is_image_feature(name: str, image_features: tuple[str, ...]) -> bool:
    return any(
        name == f or name.endswith("." + f) or name.endswith("_" + f) for f in image_features
    )


class DataQuality(Params):
    """Data quality checks of a window against a reference (see the module docstring).

    >>> import numpy as np
    >>> ref = np.array([[0.0, 1.0], [1.0, 2.0], [2.0, 3.0]])
    >>> cur = np.array([[0.5, np.nan], [9.0, np.inf], [1.0, 2.0]])
    >>> dq = DataQuality(device="cpu").fit(ref, numeric_names=["age", "income"])
    >>> report = dq.score(cur)
    >>> report.numeric.out_of_range_share.tolist()
    [0.3333333333333333, 0.0]
    >>> for problem in report.problems:
    ...     print(problem)
    feature 'age': 33.3% of values outside the reference range [0, 2]
    feature 'income': 33.3% missing (reference 0.0%)
    feature 'income': a single value in this window (the reference varied)
    feature 'income': 1 infinite value
    """

    def __init__(
        self,
        *,
        device: str = "auto",
        range_tolerance: float = 0.0,
        image_features: Sequence[str] = ("brightness", "contrast", "sharpness"),
    ) -> None:
        if not (isinstance(range_tolerance, int | float) and math.isfinite(range_tolerance)):
            raise ValueError(f"range_tolerance must be a finite number, got {range_tolerance!r}")
        if range_tolerance < 0:
            raise ValueError(f"range_tolerance must be >= 0, got {range_tolerance}")
        if isinstance(image_features, str) or not all(
            isinstance(f, str) and f for f in image_features
        ):
            raise ValueError(
                f"image_features must be a sequence of non-empty names, got {image_features!r}"
            )
        self.device = device
        self.range_tolerance = range_tolerance
        self.image_features = tuple(image_features)
        self._device = resolve_device(device)
        self._fitted = False
        self.numeric_names_: tuple[str, ...] = ()
        self.categorical_names_: tuple[str, ...] = ()

    def fit(
        self,
        reference_numeric: Any,
        reference_categorical: Any = None,
        *,
        numeric_names: Sequence[str] | None = None,
        categorical_names: Sequence[str] | None = None,
    ) -> Self:
        """Learn the reference's ranges, missing rates, categories and image percentiles.

        ``reference_numeric`` is (rows, features) of floats (NaN for missing); the optional
        ``reference_categorical`` is (rows, features) of strings, integers or missing values.
        Names default to the column numbers, categorical ones numbered after the numeric.
        """
        numeric = check_matrix(reference_numeric, name="reference_numeric")
        n_rows = numeric.shape[0]
        if n_rows == 0:
            raise ValueError("reference_numeric has no rows")
        categorical = self._categorical_input(reference_categorical, "reference", n_rows, None)
        n_numeric, n_categorical = numeric.shape[1], categorical.shape[1]
        num_names = feature_names(numeric_names, n_numeric)
        cat_names = feature_names(categorical_names, n_categorical)
        if categorical_names is None:  # "0", "1", ... on both sides would collide
            cat_names = tuple(str(n_numeric + j) for j in range(n_categorical))
        every = num_names + cat_names
        if len(set(every)) != len(every):
            raise ValueError(f"feature names must be distinct, got {every}")
        self.numeric_names_, self.categorical_names_ = num_names, cat_names
        self._has_categorical = reference_categorical is not None

        columns = torch.as_tensor(np.ascontiguousarray(numeric.T), device=self._device)
        finite_count, low, high = _finite_min_max(columns)
        span = (high - low) * self.range_tolerance
        self._range_low = torch.where(finite_count > 0, low - span, torch.nan)
        self._range_high = torch.where(finite_count > 0, high + span, torch.nan)
        self._ref_varies = (finite_count > 0) & (low < high)
        self._ref_missing = torch.isnan(columns).double().mean(dim=1)
        image = [
            j
            for j, n in enumerate(self.numeric_names_)
            if _is_image_feature(n, self.image_features)
        ]
        self._image_columns = image
        self._image_ranges = _percentiles(columns[image], IMAGE_PERCENTILES)

        self._ref_categories: list[set[Any]] = []
        ref_cat_missing, ref_cat_varies = [], []
        for j in range(categorical.shape[1]):
            counts, missing = _categorical_profile(categorical[:, j])
            self._ref_categories.append(set(counts))
            ref_cat_missing.append(missing / n_rows)
            ref_cat_varies.append(len(counts) > 1)
        self._ref_cat_missing = np.asarray(ref_cat_missing, dtype=np.float64)
        self._ref_cat_varies = np.asarray(ref_cat_varies, dtype=bool)
        self._fitted = True
        return self

    def _categorical_input(
        self, data: Any, side: str, n_rows: int, n_features: int | None
    ) -> np.ndarray:
        if data is None:
            return np.empty((n_rows, 0), dtype=object)
        array = check_categories(data, name=f"{side}_categorical", n_features=n_features)
        if array.shape[0] != n_rows:
            raise ValueError(
                f"{side}_categorical has {array.shape[0]} rows but {side}_numeric has {n_rows}"
            )
        return array

    def score(
        self,
        current_numeric: Any,
        current_categorical: Any = None,
        *,
        record_ids: Sequence[Any] | np.ndarray | None = None,
    ) -> QualityReport:
        """Check a window against the reference; ``record_ids`` (one per row) for duplicates."""
        if not self._fitted:
            raise RuntimeError("call fit(reference_numeric, ...) before score(current_numeric)")
        if self._has_categorical and current_categorical is None:
            raise ValueError("the reference had categorical features: pass current_categorical")
        if not self._has_categorical and current_categorical is not None:
            raise ValueError("the reference had no categorical features: fit with them first")
        numeric = check_matrix(
            current_numeric, name="current_numeric", n_features=len(self.numeric_names_)
        )
        n_rows = numeric.shape[0]
        if n_rows == 0:
            raise ValueError("current_numeric has no rows")
        categorical = self._categorical_input(
            current_categorical, "current", n_rows, len(self.categorical_names_)
        )
        return QualityReport(
            n_rows=n_rows,
            duplicate_ids=_duplicate_ids(record_ids, n_rows),
            numeric=self._numeric(numeric),
            categorical=self._categorical(categorical),
            image_checks=self._image_checks(numeric),
        )

    def _numeric(self, numeric: np.ndarray) -> NumericQuality:
        columns = torch.as_tensor(np.ascontiguousarray(numeric.T), device=self._device)
        n_rows = numeric.shape[0]
        nan_count = torch.isnan(columns).sum(dim=1)
        inf_count = torch.isinf(columns).sum(dim=1)
        finite_count, low, high = _finite_min_max(columns)
        outside = (columns < self._range_low[:, None]) | (columns > self._range_high[:, None])
        # integer counts divide to float32 in torch: divide in float64
        share = (outside & torch.isfinite(columns)).sum(dim=1).double() / finite_count
        share = torch.where(torch.isnan(self._range_low), torch.nan, share)
        constant = (finite_count > 0) & (low == high) & self._ref_varies
        return NumericQuality(
            features=self.numeric_names_,
            missing_rate=(nan_count.double() / n_rows).cpu().numpy(),
            reference_missing_rate=self._ref_missing.cpu().numpy(),
            nan_count=nan_count.cpu().numpy().astype(np.int64),
            inf_count=inf_count.cpu().numpy().astype(np.int64),
            out_of_range_share=share.cpu().numpy(),
            range_low=self._range_low.cpu().numpy(),
            range_high=self._range_high.cpu().numpy(),
            is_constant=constant.cpu().numpy(),
        )

    def _categorical(self, categorical: np.ndarray) -> CategoricalQuality:
        n_rows = categorical.shape[0]
        missing, unseen_share, unseen, constant = [], [], [], []
        for j, seen in enumerate(self._ref_categories):
            counts, n_missing = _categorical_profile(categorical[:, j])
            new = [(value, n) for value, n in counts.most_common() if value not in seen]
            present = n_rows - n_missing
            missing.append(n_missing / n_rows)
            unseen_share.append(sum(n for _, n in new) / present if present else math.nan)
            unseen.append(tuple(_plain(value) for value, _ in new[:MAX_UNSEEN_LISTED]))
            constant.append(len(counts) == 1 and bool(self._ref_cat_varies[j]))
        return CategoricalQuality(
            features=self.categorical_names_,
            missing_rate=np.asarray(missing, dtype=np.float64),
            reference_missing_rate=self._ref_cat_missing,
            unseen_share=np.asarray(unseen_share, dtype=np.float64),
            unseen_categories=tuple(unseen),
            is_constant=np.asarray(constant, dtype=bool),
        )

    def _image_checks(self, numeric: np.ndarray) -> dict[str, ImageCheck]:
        if not self._image_columns:
            return {}
        columns = torch.as_tensor(
            np.ascontiguousarray(numeric[:, self._image_columns].T), device=self._device
        )
        low, high = self._image_ranges[:, :1], self._image_ranges[:, 1:]
        finite = torch.isfinite(columns)
        outside = (((columns < low) | (columns > high)) & finite).sum(dim=1).double()
        share = outside / finite.sum(dim=1)  # NaN without finite values
        shares = torch.where(torch.isnan(low[:, 0]), torch.nan, share).cpu().numpy()
        ranges = self._image_ranges.cpu().numpy()
        return {
            self.numeric_names_[j]: ImageCheck(
                low=float(ranges[i, 0]), high=float(ranges[i, 1]), outside_share=float(shares[i])
            )
            for i, j in enumerate(self._image_columns)
        }


def _duplicate_ids(record_ids: Sequence[Any] | np.ndarray | None, n_rows: int) -> int | None:
    """How many ids appear more than once (missing ids are not ids and never count)."""
    if record_ids is None:
        return None
    ids = np.asarray(record_ids, dtype=object)
    if ids.ndim != 1 or len(ids) != n_rows:
        raise ValueError(f"record_ids must be 1-D with one id per row ({n_rows}), got {ids.shape}")
    counts = Counter(_plain(i) for i in ids.tolist() if not _is_missing(i))
    return sum(1 for n in counts.values() if n > 1)
