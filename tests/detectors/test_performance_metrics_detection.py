"""Object detection metrics: box IoU and per-class AP, mAP, precision and recall against
hand-worked fixtures, bad input and properties. Tolerances: see ``performance_helpers``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.performance.detection import Box, box_iou, detection_metrics
from tests.detectors.performance_helpers import TOL, _missed_box_case


def test_iou_of_hand_computed_boxes() -> None:
    a = [[0, 0, 2, 2]]
    others = [
        [1, 1, 3, 3],  # overlap 1x1 = 1, union 4 + 4 - 1 = 7
        [0, 0, 2, 1],  # inside, half the area: 2 / 4
        [2, 0, 4, 2],  # touching edges only: 0
        [5, 5, 6, 6],  # apart: 0
        [0, 0, 2, 2],  # identical: 1
        [-1, -1, 3, 3],  # contains a: 4 / 16
    ]
    np.testing.assert_allclose(
        box_iou(a, others, device="cpu"), [[1 / 7, 0.5, 0.0, 0.0, 1.0, 0.25]], atol=TOL
    )
    assert box_iou([[1, 1, 1, 1]], [[1, 1, 1, 1]], device="cpu")[0, 0] == 0.0  # no area at all
    assert box_iou(np.zeros((0, 4)), a, device="cpu").shape == (0, 1)


def test_detection_duplicate_and_wrong_class() -> None:
    gt = [[Box("cat", 0, 0, 10, 10), Box("cat", 20, 20, 30, 30)]]
    pred = [
        [
            Box("cat", 0, 0, 10, 10, 0.9),  # IoU 1 with the first cat: TP
            Box("cat", 1, 1, 10, 10, 0.8),  # IoU 0.81 with the same, already taken cat: FP
            Box("dog", 20, 20, 30, 30, 0.7),  # right place, wrong class (no dog in truth): FP
        ]
    ]
    m = detection_metrics(gt, pred, classes=["cat", "dog"], device="cpu")
    # cat, by score: TP, FP -> P = 1, 1/2 at R = 1/2, 1/2; envelope 1 up to R = 1/2, then 0
    # AP = 1/2 * 1 = 0.5. dog has no ground truth: AP NaN, left out of mAP -> mAP = 0.5
    assert m.average_precision[0] == pytest.approx(0.5, abs=TOL)
    assert np.isnan(m.average_precision[1])
    assert m.mean_average_precision == pytest.approx(0.5, abs=TOL)
    np.testing.assert_allclose(m.precision, [0.5, 0.0], atol=TOL)
    np.testing.assert_allclose(m.recall, [0.5, 0.0], atol=TOL)
    assert m.true_positives.tolist() == [1, 0] and m.n_predictions.tolist() == [2, 1]
    assert m.n_ground_truth.tolist() == [2, 0]
    # micro: 1 TP of 3 predictions, 1 of 2 ground-truth boxes
    assert m.precision_overall == pytest.approx(1 / 3, abs=TOL)
    assert m.recall_overall == pytest.approx(0.5, abs=TOL)


def test_detection_missed_box_and_envelope() -> None:
    gt, pred = _missed_box_case()
    m = detection_metrics(gt, pred, classes=["cat"], device="cpu")
    # by score: TP TP FP TP -> P = 1, 1, 2/3, 3/4 at R = 1/4, 1/2, 1/2, 3/4
    # envelope (max to the right): 1, 1, 3/4, 3/4
    # AP = 1/4 * 1 + 1/4 * 1 + 0 * 3/4 + 1/4 * 3/4 = 0.6875 (R never reaches 1: a miss)
    assert m.average_precision[0] == pytest.approx(0.6875, abs=TOL)
    assert m.mean_average_precision == pytest.approx(0.6875, abs=TOL)
    assert m.precision[0] == pytest.approx(0.75, abs=TOL)
    assert m.recall[0] == pytest.approx(0.75, abs=TOL)
    # only scores >= 0.5 count for precision/recall: TP TP FP -> 2/3 and 2/4; AP unchanged
    cut = detection_metrics(gt, pred, classes=["cat"], score_threshold=0.5, device="cpu")
    assert cut.precision[0] == pytest.approx(2 / 3, abs=TOL)
    assert cut.recall[0] == pytest.approx(0.5, abs=TOL)
    assert cut.average_precision[0] == pytest.approx(0.6875, abs=TOL)
    # a stricter IoU: the 0.5 box becomes an FP -> FP TP FP TP: P = 0, 1/2, 1/3, 1/2 at
    # R = 0, 1/4, 1/4, 1/2; envelope 1/2 everywhere up to R = 1/2 -> AP = 1/2 * 1/2 = 0.25
    strict = detection_metrics(gt, pred, classes=["cat"], iou_threshold=0.6, device="cpu")
    assert strict.average_precision[0] == pytest.approx(0.25, abs=TOL)


def test_detection_several_images() -> None:
    gt = [
        [Box("cat", 0, 0, 10, 10), Box("dog", 50, 50, 60, 60)],
        [Box("cat", 0, 0, 10, 10), Box("cat", 100, 100, 110, 110)],
        [],
    ]
    pred: list[list[Box | dict[str, Any]]] = [
        [
            {"cls": "cat", "x_min": 0, "y_min": 0, "x_max": 10, "y_max": 10, "score": 0.6},
            {"class": "dog", "x_min": 50, "y_min": 50, "x_max": 60, "y_max": 60, "score": 0.9},
            {"cls": "cat", "x_min": 50, "y_min": 50, "x_max": 60, "y_max": 60, "score": 0.8},
        ],
        [
            Box("cat", 0, 0, 10, 10, 0.7),
            Box("cat", 100, 100, 110, 110, 0.4),
            # where image 0 has its dog, but this image has none: FP
            Box("dog", 50, 50, 60, 60, 0.95),
        ],
        [Box("cat", 0, 0, 5, 5, 0.65)],  # an image with no objects: FP
    ]
    m = detection_metrics(gt, pred, classes=["cat", "dog"], device="cpu")
    # cat by score: 0.8 FP, 0.7 TP, 0.65 FP, 0.6 TP, 0.4 TP with 3 ground-truth cats
    # P = 0, 1/2, 1/3, 1/2, 3/5 at R = 0, 1/3, 1/3, 2/3, 1; envelope 3/5 throughout
    # AP = (1/3 + 1/3 + 1/3) * 3/5 = 0.6
    # dog: 0.95 FP, 0.9 TP with 1 dog: P = 0, 1/2 at R = 0, 1 -> AP = 1 * 1/2 = 0.5
    np.testing.assert_allclose(m.average_precision, [0.6, 0.5], atol=TOL)
    assert m.mean_average_precision == pytest.approx(0.55, abs=TOL)
    np.testing.assert_allclose(m.precision, [3 / 5, 1 / 2], atol=TOL)
    np.testing.assert_allclose(m.recall, [1.0, 1.0], atol=TOL)
    # micro: 4 TP of 7 predictions; all 4 objects found
    assert m.precision_overall == pytest.approx(4 / 7, abs=TOL)
    assert m.recall_overall == pytest.approx(1.0, abs=TOL)
    assert m.n_images == 3


def test_detection_matches_the_best_unmatched_box_not_the_first() -> None:
    gt = [[Box("x", 0, 0, 10, 10), Box("x", 2, 0, 12, 10)]]
    pred = [
        [
            # IoU 85/115 = 0.739 with the first box, 95/105 = 0.905 with the second: takes the
            # second. Taking the first (also >= 0.7) would leave the next one without a match.
            Box("x", 1.5, 0, 11.5, 10, 0.9),
            # IoU 90/110 = 0.818 with the first, 70/130 = 0.538 with the second
            Box("x", -1, 0, 9, 10, 0.8),
        ]
    ]
    m = detection_metrics(gt, pred, classes=["x"], iou_threshold=0.7, device="cpu")
    assert m.true_positives.tolist() == [2]
    assert m.average_precision[0] == pytest.approx(1.0, abs=TOL)


def test_detection_empty_and_undefined() -> None:
    m = detection_metrics([[Box("a", 0, 0, 1, 1)]], [[]], classes=["a", "b"], device="cpu")
    assert m.average_precision[0] == 0.0 and np.isnan(m.average_precision[1])
    assert m.mean_average_precision == 0.0 and m.precision_overall == 0.0
    none = detection_metrics([[]], [[Box("a", 0, 0, 1, 1, 0.5)]], classes=["a"], device="cpu")
    assert none.mean_average_precision is None and none.precision_overall == 0.0


def test_detection_rejects_bad_input() -> None:
    box = Box("a", 0, 0, 1, 1)
    with pytest.raises(ValueError, match="1 images but predictions has 2"):
        detection_metrics([[box]], [[box], []], classes=["a"], device="cpu")
    with pytest.raises(ValueError, match=r"predictions\[0\]\[0\] has class 'z'"):
        detection_metrics([[box]], [[Box("z", 0, 0, 1, 1)]], classes=["a"], device="cpu")
    with pytest.raises(ValueError, match=r"ground_truth\[0\]\[0\]: a box needs x_max >= x_min"):
        detection_metrics([[Box("a", 2, 0, 1, 1)]], [[]], classes=["a"], device="cpu")
    with pytest.raises(ValueError, match="no 'y_max'"):
        detection_metrics(
            [[{"cls": "a", "x_min": 0, "y_min": 0, "x_max": 1}]], [[]], classes=["a"], device="cpu"
        )
    with pytest.raises(ValueError, match="must be numbers"):
        detection_metrics(
            [[{"cls": "a", "x_min": "left", "y_min": 0, "x_max": 1, "y_max": 1}]],
            [[]],
            classes=["a"],
            device="cpu",
        )
    with pytest.raises(ValueError, match="finite"):
        detection_metrics([[]], [[Box("a", 0, 0, 1, 1, float("nan"))]], classes=["a"], device="cpu")
    with pytest.raises(ValueError, match="list of boxes"):
        detection_metrics([box], [[]], classes=["a"], device="cpu")  # type: ignore[list-item]
    with pytest.raises(ValueError, match="iou_threshold"):
        detection_metrics([[box]], [[box]], classes=["a"], iou_threshold=0.0, device="cpu")
    with pytest.raises(ValueError, match="each once"):
        detection_metrics([[box]], [[box]], classes=["a", "a"], device="cpu")


coordinate = st.integers(0, 20)


@st.composite
def images(draw: st.DrawFn) -> list[list[Box]]:
    out = []
    for _ in range(draw(st.integers(1, 4))):
        boxes = []
        for _ in range(draw(st.integers(0, 4))):
            x, y = draw(coordinate), draw(coordinate)
            w, h = draw(st.integers(1, 8)), draw(st.integers(1, 8))
            boxes.append(Box(draw(st.sampled_from("ab")), x, y, x + w, y + h))
        out.append(boxes)
    return out


@settings(max_examples=50, deadline=None)
@given(images(), st.randoms(use_true_random=False))
def test_detection_properties(gt: list[list[Box]], rnd: Any) -> None:
    # predicting the truth exactly finds everything: AP 1 where there is ground truth
    perfect = [[Box(b.cls, b.x_min, b.y_min, b.x_max, b.y_max, 0.9) for b in img] for img in gt]
    m = detection_metrics(gt, perfect, classes=["a", "b"], device="cpu")
    has_gt = m.n_ground_truth > 0
    np.testing.assert_allclose(m.average_precision[has_gt], 1.0, atol=TOL)
    np.testing.assert_allclose(m.recall[has_gt], 1.0, atol=TOL)
    # shuffled images and boxes with distinct scores give the same numbers
    n_boxes = sum(len(img) for img in gt)
    scores = iter(rnd.sample(range(n_boxes), n_boxes))  # distinct: no tie to break by order
    scored = [
        [Box(b.cls, b.x_min + 1, b.y_min, b.x_max, b.y_max, next(scores)) for b in img]
        for img in gt
    ]
    first = detection_metrics(gt, scored, classes=["a", "b"], device="cpu")
    order = list(range(len(gt)))
    rnd.shuffle(order)
    shuffled = [rnd.sample(scored[i], len(scored[i])) for i in order]
    again = detection_metrics([gt[i] for i in order], shuffled, classes=["a", "b"], device="cpu")
    np.testing.assert_allclose(again.average_precision, first.average_precision, atol=TOL)
    np.testing.assert_array_equal(again.true_positives, first.true_positives)
    assert 0.0 <= first.precision_overall <= 1.0 and 0.0 <= first.recall_overall <= 1.0
    flat = np.array([[b.x_min, b.y_min, b.x_max, b.y_max] for img in gt for b in img]).reshape(
        -1, 4
    )
    matrix = box_iou(flat, flat, device="cpu")
    np.testing.assert_allclose(matrix, matrix.T, atol=TOL)
    assert np.all((matrix >= 0) & (matrix <= 1 + TOL))
    np.testing.assert_allclose(np.diag(matrix), 1.0, atol=TOL)
