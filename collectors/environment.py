"""Where a client sends, from the environment: ``TIDEWATCH_URL``, ``TIDEWATCH_KEY``,
``TIDEWATCH_MODEL`` and optionally ``TIDEWATCH_SAMPLER``.

Read in one place for :meth:`collectors.TelemetryClient.from_env` and the DEEPaaS wrapper, and
checked when read: a client that starts with a wrong setting would otherwise spool or drop every
record for hours before anyone looks.

>>> config = read_config({"TIDEWATCH_URL": "http://tidewatch:8000", "TIDEWATCH_KEY": "tw_x",
...                       "TIDEWATCH_MODEL": "plankton", "TIDEWATCH_SAMPLER": "0.1"})
>>> config.url, config.model, config.sampler
('http://tidewatch:8000', 'plankton', '0.1')
>>> read_config({"TIDEWATCH_URL": "tidewatch:8000"})  # doctest: +ELLIPSIS
Traceback (most recent call last):
ValueError: Tidewatch client settings: TIDEWATCH_URL='tidewatch:8000' is not an http(s) URL ...
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Optional

import httpx

from collectors.sampling import make_sampler

URL, KEY, MODEL, SAMPLER = "TIDEWATCH_URL", "TIDEWATCH_KEY", "TIDEWATCH_MODEL", "TIDEWATCH_SAMPLER"
# the server's rule for model names (monitor.spec.model.NAME_PATTERN)
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")


@dataclass(frozen=True)
class ClientConfig:
    """A checked target: the service's address, the model, its key and the sampler's spec."""

    url: str
    model: str
    key: str = field(default="", repr=False)  # a repr ends up in logs
    sampler: Optional[str] = None


def _url_problem(url: str) -> str | None:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        return f"{URL}={url!r} is not an http(s) URL such as http://tidewatch:8000"
    return None


def _key_problem(key: str) -> str | None:
    if re.search(r"\s", key):
        # a key read from a file often ends with a newline: no HTTP header can carry it
        return f"{KEY} holds whitespace (a newline from a secret file?)"
    return None


def _model_problem(model: str) -> str | None:
    if _MODEL_NAME.fullmatch(model):
        return None
    return f"{MODEL}={model!r} is not a model name (letters, digits, '_', '.', '-')"


def _sampler_problem(spec: str) -> str | None:
    try:
        make_sampler(spec)
    except ValueError as exc:
        return f"{SAMPLER}={spec!r} is not valid: {exc}"
    return None


def read_config(
    environ: Mapping[str, str] | None = None,
    *,
    url: str | None = None,
    model: str | None = None,
    key: str | None = None,
) -> ClientConfig:
    """The client's target from ``environ`` (default ``os.environ``); ``url``, ``model`` and
    ``key`` given here win over the variables. Raises ValueError naming every variable that is
    missing or wrong."""
    env = os.environ if environ is None else environ
    url = (url or env.get(URL, "")).strip()
    key = key or env.get(KEY, "")
    model = (model or env.get(MODEL, "")).strip()
    sampler = env.get(SAMPLER, "").strip() or None
    checks = (
        (URL, url, _url_problem),
        (KEY, key, _key_problem),
        (MODEL, model, _model_problem),
    )
    problems = [
        f"{name} is not set" if not value else check(value) for name, value, check in checks
    ]
    if sampler is not None:
        problems.append(_sampler_problem(sampler))
    found = [p for p in problems if p]
    if found:
        raise ValueError("Tidewatch client settings: " + "; ".join(found))
    return ClientConfig(url.rstrip("/"), model, key, sampler)
