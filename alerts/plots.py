"""Small PNG plots for notifications: one drifted feature's distributions, the performance trend.

E-mail clients show neither JavaScript nor SVG reliably, so plots are rendered here to PNG and
attached inline. matplotlib is imported inside the functions with the Agg backend (no display,
thread-safe enough for one figure per call), so importing ``alerts`` stays light and a service
that never sends mail never loads it.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from alerts.notification import FeatureDrift, Histogram, Notification

if TYPE_CHECKING:
    from matplotlib.figure import Figure

WIDTH, HEIGHT, DPI = 6.4, 3.2, 100  # 640 x 320 pixels: readable in a mail, a few tens of kB
REFERENCE_COLOUR, CURRENT_COLOUR = "#4c72b0", "#dd8452"
FEW = 3  # a trend of fewer points is drawn as points, without a line


def _figure() -> tuple[Figure, Any]:
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    figure = Figure(figsize=(WIDTH, HEIGHT), dpi=DPI, layout="constrained")
    return figure, figure.add_subplot()


def _png(figure: Figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # Agg: no display needed

    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return buffer.getvalue()


def _shares(histogram: Histogram) -> list[float]:
    total = sum(histogram.counts)
    return [c / total if total else 0.0 for c in histogram.counts]


def _number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}"


def distribution_png(drift: FeatureDrift) -> bytes:
    """Reference against current distribution of one feature, both as shares of their window.

    Shares, not counts: the reference usually holds many more rows than the current window,
    and counts would hide the shape that changed. Without histograms (categorical or vector
    features) the plot says so instead of failing, so the mail still renders.
    """
    figure, axes = _figure()
    title = (
        f"{drift.feature}: {drift.detector}, statistic {_number(drift.statistic)}, "
        f"p-value {_number(drift.p_value)}"
    )
    axes.set_title(title, fontsize=10)
    for histogram, label, colour in (
        (drift.reference, "reference", REFERENCE_COLOUR),
        (drift.current, "current", CURRENT_COLOUR),
    ):
        if histogram is None or len(histogram.edges) != len(histogram.counts) + 1:
            continue
        widths = [b - a for a, b in zip(histogram.edges[:-1], histogram.edges[1:], strict=True)]
        axes.bar(
            histogram.edges[:-1],
            _shares(histogram),
            width=widths,
            align="edge",
            alpha=0.55,
            color=colour,
            edgecolor=colour,
            label=label,
        )
    if axes.has_data():
        axes.legend(fontsize=9)
    else:
        axes.text(0.5, 0.5, "no histogram for this feature", ha="center", transform=axes.transAxes)
    axes.set_xlabel(drift.feature, fontsize=9)
    axes.set_ylabel("share of window", fontsize=9)
    axes.tick_params(labelsize=8)
    return _png(figure)


def trend_png(notification: Notification) -> bytes:
    """The performance metric over time, with the alert's threshold as a dashed line."""
    return _png(trend_figure(notification))


def trend_figure(notification: Notification) -> Figure:
    """The trend's figure. Fewer than ``FEW`` points are drawn as points alone, on an axis that
    spans them with a margin: a line through one or two points says nothing, and matplotlib's
    automatic date axis around a single point spans years."""
    from datetime import timedelta

    figure, axes = _figure()
    metric = notification.metric or "metric"
    axes.set_title(f"{notification.model} v{notification.version}: {metric}", fontsize=10)
    points = sorted(notification.trend, key=lambda p: p.at)
    if points:
        axes.plot(
            [p.at for p in points],
            [p.value for p in points],
            marker="o",
            markersize=3 if len(points) >= FEW else 6,
            linestyle="-" if len(points) >= FEW else "none",
            color=REFERENCE_COLOUR,
            label=metric,
        )
    if notification.threshold is not None:
        axes.axhline(
            notification.threshold,
            color="#c44e52",
            linestyle="--",
            label=f"threshold {_number(notification.threshold)}",
        )
    if axes.has_data():
        axes.legend(fontsize=9)
    axes.set_ylabel(metric, fontsize=9)
    axes.tick_params(labelsize=8)
    if points:
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

        if len(points) < FEW:
            span = points[-1].at - points[0].at
            margin = max(span / 2, timedelta(hours=1))
            axes.set_xlim(points[0].at - margin, points[-1].at + margin)
        locator = AutoDateLocator()
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    return figure
