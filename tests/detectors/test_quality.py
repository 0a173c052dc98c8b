"""DataQuality on hand-built windows with known answers, against numpy, and on itself.

Tolerances: counts and shares of small hand-built arrays are compared exactly (they are ratios
of small integers computed in float64); percentiles against ``numpy.percentile`` to 1e-12
relative (the same linear interpolation, summed in a different order).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from detectors.quality import (
    DataQuality,
    QualityReport,
    QualityThresholds,
    _percentiles,
)

NAN, INF = math.nan, math.inf

# Reference: a = 0..4; b = 10..40 with one NaN; c varies (5 or 6); d is constant
REF = np.array(
    [
        [0.0, 10.0, 5.0, 3.0],
        [1.0, NAN, 5.0, 3.0],
        [2.0, 20.0, 5.0, 3.0],
        [3.0, 30.0, 6.0, 3.0],
        [4.0, 40.0, 6.0, 3.0],
    ]
)
CUR = np.array(
    [
        [-1.0, NAN, 7.0, 3.0],
        [5.0, INF, 7.0, 3.0],
        [2.0, -INF, NAN, 3.0],
        [4.4, NAN, 7.0, 3.0],
    ]
)
NAMES = ["a", "b", "c", "d"]


def fitted(**kwargs: Any) -> DataQuality:
    return DataQuality(device="cpu", **kwargs).fit(REF, numeric_names=NAMES)


def test_numeric_fields_with_tolerance() -> None:
    num = fitted(range_tolerance=0.1).score(CUR).numeric
    assert num.features == tuple(NAMES)
    # a: [0, 4] widened by 0.4 each side; -1 and 5 out, 4.4 on the bound is in
    np.testing.assert_array_equal(num.range_low[[0, 2, 3]], [-0.4, 5.0 - 0.1, 3.0])
    np.testing.assert_array_equal(num.range_high[[0, 2, 3]], [4.4, 6.0 + 0.1, 3.0])
    assert num.out_of_range_share[0] == 0.5
    # b: two NaN (missing), two infinities (not missing, not "out of range": not finite)
    assert (num.nan_count[1], num.inf_count[1], num.missing_rate[1]) == (2, 2, 0.5)
    assert math.isnan(num.out_of_range_share[1])  # no finite value to judge
    # c: 7 everywhere it is present: out of range and constant; d constant in both: not flagged
    assert (num.out_of_range_share[2], num.missing_rate[2]) == (1.0, 0.25)
    assert num.is_constant.tolist() == [False, False, True, False]
    np.testing.assert_array_equal(num.reference_missing_rate, [0.0, 0.2, 0.0, 0.0])
    np.testing.assert_array_equal(num.nan_count, [0, 2, 1, 0])
    np.testing.assert_array_equal(num.inf_count, [0, 2, 0, 0])
    for values in (num.missing_rate, num.out_of_range_share, num.range_low):
        assert isinstance(values, np.ndarray) and values.dtype == np.float64


def test_without_tolerance_the_reference_range_is_exact() -> None:
    num = fitted().score(CUR).numeric
    assert (num.range_low[0], num.range_high[0]) == (0.0, 4.0)
    assert num.out_of_range_share[0] == 0.75  # 4.4 is out now


CAT_REF = np.array(
    [["a", 1, "u"], ["b", 2, "v"], ["a", 3, "u"], [None, np.int64(1), "v"], ["c", 2, "u"]],
    dtype=object,
)
CAT_CUR = np.array(
    [["a", 1.0, "u"], ["z", "1", "u"], ["z", 4, "u"], [NAN, 4, None]],
    dtype=object,
)


def test_categorical_fields() -> None:
    dq = DataQuality(device="cpu").fit(REF, CAT_REF, categorical_names=["x", "y", "w"])
    cat = dq.score(CUR, CAT_CUR).categorical
    assert cat.features == ("x", "y", "w")
    np.testing.assert_array_equal(cat.reference_missing_rate, [0.2, 0.0, 0.0])
    np.testing.assert_array_equal(cat.missing_rate, [0.25, 0.0, 0.25])
    # x: "z" twice out of three present; y: 1.0 == 1 is seen, the string "1" and 4 are not
    np.testing.assert_array_equal(cat.unseen_share, [2 / 3, 3 / 4, 0.0])
    assert cat.unseen_categories == (("z",), (4, "1"), ())  # most frequent first
    assert type(cat.unseen_categories[1][0]) is int
    assert cat.is_constant.tolist() == [False, False, True]


def test_unseen_categories_are_capped_but_all_counted() -> None:
    ref = np.array([["seen"]] * 3, dtype=object)
    cur = np.array([[f"new{i}"] for i in range(30)] + [["seen"]] * 10, dtype=object)
    dq = DataQuality(device="cpu").fit(np.zeros((3, 1)), ref)
    cat = dq.score(np.zeros((40, 1)), cur).categorical
    assert len(cat.unseen_categories[0]) == 20
    assert cat.unseen_share[0] == 30 / 40


def test_all_missing_categorical_has_no_unseen_share() -> None:
    dq = DataQuality(device="cpu").fit(np.zeros((2, 0)), np.array([["a"], ["b"]], dtype=object))
    cat = dq.score(np.zeros((2, 0)), np.array([[None], [NAN]], dtype=object)).categorical
    assert cat.missing_rate[0] == 1.0 and math.isnan(cat.unseen_share[0])
    assert not cat.is_constant[0]


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        ([1, 2, 2, 3, 3, 3, None, None], 2),
        (["x", "y", "z", "w", "v", "u", "t", "s"], 0),
        (np.array([7, 7, 7, 7, 8, 8, 9, 10]), 2),
        ([1, "1", 1.0, NAN, NAN, 2, 3, 4], 1),  # 1 and 1.0 are one id; NaN is no id
    ],
    ids=["ints with missing", "distinct strings", "numpy ints", "mixed"],
)
def test_duplicate_ids(ids: Any, expected: int) -> None:
    dq = DataQuality(device="cpu").fit(np.zeros((3, 1)))
    assert dq.score(np.zeros((8, 1)), record_ids=ids).duplicate_ids == expected


def test_no_ids_means_not_checked() -> None:
    report = DataQuality(device="cpu").fit(np.zeros((3, 1))).score(np.zeros((2, 1)))
    assert report.duplicate_ids is None
    assert report.n_rows == 2


def test_image_checks() -> None:
    names = ["image.brightness", "img_contrast", "sharpness", "brightness_mean", "xbrightness"]
    ref = np.tile(np.linspace(0.0, 100.0, 101)[:, None], (1, 5))
    cur = np.tile(np.array([0.5, 50.0, 99.5, 100.0, NAN, INF])[:, None], (1, 5))
    report = DataQuality(device="cpu").fit(ref, numeric_names=names).score(cur)
    assert sorted(report.image_checks) == ["image.brightness", "img_contrast", "sharpness"]
    check = report.image_checks["image.brightness"]
    assert (check.low, check.high) == pytest.approx((1.0, 99.0), rel=1e-12)
    assert check.outside_share == 3 / 4  # 0.5, 99.5 and 100 of four finite values
    custom = DataQuality(device="cpu", image_features=("mean",)).fit(ref, numeric_names=names)
    assert list(custom.score(cur).image_checks) == ["brightness_mean"]


def test_percentiles_match_numpy() -> None:
    rng = np.random.default_rng(3)
    data = rng.normal(size=(6, 57))
    data[0, ::3] = NAN
    data[1, ::4] = INF
    data[2, :-1] = NAN  # one finite value
    data[3, :] = NAN  # none
    ours = _percentiles(torch.as_tensor(data), (0.01, 0.5, 0.99)).numpy()
    for j, row in enumerate(data):
        finite = row[np.isfinite(row)]
        expected = np.percentile(finite, [1, 50, 99]) if len(finite) else [NAN] * 3
        np.testing.assert_allclose(ours[j], expected, rtol=1e-12)


def test_matches_a_numpy_implementation_on_random_data() -> None:
    rng = np.random.default_rng(7)
    ref, cur = rng.normal(size=(300, 6)), rng.normal(0.5, 1.5, size=(200, 6))
    ref[rng.random(ref.shape) < 0.05] = NAN
    cur[rng.random(cur.shape) < 0.1] = NAN
    cur[rng.random(cur.shape) < 0.02] = -INF
    num = DataQuality(device="cpu", range_tolerance=0.05).fit(ref).score(cur).numeric
    for j in range(6):
        low, high = np.nanmin(ref[:, j]), np.nanmax(ref[:, j])
        low, high = low - 0.05 * (high - low), high + 0.05 * (high - low)
        finite = cur[np.isfinite(cur[:, j]), j]
        assert num.missing_rate[j] == np.isnan(cur[:, j]).mean()
        assert num.inf_count[j] == np.isinf(cur[:, j]).sum()
        assert num.out_of_range_share[j] == ((finite < low) | (finite > high)).mean()
        assert num.range_low[j] == pytest.approx(low, rel=1e-12)


def test_problems_and_thresholds() -> None:
    dq = DataQuality(device="cpu", range_tolerance=0.1).fit(
        np.column_stack([REF, np.linspace(0, 1, 5)]),
        CAT_REF,
        numeric_names=[*NAMES, "image_brightness"],
        categorical_names=["x", "y", "w"],
    )
    cur = np.column_stack([CUR, [0.5, 0.5, 0.5, 2.0]])
    report = dq.score(cur, CAT_CUR, record_ids=["r1", "r2", "r2", "r3"])
    assert report.problems == [
        "feature 'a': 50.0% of values outside the reference range [-0.4, 4.4]",
        "feature 'b': 50.0% missing (reference 20.0%)",
        "feature 'b': 2 infinite values",
        "feature 'c': 25.0% missing (reference 0.0%)",
        "feature 'c': a single value in this window (the reference varied)",
        "feature 'c': 100.0% of values outside the reference range [4.9, 6.1]",
        "feature 'image_brightness': 25.0% of values outside the reference range [-0.1, 1.1]",
        "image feature 'image_brightness': 25.0% of values outside the reference 1st-99th "
        "percentile range [0.01, 0.99]",
        "feature 'x': 66.7% of values are categories never seen in the reference ('z')",
        "feature 'y': 75.0% of values are categories never seen in the reference (4, '1')",
        "feature 'w': 25.0% missing (reference 0.0%)",
        "feature 'w': a single value in this window (the reference varied)",
        "1 record id appears more than once",
    ]
    lenient = QualityThresholds(
        missing_increase=0.5,
        max_inf_count=2,
        out_of_range=1.0,
        unseen=0.8,
        image_outside=0.3,
        max_duplicate_ids=1,
    )
    assert report.issues(lenient) == [  # constant features are always reported
        "feature 'c': a single value in this window (the reference varied)",
        "feature 'w': a single value in this window (the reference varied)",
    ]


def test_default_names_do_not_collide() -> None:
    dq = DataQuality(device="cpu").fit(REF, CAT_REF)
    report = dq.score(CUR, CAT_CUR)
    assert report.numeric.features == ("0", "1", "2", "3")
    assert report.categorical.features == ("4", "5", "6")


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: fitted().score(np.zeros((4, 3))), ValueError, r"shape \(rows, 4\)"),
        (lambda: fitted().score(np.zeros(4)), ValueError, "2-D"),
        (lambda: fitted().score(np.zeros((0, 4))), ValueError, "no rows"),
        (lambda: DataQuality(device="cpu").fit(np.zeros((0, 2))), ValueError, "no rows"),
        (lambda: fitted().score(CUR, CAT_CUR), ValueError, "no categorical features"),
        (
            lambda: DataQuality(device="cpu").fit(REF, CAT_REF).score(CUR),
            ValueError,
            "pass current_categorical",
        ),
        (
            lambda: DataQuality(device="cpu").fit(REF, CAT_REF[:4]),
            ValueError,
            "reference_categorical has 4 rows but reference_numeric has 5",
        ),
        (
            lambda: DataQuality(device="cpu").fit(REF, CAT_REF).score(CUR, CAT_CUR[:, :2]),
            ValueError,
            r"current_categorical must have shape \(rows, 3\)",
        ),
        (lambda: fitted().score(CUR, record_ids=[1, 2]), ValueError, "one id per row"),
        (lambda: DataQuality(device="cpu").score(CUR), RuntimeError, "call fit"),
        (lambda: DataQuality(range_tolerance=-0.1), ValueError, "range_tolerance must be >= 0"),
        (lambda: DataQuality(range_tolerance=NAN), ValueError, "finite number"),
        (lambda: DataQuality(image_features="brightness"), ValueError, "sequence of non-empty"),
        (
            lambda: DataQuality(device="cpu").fit(REF, numeric_names=["a", "b", "c"]),
            ValueError,
            "3 feature names given for 4 columns",
        ),
        (
            lambda: DataQuality(device="cpu").fit(
                REF, CAT_REF, numeric_names=NAMES, categorical_names=["a", "y", "w"]
            ),
            ValueError,
            "feature names must be distinct",
        ),
    ],
    ids=[
        "columns",
        "1-D",
        "empty window",
        "empty reference",
        "unexpected categorical",
        "missing categorical",
        "categorical rows",
        "categorical columns",
        "ids length",
        "score before fit",
        "negative tolerance",
        "nan tolerance",
        "image features as one string",
        "names count",
        "names collide",
    ],
)
def test_bad_input_is_refused(call: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        call()


cell = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.sampled_from([NAN, INF, -INF]),
)
category = st.one_of(st.none(), st.integers(-3, 3), st.sampled_from(["a", "b", "c"]))


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, st.tuples(st.integers(1, 30), st.integers(1, 4)), elements=cell),
    st.data(),
)
def test_reference_against_itself_is_clean(numeric: np.ndarray, data: st.DataObject) -> None:
    n = numeric.shape[0]
    categorical = np.empty((n, 2), dtype=object)
    for i in range(n):
        for j in range(2):
            categorical[i, j] = data.draw(category)
    report: QualityReport = (
        DataQuality(device="cpu", image_features=("0",))
        .fit(numeric, categorical)
        .score(numeric, categorical)
    )
    num, cat = report.numeric, report.categorical
    has_finite = np.isfinite(numeric).any(axis=0)
    assert np.all(num.out_of_range_share[has_finite] == 0.0)
    assert np.all(np.isnan(num.out_of_range_share[~has_finite]))
    np.testing.assert_array_equal(num.missing_rate, num.reference_missing_rate)
    np.testing.assert_array_equal(cat.missing_rate, cat.reference_missing_rate)
    assert cat.unseen_categories == ((), ())
    assert np.all((cat.unseen_share == 0.0) | np.isnan(cat.unseen_share))
    assert not num.is_constant.any() and not cat.is_constant.any()
    assert 0.0 <= report.image_checks["0"].outside_share <= 1.0 or not has_finite[0]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    rng = np.random.default_rng(0)
    ref, cur = rng.normal(size=(3000, 8)), rng.normal(0.2, 1, size=(2000, 8))
    cur[::7, 2], cur[::11, 3] = NAN, INF
    names = [f"f{j}" for j in range(7)] + ["image.sharpness"]
    cpu = DataQuality(device="cpu", range_tolerance=0.01).fit(ref, numeric_names=names)
    gpu = DataQuality(device="cuda", range_tolerance=0.01).fit(ref, numeric_names=names)
    a, b = cpu.score(cur), gpu.score(cur)
    for name in ("missing_rate", "out_of_range_share", "range_low", "range_high"):
        np.testing.assert_array_equal(getattr(a.numeric, name), getattr(b.numeric, name))
    np.testing.assert_array_equal(a.numeric.inf_count, b.numeric.inf_count)
    assert a.image_checks["image.sharpness"] == pytest.approx(b.image_checks["image.sharpness"])
