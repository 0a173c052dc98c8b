"""Effect sizes: how much a feature moved, in the feature's own units.

A drift test says *whether* a window differs from the reference; these say *how much*, in
words a scientist can check ("brightness mean 0.55 -> 0.35, -2.1 sd"; "camera flowcam-3
0% -> 48%, new"). The reference side is summarised once (:meth:`EffectReference.fit`, cached
with the fitted detectors); each window is then compared with it (:meth:`EffectReference.compare`).
Every effect is a JSON-ready dict; a number that cannot be computed (no finite value, a
reference without spread) is ``None``.

Numeric features (``kind: "numeric"``)
    ``reference`` and ``current``: ``mean``, ``median``, ``p5``, ``p95`` (linear interpolation,
    as ``numpy.percentile``) and ``sd`` (sample standard deviation, ddof=1) of the finite
    values. ``mean_shift_sd``: (current mean - reference mean) / reference sd.
    ``size``: ``|mean_shift_sd|``.

Categorical features (``kind: "categorical"``; prediction.label is one: the class mix)
    Values are labelled with ``str()``; missing values (``None``, NaN) are left out of the
    shares. ``shares``: ``{"category", "reference", "current"}`` for at most ``MAX_CATEGORIES``
    categories, those whose share changed most first (ties by name). ``new``: categories of
    the window the reference never had; ``vanished``: the reverse (at most ``MAX_CATEGORIES``
    each, most frequent first). ``left_out``: how many categories ``shares`` does not list.
    ``total_variation`` (and ``size``): half the sum of the absolute share changes over all
    categories, the share of the window that would have to change category to match the
    reference (0 to 1).

Vectors and embeddings (``kind: "vector"``)
    Rows with a missing value are left out. The reference's first ``n_components`` principal
    components (eigenvectors of its sample covariance, largest variance first, each oriented
    so that its largest loading is positive) are the directions the reference varies along.
    ``mean_shift``: Euclidean length of (current mean - reference mean), in the embedding's
    units. ``components``: the ``MAX_COMPONENTS`` components the mean moved most along, each
    ``{"component": k (1 = largest variance), "variance_share": its share of the reference's
    total variance, "shift_sd": the mean's move along it in reference standard deviations}``.
    ``explained_share``: the share of the squared mean shift that lies in the span of those
    first components; a low share says the window moved in a direction the reference hardly
    varied in (a new kind of input). ``size``: the largest ``|shift_sd|``.

``size`` is one non-negative number per effect, to compare windows of the same feature.

>>> import numpy as np
>>> ref = EffectReference.fit(numeric={"x": np.array([1.0, 2, 3, 4, 5])})
>>> ref.compare(numeric={"x": np.array([4.0, 5, 6])})["x"]["mean_shift_sd"]
1.2649110640673518
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAX_CATEGORIES = 10  # categories listed per feature; total_variation counts them all
MAX_COMPONENTS = 3  # components listed per embedding, those the mean moved most along
N_COMPONENTS = 10  # reference principal components an embedding's shift is measured along

Effect = dict[str, Any]  # JSON-ready: str keys, numbers, strings, lists and dicts of them


def _num(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def numeric_summary(values: np.ndarray) -> dict[str, float | None]:
    """Mean, median, 5th and 95th percentile and sample sd of the finite values."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return dict.fromkeys(("mean", "median", "p5", "p95", "sd"))
    p5, median, p95 = np.percentile(finite, [5, 50, 95])
    sd = float(np.std(finite, ddof=1)) if finite.size > 1 else math.nan
    return {
        "mean": _num(np.mean(finite)),
        "median": _num(median),
        "p5": _num(p5),
        "p95": _num(p95),
        "sd": _num(sd),
    }


def numeric_summaries(matrix: np.ndarray) -> list[dict[str, float | None]]:
    """:func:`numeric_summary` of every column of a (rows, features) window. When every value
    is finite (the usual window) the percentiles, means and sds are taken for all columns in
    one call each, instead of one call per feature."""
    if not np.isfinite(matrix).all():
        return [numeric_summary(matrix[:, j]) for j in range(matrix.shape[1])]
    if matrix.shape[0] == 0:
        return [numeric_summary(matrix[:, j]) for j in range(matrix.shape[1])]
    # one sort per column (a fraction of np.percentile's cost along an axis), then numpy's
    # default "linear" rule: the value at (n - 1) * q, interpolated between its neighbours
    ordered = np.sort(np.ascontiguousarray(matrix.T), axis=1)
    at = (ordered.shape[1] - 1) * np.array([0.05, 0.5, 0.95])
    low, frac = np.floor(at).astype(int), at - np.floor(at)
    high = np.minimum(low + 1, ordered.shape[1] - 1)
    p5, median, p95 = (
        ordered[:, low[i]] + (ordered[:, high[i]] - ordered[:, low[i]]) * frac[i] for i in range(3)
    )
    mean = np.mean(matrix, axis=0)
    sd = np.std(matrix, axis=0, ddof=1) if matrix.shape[0] > 1 else np.full(len(mean), np.nan)
    return [
        {
            "mean": _num(mean[j]),
            "median": _num(median[j]),
            "p5": _num(p5[j]),
            "p95": _num(p95[j]),
            "sd": _num(sd[j]),
        }
        for j in range(matrix.shape[1])
    ]


def numeric_effect(
    reference: Mapping[str, float | None],
    values: np.ndarray,
    current: dict[str, float | None] | None = None,
) -> Effect:
    """``current``: the window's summary when already taken (see :func:`numeric_summaries`)."""
    current = numeric_summary(values) if current is None else current
    ref_mean, ref_sd, mean = reference["mean"], reference["sd"], current["mean"]
    shift = None
    if ref_mean is not None and mean is not None and ref_sd:
        shift = (mean - ref_mean) / ref_sd
    return {
        "kind": "numeric",
        "reference": dict(reference),
        "current": current,
        "mean_shift_sd": shift,
        "size": None if shift is None else abs(shift),
    }


def _missing(value: object) -> bool:
    return value is None or value != value  # NaN, pandas' NA and NaT are not equal to themselves


def category_shares(values: np.ndarray) -> dict[str, float]:
    """Share of each category among the non-missing values, labelled with ``str()``."""
    counts = Counter(str(v) for v in values if not _missing(v))
    total = sum(counts.values())
    return {category: n / total for category, n in counts.items()} if total else {}


def categorical_effect(reference: Mapping[str, float], values: np.ndarray) -> Effect:
    current = category_shares(values)
    changes = {
        c: (reference.get(c, 0.0), current.get(c, 0.0)) for c in set(reference) | set(current)
    }
    ranked = sorted(changes, key=lambda c: (-abs(changes[c][1] - changes[c][0]), c))
    listed = ranked[:MAX_CATEGORIES]
    new = sorted(set(current) - set(reference), key=lambda c: (-current[c], c))
    vanished = sorted(set(reference) - set(current), key=lambda c: (-reference[c], c))
    tv = 0.5 * sum(abs(cur - ref) for ref, cur in changes.values()) if current else None
    return {
        "kind": "categorical",
        "shares": [
            {"category": c, "reference": changes[c][0], "current": changes[c][1]} for c in listed
        ],
        "new": new[:MAX_CATEGORIES],
        "vanished": vanished[:MAX_CATEGORIES],
        "left_out": len(ranked) - len(listed),
        "total_variation": tv,
        "size": tv,
    }


@dataclass(frozen=True)
class VectorBasis:
    """A reference embedding's mean and its first principal components."""

    mean: np.ndarray  # (dim,)
    components: np.ndarray  # (dim, k), unit columns, largest variance first
    variances: np.ndarray  # (k,) the reference's variance along each component
    total_variance: float

    @classmethod
    def fit(cls, matrix: np.ndarray, n_components: int = N_COMPONENTS) -> VectorBasis | None:
        rows = matrix[np.isfinite(matrix).all(axis=1)]
        if len(rows) < 2:
            return None
        # the covariance's eigenvectors: (dim x dim) work, cheaper than an SVD of all rows
        cov = np.atleast_2d(np.cov(rows, rowvar=False))
        variances, vectors = np.linalg.eigh(cov)
        order = np.argsort(variances)[::-1][:n_components]
        variances, vectors = np.clip(variances[order], 0.0, None), vectors[:, order]
        # an eigenvector's sign is arbitrary: orient it so a shift's sign means the same each fit
        largest = np.abs(vectors).argmax(axis=0)
        vectors = vectors * np.sign(vectors[largest, np.arange(vectors.shape[1])])
        return cls(rows.mean(axis=0), vectors, variances, max(float(np.trace(cov)), 0.0))


def vector_effect(basis: VectorBasis, matrix: np.ndarray) -> Effect:
    rows = matrix[np.isfinite(matrix).all(axis=1)]
    if len(rows) == 0:
        return {
            "kind": "vector",
            "mean_shift": None,
            "explained_share": None,
            "components": [],
            "size": None,
        }
    shift = rows.mean(axis=0) - basis.mean
    along = shift @ basis.components
    norm2 = float(shift @ shift)
    sds = np.sqrt(basis.variances)
    shift_sd = [float(a / s) if s > 0 else None for a, s in zip(along, sds, strict=True)]
    moved = sorted(
        (k for k, s in enumerate(shift_sd) if s is not None), key=lambda k: -abs(shift_sd[k] or 0)
    )[:MAX_COMPONENTS]
    components = [
        {
            "component": k + 1,
            "variance_share": (
                float(basis.variances[k] / basis.total_variance) if basis.total_variance else None
            ),
            "shift_sd": shift_sd[k],
        }
        for k in moved
    ]
    return {
        "kind": "vector",
        "mean_shift": math.sqrt(norm2),
        "explained_share": float(along @ along) / norm2 if norm2 > 0 else None,
        "components": components,
        "size": abs(shift_sd[moved[0]] or 0.0) if moved else None,
    }


@dataclass(frozen=True)
class EffectReference:
    """What the effects need of a reference, per feature name (see the module docstring)."""

    numeric: dict[str, dict[str, float | None]] = field(default_factory=dict)
    categorical: dict[str, dict[str, float]] = field(default_factory=dict)
    vector: dict[str, VectorBasis | None] = field(default_factory=dict)

    @classmethod
    def fit(
        cls,
        *,
        numeric: Mapping[str, np.ndarray] | None = None,
        categorical: Mapping[str, np.ndarray] | None = None,
        vector: Mapping[str, np.ndarray] | None = None,
        n_components: int = N_COMPONENTS,
    ) -> EffectReference:
        return cls(
            numeric={n: numeric_summary(np.asarray(v, float)) for n, v in (numeric or {}).items()},
            categorical={n: category_shares(v) for n, v in (categorical or {}).items()},
            vector={
                n: VectorBasis.fit(np.asarray(v, float), n_components)
                for n, v in (vector or {}).items()
            },
        )

    def compare(
        self,
        *,
        numeric: Mapping[str, np.ndarray] | None = None,
        categorical: Mapping[str, np.ndarray] | None = None,
        vector: Mapping[str, np.ndarray] | None = None,
    ) -> dict[str, Effect]:
        """The effect of each given feature the reference knows, by feature name."""
        out: dict[str, Effect] = {}
        known = {n: np.asarray(v, float) for n, v in (numeric or {}).items() if n in self.numeric}
        lengths = {len(v) for v in known.values()}
        if len(lengths) == 1:  # one window: summarise every feature together
            summaries = numeric_summaries(np.column_stack(list(known.values())))
            for (name, values), summary in zip(known.items(), summaries, strict=True):
                out[name] = numeric_effect(self.numeric[name], values, summary)
        else:
            for name, values in known.items():
                out[name] = numeric_effect(self.numeric[name], values)
        for name, values in (categorical or {}).items():
            if name in self.categorical:
                out[name] = categorical_effect(self.categorical[name], values)
        for name, values in (vector or {}).items():
            basis = self.vector.get(name)
            if basis is not None:
                out[name] = vector_effect(basis, np.asarray(values, float))
        return out
