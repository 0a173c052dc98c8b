"""The DEEPaaS wrapper in-process: unconfigured, failing monitoring, uploads, a full queue,
defaults, pickling. The real deepaas-run is in tests/integration/test_deepaas.py."""

from __future__ import annotations

import io
import pickle
import threading
import time
from collections import namedtuple
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from collectors import deepaas
from collectors.deepaas import (
    UploadedImage,
    default_features,
    default_prediction,
    monitored,
    read_uploads,
)
from collectors.image import describe
from monitor.server import free_port

# DEEPaaS' own type (deepaas.model.v2.wrapper.UploadedFile), rebuilt so this test needs no DEEPaaS
UploadedFile = namedtuple("UploadedFile", ("name", "filename", "content_type", "original_filename"))


def plain_predict(**kwargs: Any) -> dict[str, Any]:
    return {"label": "copepod", "probabilities": [0.9, 0.1]}


wrapped_predict = monitored(plain_predict)
wrapped_predict.__qualname__ = "wrapped_predict"  # pickled by name, as DEEPaaS' pool does


def wait_for(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


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

    monkeypatch.setattr(deepaas, "_recorders", {})
    url = f"http://127.0.0.1:{free_port()}"
    predict = monitored(plain_predict, url=url, key="k", model="m", features=broken_features)
    assert predict(x=1.0) == plain_predict()
    wait_for(lambda: predict.tidewatch_errors() == 1)  # type: ignore[attr-defined]
    # an upload that cannot be read is counted too, and the prediction still runs
    missing = UploadedFile("image", "/nonexistent/upload", "image/png", "a.png")
    assert predict(image=missing) == plain_predict()
    assert predict.tidewatch_errors() == 2  # type: ignore[attr-defined]


def png_upload(tmp_path: Path, pixels: np.ndarray) -> UploadedFile:
    path = tmp_path / "upload.tmp"
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())
    return UploadedFile("image", str(path), "application/octet-stream", "sample.PNG")


def test_uploaded_images_are_read_during_the_call_and_described(tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, size=(9, 7, 3), dtype=np.uint8)
    upload = png_upload(tmp_path, pixels)
    other = UploadedFile("notes", str(tmp_path / "notes.txt"), "text/plain", "notes.txt")
    arguments = read_uploads({"image": upload, "notes": other, "site": "a"})
    Path(upload.filename).unlink()  # the module may delete it: the bytes were read already
    assert isinstance(arguments["image"], UploadedImage) and arguments["notes"] is other
    features = default_features(arguments)
    assert features == {"site": "a", **{f"image.{k}": v for k, v in describe(pixels).items()}}


def test_a_thread_that_falls_behind_drops_and_counts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(deepaas, "_recorders", {})
    entered, release = threading.Event(), threading.Event()

    def slow_features(kwargs: Any) -> dict[str, Any]:
        entered.set()
        release.wait(30)
        return {"x": 1.0}

    url = f"http://127.0.0.1:{free_port()}"
    predict = monitored(
        plain_predict,
        url=url,
        key="k",
        model="m",
        features=slow_features,
        max_pending=2,
        spool_dir=tmp_path / "spool",
    )
    assert predict(x=1.0) == plain_predict()
    assert entered.wait(30)  # the thread is busy with the first call
    for _ in range(9):  # two wait, the other seven are left out
        assert predict(x=1.0) == plain_predict()
    (recorder,) = deepaas._recorders.values()
    assert recorder.client.stats["dropped"] == 7
    release.set()
    wait_for(lambda: recorder.client.stats["logged"] == 3)
    assert recorder.client.stats["dropped"] == 7
    recorder.client.close(timeout=1, drain_timeout=0)


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


def test_images_are_described_only_for_sampled_calls(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The sampler sees the prediction first; a left-out call costs no image description."""
    monkeypatch.setattr(deepaas, "_recorders", {})
    described: list[str] = []

    class CopepodsOnly:
        def keep(self, record: Any) -> float | None:
            return 0.25 if record["prediction"]["label"] == "copepod" else None

    def features(kwargs: Any) -> dict[str, Any]:
        described.append(kwargs["label"])
        return {"x": 1.0}

    def predict(**kwargs: Any) -> dict[str, Any]:
        return {"label": kwargs["label"]}

    url = f"http://127.0.0.1:{free_port()}"
    watched = monitored(
        predict,
        url=url,
        key="k",
        model="m",
        features=features,
        sampler=CopepodsOnly(),
        spool_dir=tmp_path / "spool",
    )
    for i in range(12):
        watched(label="copepod" if i % 3 == 0 else "diatom")
    (recorder,) = deepaas._recorders.values()
    wait_for(lambda: recorder.client.stats["logged"] + recorder.client.stats["sampled_out"] == 12)
    assert described == ["copepod"] * 4
    assert recorder.client.stats["sampled_out"] == 8
    recorder.client.close(timeout=5, drain_timeout=0)
    # the batch carries the sampler's rate, so counts can be scaled back
    bodies = [p.read_bytes() for p in (tmp_path / "spool").glob("*.json")]
    assert bodies and all(b'"sampling_rate": 0.25' in body for body in bodies)


def test_the_sampler_can_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(deepaas, "_recorders", {})
    monkeypatch.setenv("TIDEWATCH_SAMPLER", "stratified:0.1")  # "0.1" would be a plain rate
    url = f"http://127.0.0.1:{free_port()}"
    watched = monitored(plain_predict, url=url, key="k", model="m", spool_dir=tmp_path / "s")
    watched(x=1.0)
    (recorder,) = deepaas._recorders.values()
    assert type(recorder.client.sampler).__name__ == "StratifiedSampler"
    assert recorder.client.sampler.rate == 0.1  # type: ignore[union-attr]
    recorder.client.close(timeout=1, drain_timeout=0)
