"""One line makes a DEEPaaS v2 model module monitored.

At the end of the module's entry point (the ``api.py`` that DEEPaaS loads)::

    from collectors.deepaas import monitored
    predict = monitored(predict)

with the service's environment naming Tidewatch: ``TIDEWATCH_URL``, ``TIDEWATCH_KEY`` (an
``ingest:<model>`` key) and ``TIDEWATCH_MODEL``, and optionally ``TIDEWATCH_SAMPLER`` (``0.1``,
``rate:0.1`` or ``stratified:0.1``; see :func:`collectors.sampling.make_sampler`), read as
:meth:`TelemetryClient.from_env` reads them. Without them, or with a wrong one, the wrapper
only calls ``predict`` (and warns once, naming the variable).

``features(kwargs)`` and ``prediction(result)`` turn the call into a record. The defaults take
the numeric and text arguments as features, describe every uploaded image (a DEEPaaS file
argument with an ``image/*`` type or an image file name) with :func:`collectors.image.describe`
under the argument's name (``image.brightness``, ``image.sharpness``, ...), and take a result
with ``label`` / ``probabilities`` / ``value`` (or DEEPaaS' usual
``labels: [{label, probability}]``) as the prediction.

Only reading an uploaded image's bytes happens in the predict call (DEEPaaS' temporary file
may be gone once it returns); sampling, building the record, describing images and queueing it
for the client run on one background thread per process. Describing costs CPU (about 8 ms for a
256 x 256 RGB image and 0.1 s per megapixel on a 2-core test machine) that the module's next
predictions compete for, so busy image modules should sample: ``monitored(predict,
sampler=RateSampler(rate=0.1))`` or ``TIDEWATCH_SAMPLER=stratified:0.1`` decides on the
prediction first and describes only the images it keeps. When the thread falls
``max_pending`` calls behind, calls are left out and counted as ``dropped`` in the client's
counters, so a burst of large images never grows memory or delays predictions.

DEEPaaS runs ``predict`` in worker processes that it spawns, so the client and that thread are
created lazily in the process that predicts (one per process id). Known limit: when DEEPaaS
stops, its workers end without running exit hooks, so records of the last flush interval (1 s)
are lost. Whatever happens in the monitoring part is caught and counted: the prediction's
result is returned unchanged. The wrapper keeps the function's name and signature
(``functools.wraps``) because DEEPaaS introspects and pickles it.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Optional

from collectors.adapters import from_mapping
from collectors.client import TelemetryClient
from collectors.environment import ClientConfig, read_config

log = logging.getLogger("tidewatch.collectors")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif")


@dataclass(frozen=True)
class UploadedImage:
    """An image argument of a predict call, read while the call ran."""

    name: str
    data: bytes


def _is_image_upload(value: Any) -> bool:
    """DEEPaaS passes file arguments as ``UploadedFile(name, filename, content_type,
    original_filename)``, ``filename`` being a temporary path."""
    path = getattr(value, "filename", None)
    if not isinstance(path, str):
        return False
    content_type = str(getattr(value, "content_type", "") or "")
    original = str(getattr(value, "original_filename", "") or "").lower()
    return content_type.startswith("image/") or original.endswith(_IMAGE_SUFFIXES)


def read_uploads(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments with uploaded images replaced by their bytes (:class:`UploadedImage`)."""
    out = dict(kwargs)
    for name, value in kwargs.items():
        if _is_image_upload(value):
            with open(value.filename, "rb") as file:
                out[name] = UploadedImage(name=name, data=file.read())
    return out


def default_features(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Numbers and strings among the arguments, and the statistics of each uploaded image under
    its argument's name (other files and objects left out)."""
    features: dict[str, Any] = {}
    for name, value in kwargs.items():
        if isinstance(value, UploadedImage):
            from collectors.image import describe  # numpy only; Pillow decodes the bytes

            features.update({f"{name}.{k}": v for k, v in describe(value.data).items()})
        elif isinstance(value, (int, float, str)) and not isinstance(value, bool):
            features[name] = value
    return features


def default_prediction(result: Any) -> Mapping[str, Any] | None:
    if not isinstance(result, Mapping):
        return None
    labels = result.get("labels")
    if isinstance(labels, list) and labels and all(isinstance(x, Mapping) for x in labels):
        best = max(labels, key=lambda x: float(x.get("probability", 0.0)))
        return {"label": str(best["label"])}
    try:
        return from_mapping(result)
    except ValueError:
        return None


# a run-time alias: Optional, not "| None", so it builds on Python 3.9
Call = tuple[
    Callable[[Mapping[str, Any]], Mapping[str, Any]],  # features
    Callable[[Any], Optional[Mapping[str, Any]]],  # prediction
    Mapping[str, Any],  # the call's arguments, uploads read
    Any,  # its result
    dict[str, Any],  # the wrapper's error state
]


class _Recorder:
    """One background thread per process and target: turns calls into ``client.log``."""

    def __init__(self, client: TelemetryClient, max_pending: int) -> None:
        self.client = client
        self._calls: queue.Queue[Call] = queue.Queue(maxsize=max_pending)
        threading.Thread(target=self._run, name="tidewatch-deepaas", daemon=True).start()

    def submit(self, call: Call) -> None:
        try:
            self._calls.put_nowait(call)
        except queue.Full:
            self.client.count_dropped(1)

    def _run(self) -> None:
        while True:
            features, prediction, kwargs, result, state = self._calls.get()
            try:
                predicted = prediction(result)
                if self.client.samples_later:
                    self.client.log(features(kwargs), predicted)
                elif (rate := self.client.sample({"prediction": predicted})) is not None:
                    # sampled on the prediction first: images left out are never described
                    self.client.log(features(kwargs), predicted, sampling_rate=rate)
            except Exception as exc:  # a bad image or a feature bug: counted, never raised
                _note_error(state, exc)


_recorders: dict[tuple[int, ClientConfig], _Recorder] = {}
_lock = threading.Lock()


def _recorder(target: ClientConfig, options: Mapping[str, Any]) -> _Recorder:
    options = dict(options)
    max_pending = int(options.pop("max_pending", 64))
    slot = (os.getpid(), target)
    with _lock:
        recorder = _recorders.get(slot)
        if recorder is None:
            client = TelemetryClient.from_env(
                url=target.url, model=target.model, key=target.key, **options
            )
            recorder = _recorders[slot] = _Recorder(client, max_pending)
        return recorder


def _note_error(state: dict[str, Any], exc: Exception) -> None:
    state["errors"] += 1
    if time.monotonic() - state["last_log"] > 60:
        state["last_log"] = time.monotonic()
        log.warning("could not record a prediction for Tidewatch: %r", exc)


def monitored(
    predict: Callable[..., Any],
    *,
    model: str | None = None,
    url: str | None = None,
    key: str | None = None,
    features: Callable[[Mapping[str, Any]], Mapping[str, Any]] = default_features,
    prediction: Callable[[Any], Mapping[str, Any] | None] = default_prediction,
    **client_options: Any,
) -> Callable[..., Any]:
    """``predict`` that also sends its inputs and outputs to Tidewatch (see the module doc).

    ``features`` receives the call's keyword arguments with uploaded images as
    :class:`UploadedImage`; ``client_options`` go to :class:`TelemetryClient` (``sampler``,
    ``batch_size``, ...), except ``max_pending`` (default 64) for the background thread.

    >>> def predict(**kwargs):
    ...     return {"label": "copepod"}
    >>> predict = monitored(predict)  # no TIDEWATCH_URL here: only predicts
    >>> predict(size=3.0)
    {'label': 'copepod'}
    """
    state: dict[str, Any] = {"errors": 0, "last_log": -math.inf, "warned": False}

    def where() -> ClientConfig | None:
        try:
            return read_config(url=url, model=model, key=key)
        except ValueError as exc:
            if not state["warned"]:
                state["warned"] = True
                log.warning("predictions are not sent to Tidewatch: %s", exc)
            return None

    @functools.wraps(predict)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        target, arguments = None, None
        try:
            target = where()
            if target is not None:
                # before predict: a module may delete its uploads when it is done with them
                arguments = read_uploads(kwargs)
        except Exception as exc:  # monitoring must never fail a prediction
            _note_error(state, exc)
        result = predict(*args, **kwargs)
        if target is not None and arguments is not None:
            try:
                _recorder(target, client_options).submit(
                    (features, prediction, arguments, result, state)
                )
            except Exception as exc:
                _note_error(state, exc)
        return result

    wrapper.tidewatch_errors = lambda: state["errors"]  # type: ignore[attr-defined]
    return wrapper
