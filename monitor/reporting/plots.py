"""The report's plots: one per feature, drawn for the kind of column its detector tested.

Numbers get histograms of reference and current (shares of each side, on shared bins, with the
reference's 5th-95th percentiles marked); categories, and the class mix of the predictions,
horizontal bars of each category's share on both sides (categories new in the window or
vanished from it said in the label); vectors and embeddings a 2-D projection of reference and
current points: along the move of the mean, and along the reference's main direction across
that move (:func:`projection_axes`).

Every plot is a PNG data URI (the report's Content-Security-Policy allows images from data:
only). Each figure is a ``Figure`` of its own, never pyplot's global state, which is not safe
across the threads reports render in. Fewer than ``FEW`` values on a side are drawn as points
on an axis that spans them with a margin: a histogram of two values says nothing.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

WIDTH, HEIGHT, DPI = 4.2, 2.7, 80  # 336 x 216 pixels: three to a row on a laptop screen
REFERENCE, CURRENT = "#1f77b4", "#d62728"
FEW = 3  # fewer values than this on a side are drawn as points
MAX_BARS = 12  # categories drawn; the rest are summed into one "other" bar
MAX_POINTS = 1500  # points drawn per side in a projection (a deterministic subsample)
LABEL_CHARS = 28  # category labels are cut to this many characters


def _figure(height: float = HEIGHT) -> tuple[Figure, Any]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH, height), dpi=DPI, layout="constrained")
    return figure, figure.add_subplot()


def _data_uri(figure: Figure) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def plain(text: str, limit: int = LABEL_CHARS) -> str:
    """``text`` as matplotlib should draw it, literally: ``$`` would start mathtext (and an
    unbalanced one fails the whole figure), so it is escaped; long labels are cut.

    >>> plain("cost $5 and $6"), plain("x" * 40, limit=5)
    ('cost \\\\$5 and \\\\$6', 'xxxx…')
    """
    cut = text if len(text) <= limit else text[: limit - 1] + "\u2026"
    return cut.replace("$", r"\$")


def _finish(axes: Any, title: str) -> None:
    axes.set_title(plain(title, 60), fontsize=10)
    axes.tick_params(labelsize=8)


def _points(axes: Any, reference: np.ndarray, current: np.ndarray) -> None:
    """Each side's values as points on its own row, on an axis with a margin around them."""
    for row, values, colour, label in (
        (1, reference, REFERENCE, "reference"),
        (0, current, CURRENT, "current"),
    ):
        axes.plot(values, np.full(values.size, row), "o", color=colour, label=label, markersize=7)
    everything = np.concatenate([reference, current])
    low, high = float(everything.min()), float(everything.max())
    margin = max((high - low) / 2, abs(high) * 0.1, 1.0) if high == low else (high - low) * 0.25
    axes.set_xlim(low - margin, high + margin)
    axes.set_ylim(-0.8, 1.8)
    axes.set_yticks([0, 1], ["current", "reference"])


def numeric_png(feature: str, reference: np.ndarray, current: np.ndarray) -> str | None:
    """:func:`numeric_figure` as a data URI."""
    figure = numeric_figure(feature, reference, current)
    return None if figure is None else _data_uri(figure)


def numeric_figure(feature: str, reference: np.ndarray, current: np.ndarray) -> Figure | None:
    """Histograms (shares of each side) on shared bins, the reference's p5 and p95 dashed, or
    points when a side has fewer than ``FEW`` values; None when a side has no finite value."""
    reference = reference[np.isfinite(reference)]
    current = current[np.isfinite(current)]
    if not reference.size or not current.size:
        return None
    figure, axes = _figure()
    if min(reference.size, current.size) < FEW:
        _points(axes, reference, current)
    else:
        edges = np.histogram_bin_edges(np.concatenate([reference, current]), bins=30)
        for values, colour, label in (
            (reference, REFERENCE, "reference"),
            (current, CURRENT, "current"),
        ):
            weights = np.full(values.size, 1 / values.size)
            axes.hist(values, bins=edges, weights=weights, alpha=0.55, color=colour, label=label)
        for q in np.percentile(reference, [5, 95]):
            axes.axvline(float(q), color=REFERENCE, linestyle="--", linewidth=1)
        axes.set_ylabel("share", fontsize=8)
    axes.legend(fontsize=7, frameon=False)
    _finish(axes, feature)
    return figure


def shares(values: Sequence[Any] | np.ndarray) -> dict[str, float]:
    """Share of each category among the non-missing values (labelled with ``str``).

    >>> shares(["a", "b", "a", None])
    {'a': 0.6666666666666666, 'b': 0.3333333333333333}
    """
    kept = [str(v) for v in values if v is not None and v == v]  # NaN is not equal to itself
    if not kept:
        return {}
    names, counts = np.unique(np.asarray(kept, dtype=object), return_counts=True)
    return {str(n): float(c) / len(kept) for n, c in zip(names, counts, strict=True)}


def bar_rows(
    reference: dict[str, float], current: dict[str, float], order: Sequence[str] = ()
) -> list[tuple[str, float, float]]:
    """(label, reference share, current share) per bar: ``order`` first (a model's classes),
    then the largest categories; beyond ``MAX_BARS`` the rest as one "other" bar. Categories
    only one side has are labelled "new" or "vanished".

    >>> bar_rows({"a": 0.5, "b": 0.5}, {"a": 0.4, "c": 0.6})
    [('c (new)', 0.0, 0.6), ('a', 0.5, 0.4), ('b (vanished)', 0.5, 0.0)]
    """
    names = set(reference) | set(current)
    ranked = sorted(names, key=lambda c: (-max(reference.get(c, 0.0), current.get(c, 0.0)), c))
    chosen = [c for c in order if c in names] + [c for c in ranked if c not in order]
    shown, rest = chosen[:MAX_BARS], chosen[MAX_BARS:]
    rows = []
    for c in shown:
        ref, cur = reference.get(c, 0.0), current.get(c, 0.0)
        mark = " (new)" if ref == 0 and cur > 0 else " (vanished)" if cur == 0 and ref > 0 else ""
        rows.append((plain(c) + mark, ref, cur))
    if rest:
        rows.append(
            (
                f"{len(rest)} other",
                sum(reference.get(c, 0.0) for c in rest),
                sum(current.get(c, 0.0) for c in rest),
            )
        )
    return rows


def categorical_png(
    feature: str,
    reference: dict[str, float],
    current: dict[str, float],
    order: Sequence[str] = (),
) -> str | None:
    """Bars of each category's share, reference and current side by side; None without any."""
    rows = bar_rows(reference, current, order)
    if not rows:
        return None
    figure, axes = _figure(max(HEIGHT, 0.9 + 0.28 * len(rows)))
    y = np.arange(len(rows))[::-1]  # the first row on top
    axes.barh(y + 0.2, [r[1] for r in rows], height=0.4, color=REFERENCE, label="reference")
    axes.barh(y - 0.2, [r[2] for r in rows], height=0.4, color=CURRENT, label="current")
    axes.set_yticks(y, [r[0] for r in rows])
    axes.set_xlim(0, max(0.05, *(max(r[1], r[2]) for r in rows)) * 1.15)
    axes.set_xlabel("share", fontsize=8)
    axes.legend(fontsize=7, frameon=False)
    _finish(axes, feature)
    return _data_uri(figure)


def _finite_rows(matrix: np.ndarray) -> np.ndarray:
    return matrix[np.isfinite(matrix).all(axis=1)] if matrix.ndim == 2 else matrix[:0]


def projection_axes(
    reference: np.ndarray, current: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The reference's mean, two orthonormal directions (rows) to project on, and their names.

    The first direction is the move of the mean (current minus reference), the second the
    reference's first principal component across it (from an SVD of the centred reference with
    the move projected out). The reference's own first two components (the usual PCA) are the
    fallback when the mean did not move; they alone would hide a move along a direction the
    reference hardly varies in, which is just the move a new kind of input makes.

    >>> ref = np.array([[0.0, 0, 0], [2, 0, 0], [0, 1, 0], [2, 1, 0]])
    >>> mean, axes, names = projection_axes(ref, ref + [0, 0, 3])
    >>> axes.round(3).tolist(), names[0]
    ([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], "along the mean's move")
    """
    mean = reference.mean(axis=0)
    centred = reference - mean
    move = current.mean(axis=0) - mean
    scale = float(np.sqrt((centred**2).sum(axis=1).mean())) or 1.0
    directions = np.zeros((2, reference.shape[1]))
    if np.linalg.norm(move) > 1e-9 * scale:
        directions[0] = move / np.linalg.norm(move)
        across = centred - np.outer(centred @ directions[0], directions[0])
        names = ["along the mean's move", "reference's main direction across it"]
        first = 1
    else:
        across = centred
        names = ["reference PC1", "reference PC2"]
        first = 0
    _, _, vt = np.linalg.svd(across, full_matrices=False)
    for row in range(first, 2):
        if row - first < vt.shape[0]:
            component = vt[row - first]
            directions[row] = component * (1 if component[np.argmax(np.abs(component))] > 0 else -1)
    return mean, directions, names


def _subsample(matrix: np.ndarray, seed: int) -> np.ndarray:
    if len(matrix) <= MAX_POINTS:
        return matrix
    rng = np.random.default_rng(seed)
    return matrix[np.sort(rng.choice(len(matrix), MAX_POINTS, replace=False))]


def projection_png(feature: str, reference: np.ndarray, current: np.ndarray) -> str | None:
    """Reference and current points on the reference's first two principal components, each
    side's mean as a cross; None when a side has no complete row."""
    reference, current = _finite_rows(reference), _finite_rows(current)
    if not len(reference) or not len(current):
        return None
    mean, directions, names = projection_axes(reference, current)
    ref_xy = (_subsample(reference, 0) - mean) @ directions.T
    cur_xy = (_subsample(current, 1) - mean) @ directions.T
    # each axis's share of the reference's variance: how much of it the picture shows
    total = float(((reference - mean) ** 2).sum(axis=1).mean()) or 1.0
    share = [float((((reference - mean) @ d) ** 2).mean()) / total for d in directions]
    figure, axes = _figure()
    size = 12 if min(len(ref_xy), len(cur_xy)) < FEW else 5
    axes.scatter(ref_xy[:, 0], ref_xy[:, 1], s=size, alpha=0.35, color=REFERENCE, label="reference")
    axes.scatter(cur_xy[:, 0], cur_xy[:, 1], s=size, alpha=0.35, color=CURRENT, label="current")
    for points, colour in ((ref_xy, REFERENCE), (cur_xy, CURRENT)):
        centre = points.mean(axis=0)
        axes.plot(centre[0], centre[1], "X", color=colour, markersize=10, markeredgecolor="k")
    both = np.concatenate([ref_xy, cur_xy])
    low, high = both.min(axis=0), both.max(axis=0)
    pad = np.maximum((high - low) * 0.08, 0.5 * (high == low) + 1e-9)
    axes.set_xlim(low[0] - pad[0], high[0] + pad[0])
    axes.set_ylim(low[1] - pad[1], high[1] + pad[1])
    axes.set_xlabel(f"{names[0]} ({100 * share[0]:.3g}% of ref. variance)", fontsize=8)
    axes.set_ylabel(f"{names[1]} ({100 * share[1]:.3g}%)", fontsize=7)
    axes.legend(fontsize=7, frameon=False, markerscale=2)
    _finish(axes, f"{feature}: 2-D projection")
    return _data_uri(figure)
