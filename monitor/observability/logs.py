"""Tidewatch's log lines: its own at the level asked for, libraries only when something is wrong.

Every process logs through one handler on the root logger, to stderr, as text or, for platforms
that ship logs, as one JSON object per line (``log_format = "json"``). Tidewatch's loggers
(``tidewatch.*``, and uvicorn's lifecycle lines: where the service listens) log at
``log_level``; every other library (alembic, APScheduler, httpx, uvicorn's access log,
SQLAlchemy, ...) only at WARNING, or at INFO when ``log_level`` is ``debug``, SQL statements
never. A line that is an event (a run, an alert, a delivery) carries its facts as fields::

    log.info("run finished", extra=fields(model="plankton", status="drift"))

Text: ``2026-11-01 12:00:00,123 INFO tidewatch.runs: run finished model=plankton status=drift``.
JSON: ``{"time": "...", "level": "INFO", "logger": "tidewatch.runs", "message": "run finished",
"model": "plankton", "status": "drift"}``.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

LEVELS = ("debug", "info", "warning", "error", "critical")
FORMATS = ("text", "json")
LogFormat = Literal["text", "json"]
# loggers that log at ``log_level``; every other one is a library's
OWN = ("tidewatch", "uvicorn.error")
# a library that logs what its users need not see even when debugging: one line per statement
NEVER_CHATTY = ("sqlalchemy",)
UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.access")
_FIELDS = "tidewatch_fields"


def fields(**values: Any) -> dict[str, Any]:
    """The ``extra=`` of a log call whose facts become fields (``key=value`` or JSON keys)."""
    return {_FIELDS: values}


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    found: dict[str, Any] = getattr(record, _FIELDS, {})
    return found


def _text_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(str(v) for v in value) or "-"
    text = str(value)
    # quoted only when it would not read back as one value
    return json.dumps(text) if not text or any(c in text for c in ' ="\n') else text


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...``"""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        pairs = " ".join(f"{k}={_text_value(v)}" for k, v in fields_of(record).items())
        return f"{line} {pairs}" if pairs else line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message, the fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in fields_of(record).items():
            out.setdefault(key, value)  # the four above cannot be overwritten by a field
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is when a line is logged (test runners swap it)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass


def _is_basic_config(handler: logging.Handler) -> bool:
    # frouros calls logging.basicConfig(level=INFO) when imported, which would print every
    # library's INFO lines; its handler is known by basicConfig's default format
    formatter = handler.formatter
    return (
        type(handler) is logging.StreamHandler
        and formatter is not None
        and formatter._fmt == logging.BASIC_FORMAT
    )


class _LibrariesQuiet(logging.Filter):
    """A library's record passes from ``threshold`` up; Tidewatch's own always pass."""

    def __init__(self, threshold: int) -> None:
        super().__init__()
        self.threshold = threshold

    def filter(self, record: logging.LogRecord) -> bool:
        own = any(record.name == n or record.name.startswith(n + ".") for n in OWN)
        return own or record.levelno >= self.threshold


def configure(level: str = "info", log_format: str = "text") -> None:
    """Set up this process's logging (again: a second call replaces the first).

    >>> # configure("warning", "json") in a command that prints its own output
    """
    if level.lower() not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    if log_format not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {log_format!r}")
    own = logging.getLevelName(level.upper())
    libraries = logging.INFO if own == logging.DEBUG else logging.WARNING
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, StderrHandler) or _is_basic_config(handler):
            root.removeHandler(handler)
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(_LibrariesQuiet(libraries))
    root.addHandler(handler)
    # the root level decides which records are made at all; the filter sorts them
    root.setLevel(min(own, libraries))
    for name in OWN:
        logging.getLogger(name).setLevel(own)
    for name in NEVER_CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING)
    # uvicorn's own logging config (applied if anything ran uvicorn with its defaults in this
    # process) gives "uvicorn" handlers of its own and stops propagation there: undo that, so
    # its lines come through this handler like every other logger's
    for name in UVICORN:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
