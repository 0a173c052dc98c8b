"""Alert rules: validation, and what fires on which runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from alerts.rules import AlertRule, RunFacts, check, check_telemetry
from monitor.spec.model import ModelSpec

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def run(
    i: int, status: str = "ok", drifted: frozenset[str] = frozenset(), **metrics: float
) -> RunFacts:
    return RunFacts(i, status, NOW, drifted, dict(metrics))


def test_consecutive_drift_and_named_features() -> None:
    rule = AlertRule(name="d", kind="drift", consecutive=2)
    assert not check(rule, [run(2, "drift"), run(1, "ok")]).firing  # type: ignore[union-attr]
    assert check(rule, [run(3, "drift"), run(2, "drift"), run(1)]).firing  # type: ignore[union-attr]
    # windows without a verdict do not break the streak
    skip = [run(4, "drift"), run(3, "insufficient_data"), run(2, "drift")]
    assert check(rule, skip).firing  # type: ignore[union-attr]
    named = AlertRule(name="n", kind="drift", features=["x"])
    assert not check(named, [run(1, "drift", frozenset({"y"}))]).firing  # type: ignore[union-attr]
    assert check(named, [run(1, "drift", frozenset({"x"}))]).firing  # type: ignore[union-attr]
    assert check(rule, []) is None


def test_the_drift_summary_names_every_drifted_feature() -> None:
    """The e-mail's table lists every drifted feature of the run: so does its summary line."""
    drifted = frozenset({"area", "brightness", "contrast", "eccentricity", "height"})
    drifted |= {"prediction.label"}
    verdict = check(AlertRule(name="d", kind="drift"), [run(1, "drift", drifted)])
    assert verdict is not None and verdict.summary == (
        "drift on the data set in the latest window: area, brightness, contrast, "
        "eccentricity, height, prediction.label"
    )
    named = AlertRule(name="n", kind="drift", features=["height", "width"], consecutive=2)
    verdict = check(named, [run(2, "drift", drifted), run(1, "drift", frozenset({"width"}))])
    assert verdict is not None and verdict.summary == (
        "drift on features height, width in 2 consecutive windows: height (also drifted: "
        "area, brightness, contrast, eccentricity, prediction.label)"
    )


def test_performance_below_a_value_and_dropped_from_a_baseline() -> None:
    below = AlertRule(name="p", kind="performance", metric="accuracy", below=0.85)
    fired = check(below, [run(1, accuracy=0.7133526850507983)])
    # 3 significant digits, and the direction in words
    assert fired is not None and fired.firing
    assert fired.summary == "accuracy 0.713 below the threshold 0.85"
    assert not check(below, [run(1, accuracy=0.9)]).firing  # type: ignore[union-attr]
    error = AlertRule(name="e", kind="performance", metric="mae", below=2.0)
    fired = check(error, [run(1, mae=2.5)])
    assert fired is not None and fired.firing  # higher is worse
    assert fired.summary == "mae 2.5 above the threshold 2"
    drop = AlertRule(
        name="r", kind="performance", metric="f1", drop=0.1, baseline=0.9, estimated=True
    )
    verdict = check(drop, [run(1, **{"estimated.f1": 0.78})])
    assert verdict is not None and verdict.firing
    assert verdict.summary == "estimated f1 0.78 is 13.3% below the baseline 0.9"
    assert not check(drop, [run(1, **{"estimated.f1": 0.85})]).firing  # type: ignore[union-attr]
    assert check(below, [run(1)]) is None  # no labels yet: cannot tell


def test_no_telemetry() -> None:
    rule = AlertRule(name="t", kind="no_telemetry", after_seconds=3600)
    assert check_telemetry(rule, None, NOW) is None
    assert not check_telemetry(rule, NOW - timedelta(minutes=30), NOW).firing  # type: ignore[union-attr]
    assert check_telemetry(rule, NOW - timedelta(hours=2), NOW).firing  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"name": "p", "kind": "performance"}, "needs 'metric'"),
        ({"name": "p", "kind": "performance", "metric": "accuracy"}, "'below' or 'drop'"),
        ({"name": "p", "kind": "performance", "metric": "accuracy", "drop": 0.1}, "baseline"),
        ({"name": "t", "kind": "no_telemetry"}, "after_seconds"),
        ({"name": "d", "kind": "drift", "metric": "accuracy"}, "do not apply"),
        ({"name": "d", "kind": "nope"}, "kind"),
    ],
)
def test_invalid_rules_say_why(rule: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AlertRule.model_validate(rule)


def spec(rules: list[dict[str, object]], **monitor: object) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "name": "m",
            "features": [{"name": "x", "kind": "numeric"}],
            "output": {"task": "classification", "classes": ["a", "b"]},
            "monitors": [{"name": "drift", **monitor}],
            "alerts": rules,
        }
    )


def test_rules_must_fit_the_model_and_survive_a_round_trip() -> None:
    with pytest.raises(ValidationError, match="unknown monitor"):
        spec([{"name": "d", "kind": "drift", "monitor": "other"}])
    with pytest.raises(ValidationError, match="unknown features"):
        spec([{"name": "d", "kind": "drift", "features": ["nope"]}])
    with pytest.raises(ValidationError, match="computes no performance"):
        spec([{"name": "p", "kind": "performance", "metric": "accuracy", "below": 0.8}])
    with pytest.raises(ValidationError, match="unique"):
        spec([{"name": "d", "kind": "drift"}, {"name": "d", "kind": "drift"}])
    good = spec(
        [
            {"name": "d", "kind": "drift", "consecutive": 3},
            {"name": "p", "kind": "performance", "metric": "accuracy", "below": 0.8},
            {"name": "t", "kind": "no_telemetry", "after_seconds": 600},
        ],
        performance={"metrics": ["accuracy"]},
    )
    # what the database stores reads back as the same spec
    assert ModelSpec.model_validate(good.model_dump(mode="json")) == good
