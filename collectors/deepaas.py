"""One line makes a DEEPaaS v2 model module monitored.

At the end of the module's entry point (the ``api.py`` that DEEPaaS loads)::

    from collectors.deepaas import monitored
    predict = monitored(predict)

with the service's environment naming Tidewatch: ``TIDEWATCH_URL``, ``TIDEWATCH_KEY`` (an
``ingest:<model>`` key) and ``TIDEWATCH_MODEL``. Without them the wrapper only calls ``predict``
(and warns once). ``features(kwargs)`` and ``prediction(result)`` turn the call into a record;
the defaults take the numeric and text arguments as features and a result with ``label`` /
``probabilities`` / ``value`` (or DEEPaaS' usual ``labels: [{label, probability}]``) as the
prediction.

DEEPaaS runs ``predict`` in worker processes that it spawns, so the client is created lazily in
the process that predicts (one per process id). Known limit: when DEEPaaS stops, its workers
end without running exit hooks, so records logged in the last flush interval (1 s) are lost.
Whatever happens in the monitoring part is caught and counted: the prediction's result is
returned unchanged. The wrapper keeps the function's name and signature (``functools.wraps``)
because DEEPaaS introspects and pickles it.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from collectors.adapters import from_mapping
from collectors.client import TelemetryClient

log = logging.getLogger("tidewatch.collectors")
_clients: dict[tuple[int, str, str, str], TelemetryClient] = {}
_lock = threading.Lock()


def default_features(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Numbers and strings among the predict arguments (files and other objects left out)."""
    return {
        k: v
        for k, v in kwargs.items()
        if isinstance(v, (int, float, str)) and not isinstance(v, bool)
    }


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


def _client(url: str, model: str, key: str, options: Mapping[str, Any]) -> TelemetryClient:
    slot = (os.getpid(), url, model, key)
    with _lock:
        client = _clients.get(slot)
        if client is None:
            client = _clients[slot] = TelemetryClient(url, model, key, **options)
        return client


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

    >>> def predict(**kwargs):
    ...     return {"label": "copepod"}
    >>> predict = monitored(predict)  # no TIDEWATCH_URL here: only predicts
    >>> predict(size=3.0)
    {'label': 'copepod'}
    """
    state = {"errors": 0, "last_log": -math.inf, "warned": False}

    @functools.wraps(predict)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = predict(*args, **kwargs)
        try:
            target = (
                url or os.environ.get("TIDEWATCH_URL"),
                model or os.environ.get("TIDEWATCH_MODEL"),
                key or os.environ.get("TIDEWATCH_KEY"),
            )
            if not all(target):
                if not state["warned"]:
                    state["warned"] = True
                    log.warning("Tidewatch is not configured (TIDEWATCH_URL, _MODEL, _KEY)")
                return result
            client = _client(*target, client_options)  # type: ignore[arg-type]
            client.log(features(kwargs), prediction(result))
        except Exception as exc:  # monitoring must never fail a prediction
            state["errors"] += 1
            if time.monotonic() - state["last_log"] > 60:
                state["last_log"] = time.monotonic()
                log.warning("could not record a prediction for Tidewatch: %r", exc)
        return result

    wrapper.tidewatch_errors = lambda: state["errors"]  # type: ignore[attr-defined]
    return wrapper
