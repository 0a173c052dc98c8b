"""Output adapters, checked against predictions the server validates."""

from __future__ import annotations

import numpy as np
import pytest

from collectors import adapters
from collectors.wire import Prediction


def test_classification_picks_the_top_class_and_validates() -> None:
    out = adapters.classification(np.array([0.2, 0.5, 0.3]), ["a", "b", "c"])
    assert out == {"label": "b", "probabilities": [0.2, 0.5, 0.3]}
    assert adapters.classification(None, ["a"], label="a") == {"label": "a"}
    Prediction.model_validate(out)
    with pytest.raises(ValueError, match="2 probabilities for 3 classes"):
        adapters.classification([0.5, 0.5], ["a", "b", "c"])


def test_detection_sorts_filters_and_names_boxes() -> None:
    out = adapters.detection(
        [[0, 0, 10, 5], [1, 1, 2, 2], [5, 5, 9, 9]],
        [0, 1, 0],
        [0.3, 0.9, 0.05],
        classes=["bottle", "bag"],
        min_score=0.1,
    )
    assert [b["label"] for b in out["boxes"]] == ["bag", "bottle"]  # by score, 0.05 left out
    assert out["boxes"][1] == {"label": "bottle", "score": 0.3, "x1": 0, "y1": 0, "x2": 10, "y2": 5}
    Prediction.model_validate(out)
    assert (
        len(adapters.detection(np.zeros((5, 4)), ["a"] * 5, np.ones(5), max_boxes=2)["boxes"]) == 2
    )
    with pytest.raises(ValueError, match="pass classes"):
        adapters.detection([[0, 0, 1, 1]], [0], [0.5])


def test_segmentation_area_fractions() -> None:
    mask = np.array([[0, 0, 1, 1], [0, 0, 2, 2]])
    out = adapters.segmentation(mask, ["water", "oil", "ship"])
    assert out == {"areas": {"water": 0.5, "oil": 0.25, "ship": 0.25}}
    Prediction.model_validate(out)
    with pytest.raises(ValueError, match="class indices"):
        adapters.segmentation(np.array([[0, 3]]), ["water", "oil", "ship"])
    with pytest.raises(ValueError, match="2-D"):
        adapters.segmentation(np.zeros((2, 2)), ["water"])


def test_regression_and_mappings() -> None:
    assert adapters.regression(np.float32(2.5)) == {"value": 2.5}
    assert adapters.from_mapping({"label": "a", "extra": 1}) == {"label": "a"}
    assert adapters.from_mapping({"probabilities": [0.1, 0.9]}, ["a", "b"])["label"] == "b"
    with pytest.raises(ValueError, match="no prediction fields"):
        adapters.from_mapping({"score": 1})
