"""The DEEPaaS wrapper in-process: unconfigured, failing monitoring, defaults, pickling."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from collectors import deepaas
from collectors.deepaas import default_features, default_prediction, monitored


def plain_predict(**kwargs: Any) -> dict[str, Any]:
    return {"label": "copepod", "probabilities": [0.9, 0.1]}


wrapped_predict = monitored(plain_predict)
wrapped_predict.__qualname__ = "wrapped_predict"  # pickled by name, as DEEPaaS' pool does


def test_without_configuration_it_only_predicts(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TIDEWATCH_URL", "TIDEWATCH_KEY", "TIDEWATCH_MODEL"):
        monkeypatch.delenv(name, raising=False)
    assert wrapped_predict(x=1.0) == plain_predict()
    assert (
        wrapped_predict.__name__ == "plain_predict" and wrapped_predict.__wrapped__ is plain_predict
    )  # type: ignore[attr-defined]
    assert pickle.loads(pickle.dumps(wrapped_predict)) is wrapped_predict


def test_monitoring_errors_are_counted_and_never_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_features(_: Any) -> dict[str, Any]:
        raise RuntimeError("bug")

    predict = monitored(
        plain_predict, url="http://127.0.0.1:9", key="k", model="m", features=broken_features
    )
    monkeypatch.setattr(deepaas, "_clients", {})
    assert predict(x=1.0) == plain_predict()
    assert predict.tidewatch_errors() == 1  # type: ignore[attr-defined]


def test_defaults() -> None:
    assert default_features({"x": 1.0, "name": "a", "flag": True, "file": object()}) == {
        "x": 1.0,
        "name": "a",
    }
    deepaas_style = {
        "labels": [{"label": "a", "probability": 0.2}, {"label": "b", "probability": 0.8}]
    }
    assert default_prediction(deepaas_style) == {"label": "b"}
    assert default_prediction({"value": 2.0}) == {"value": 2.0}
    assert default_prediction("text") is None and default_prediction({"other": 1}) is None
