"""Effect sizes equal values computed by hand on small fixed data sets."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from detectors.effects import MAX_CATEGORIES, EffectReference


def test_numeric_effect_by_hand() -> None:
    # finite reference values 1..5 (NaN and inf are left out): mean 3, sd sqrt(2.5);
    # p5 = 1 + 0.05 * 4 = 1.2 and p95 = 1 + 0.95 * 4 = 4.8 (linear interpolation)
    ref = EffectReference.fit(numeric={"x": np.array([1.0, 2, 3, 4, 5, np.nan, np.inf])})
    effect = ref.compare(numeric={"x": np.array([2.0, 4, 6, 8])})["x"]
    assert effect["kind"] == "numeric"
    assert effect["reference"] == pytest.approx(
        {"mean": 3.0, "median": 3.0, "p5": 1.2, "p95": 4.8, "sd": math.sqrt(2.5)}
    )
    # current 2, 4, 6, 8: p5 at position 0.15 -> 2.3, p95 at 2.85 -> 7.7, sd sqrt(20 / 3)
    assert effect["current"] == pytest.approx(
        {"mean": 5.0, "median": 5.0, "p5": 2.3, "p95": 7.7, "sd": math.sqrt(20 / 3)}
    )
    assert effect["mean_shift_sd"] == pytest.approx(2 / math.sqrt(2.5))
    assert effect["size"] == pytest.approx(2 / math.sqrt(2.5))
    json.dumps(effect, allow_nan=False)  # stored as JSON: no NaN may slip through


def test_numeric_effect_without_spread_or_values_says_none() -> None:
    ref = EffectReference.fit(numeric={"flat": np.full(5, 2.0), "x": np.arange(5.0)})
    effects = ref.compare(numeric={"flat": np.array([3.0, 3.0]), "x": np.full(3, np.nan)})
    assert effects["flat"]["reference"]["sd"] == 0.0
    assert effects["flat"]["mean_shift_sd"] is None and effects["flat"]["size"] is None
    assert effects["x"]["current"] == dict.fromkeys(("mean", "median", "p5", "p95", "sd"))
    assert effects["x"]["mean_shift_sd"] is None
    json.dumps(effects, allow_nan=False)


def test_categorical_effect_by_hand() -> None:
    # reference a a b c (None left out): a 1/2, b 1/4, c 1/4; window a d d d: a 1/4, d 3/4
    reference = np.array(["a", "a", "b", "c", None], dtype=object)
    current = np.array(["a", "d", "d", "d", float("nan")], dtype=object)
    effect = EffectReference.fit(categorical={"cam": reference}).compare(
        categorical={"cam": current}
    )["cam"]
    assert effect["kind"] == "categorical"
    # largest change first, ties by name
    assert effect["shares"] == [
        {"category": "d", "reference": 0.0, "current": 0.75},
        {"category": "a", "reference": 0.5, "current": 0.25},
        {"category": "b", "reference": 0.25, "current": 0.0},
        {"category": "c", "reference": 0.25, "current": 0.0},
    ]
    assert effect["new"] == ["d"]
    assert effect["vanished"] == ["b", "c"]
    assert effect["left_out"] == 0
    assert effect["total_variation"] == pytest.approx(0.5 * (0.75 + 0.25 + 0.25 + 0.25))


def test_categorical_effect_lists_at_most_the_cap() -> None:
    reference = np.array([f"c{i:02d}" for i in range(12)], dtype=object)
    current = np.array(["c00"] * 12, dtype=object)
    effect = EffectReference.fit(categorical={"k": reference}).compare(categorical={"k": current})[
        "k"
    ]
    assert len(effect["shares"]) == MAX_CATEGORIES
    assert effect["shares"][0] == {"category": "c00", "reference": 1 / 12, "current": 1.0}
    assert effect["left_out"] == 12 - MAX_CATEGORIES
    assert effect["vanished"] == [f"c{i:02d}" for i in range(1, 1 + MAX_CATEGORIES)]
    assert effect["total_variation"] == pytest.approx(11 / 12)


def test_class_mix_of_predictions_is_a_categorical_effect() -> None:
    # prediction.label reaches the effects as a categorical column: its shares are the class mix
    reference = np.array(["copepod"] * 3 + ["diatom"], dtype=object)
    current = np.array(["copepod"] + ["diatom"] * 3, dtype=object)
    effect = EffectReference.fit(categorical={"prediction.label": reference}).compare(
        categorical={"prediction.label": current}
    )["prediction.label"]
    assert effect["shares"] == [
        {"category": "copepod", "reference": 0.75, "current": 0.25},
        {"category": "diatom", "reference": 0.25, "current": 0.75},
    ]
    assert effect["new"] == [] and effect["vanished"] == []
    assert effect["total_variation"] == pytest.approx(0.5)


def test_vector_effect_by_hand() -> None:
    # the reference varies along x (sample variance 8/3) more than along y (2/3), no covariance:
    # component 1 is x with 80% of the variance, component 2 is y with 20%
    reference = np.array([[-2.0, 0], [2, 0], [0, -1], [0, 1], [np.nan, 0]])
    current = np.array([[2.0, 0.5], [2, 0.5]])  # the mean moved by (2, 0.5)
    effect = EffectReference.fit(vector={"emb": reference}).compare(vector={"emb": current})["emb"]
    assert effect["kind"] == "vector"
    assert effect["mean_shift"] == pytest.approx(math.sqrt(4.25))
    assert effect["explained_share"] == pytest.approx(1.0)  # two components span the plane
    assert [c["component"] for c in effect["components"]] == [1, 2]
    assert effect["components"][0]["variance_share"] == pytest.approx(0.8)
    assert effect["components"][0]["shift_sd"] == pytest.approx(2 / math.sqrt(8 / 3))
    assert effect["components"][1]["variance_share"] == pytest.approx(0.2)
    assert effect["components"][1]["shift_sd"] == pytest.approx(0.5 / math.sqrt(2 / 3))
    assert effect["size"] == pytest.approx(2 / math.sqrt(8 / 3))
    json.dumps(effect, allow_nan=False)


def test_vector_shift_outside_the_first_components_has_a_low_explained_share() -> None:
    reference = np.array([[-2.0, 0], [2, 0], [0, -1], [0, 1]])
    fitted = EffectReference.fit(vector={"emb": reference}, n_components=1)
    # a shift of (2, 0.5): 4 of its squared length 4.25 lies along component 1 (x)
    along = fitted.compare(vector={"emb": np.array([[2.0, 0.5]])})["emb"]
    assert along["explained_share"] == pytest.approx(4 / 4.25)
    # a shift along y only: none of it along component 1
    across = fitted.compare(vector={"emb": np.array([[0.0, 3.0]])})["emb"]
    assert across["explained_share"] == pytest.approx(0.0)
    assert across["components"] == [{"component": 1, "variance_share": 0.8, "shift_sd": 0.0}]


def test_component_signs_do_not_depend_on_row_order() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(200, 4)) * [3.0, 2.0, 1.0, 0.5]
    current = reference[:50] + np.array([1.0, -1.0, 0.0, 0.0])
    a = EffectReference.fit(vector={"e": reference}).compare(vector={"e": current})["e"]
    b = EffectReference.fit(vector={"e": reference[::-1]}).compare(vector={"e": current})["e"]
    assert [c["component"] for c in a["components"]] == [c["component"] for c in b["components"]]
    for ca, cb in zip(a["components"], b["components"], strict=True):
        assert ca["shift_sd"] == pytest.approx(cb["shift_sd"])


def test_features_the_reference_lacks_get_no_effect() -> None:
    fitted = EffectReference.fit(numeric={"x": np.arange(3.0)})
    assert set(fitted.compare(numeric={"x": np.arange(3.0), "y": np.arange(3.0)})) == {"x"}


@pytest.mark.parametrize("rows", [1, 2, 7, 500])
def test_summaries_of_a_window_equal_the_summary_of_each_feature(rows: int) -> None:
    from detectors.effects import numeric_summaries, numeric_summary

    matrix = np.random.default_rng(rows).normal(size=(rows, 6))
    together = numeric_summaries(matrix)
    for j, summary in enumerate(together):
        alone = numeric_summary(matrix[:, j])
        assert summary.keys() == alone.keys()
        for key, value in alone.items():
            assert (summary[key] is None) == (value is None), key
            if value is not None:
                assert summary[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
    with_nan = matrix.copy()
    with_nan[0, 0] = np.nan  # not all finite: each feature summarised on its own
    assert numeric_summaries(with_nan)[0] == numeric_summary(with_nan[:, 0])
