"""The plots are small, valid PNGs, and survive features without histograms."""

from __future__ import annotations

import dataclasses
import io

from PIL import Image

from alerts.notification import FeatureDrift, Notification
from alerts.plots import distribution_png, trend_png


def size(png: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"
        return image.size


def test_distribution(firing: Notification) -> None:
    assert size(distribution_png(firing.drifted[0])) == (640, 320)


def test_distribution_without_histograms() -> None:
    assert size(distribution_png(FeatureDrift("site", "chi2", None, None))) == (640, 320)


def test_trend(firing: Notification) -> None:
    assert size(trend_png(firing)) == (640, 320)
    assert size(trend_png(dataclasses.replace(firing, threshold=None))) == (640, 320)
