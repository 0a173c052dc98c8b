"""Numbers in e-mails have 3 significant digits, directions are words, and a trend of one or
two points is drawn as points on an axis of hours, not years."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from matplotlib.dates import num2date

from alerts.email import render_email
from alerts.notification import Notification, TrendPoint
from alerts.plots import trend_figure
from tests.alerts.conftest import STARTED
from tests.alerts.test_email import SENDER, parts, visible


def performance_alert(
    firing: Notification, metric: str, value: float, threshold: float
) -> Notification:
    return dataclasses.replace(
        firing,
        kind="performance",
        drifted=[],
        metric=metric,
        threshold=threshold,
        trend=[TrendPoint(STARTED, value)],
        details={"value": value, "windows": 3},
    )


@pytest.mark.parametrize(
    ("metric", "value", "threshold", "line"),
    [
        ("accuracy", 0.7133526850507983, 0.85, "accuracy 0.713, below the threshold 0.85"),
        # an error metric: higher is worse, and the words follow the numbers
        ("mae", 2.4861, 2.0, "mae 2.49, above the threshold 2"),
    ],
)
def test_performance_numbers_and_direction(
    firing: Notification, metric: str, value: float, threshold: float, line: str
) -> None:
    text, body, _ = parts(render_email(performance_alert(firing, metric, value, threshold), SENDER))
    for content in (text, visible(body)):
        assert line in content
        assert repr(value) not in content  # never the raw float
        assert "windows: 3" in content or "windows 3" in content  # whole numbers as they are


def test_details_floats_are_rounded(firing: Notification) -> None:
    note = dataclasses.replace(firing, details={"share": 0.6666666666666666})
    text, body, _ = parts(render_email(note, SENDER))
    assert "share: 0.667" in text and "0.667" in visible(body)
    assert "0.6666" not in text + body


@pytest.mark.parametrize("count", [1, 2])
def test_a_short_trend_is_points_on_a_sensible_axis(firing: Notification, count: int) -> None:
    trend = [TrendPoint(STARTED + timedelta(minutes=30 * i), 0.8 + i / 100) for i in range(count)]
    axes = trend_figure(dataclasses.replace(firing, trend=trend)).axes[0]
    (line,) = axes.lines[:1]
    assert line.get_linestyle() == "None" and line.get_marker() == "o"
    low, high = (num2date(x) for x in axes.get_xlim())
    assert low < trend[0].at and trend[-1].at < high
    assert high - low <= timedelta(hours=3)  # matplotlib alone spans years around one point


def test_a_longer_trend_is_a_line(firing: Notification) -> None:
    axes = trend_figure(firing).axes[0]
    assert axes.lines[0].get_linestyle() == "-"
    low, high = (num2date(x) for x in axes.get_xlim())
    assert high - low < timedelta(days=8)  # the seven daily points and a margin
