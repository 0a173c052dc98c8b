"""How batches travel: records as JSON, and what an overloaded Tidewatch asks of the client."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx


def to_json(value: Any) -> Any:
    """numpy scalars and arrays (and anything with ``tolist``) become plain JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot send a {type(value).__name__} as telemetry")


def retry_after(response: httpx.Response) -> float | None:
    """Seconds from a ``Retry-After: <seconds>`` header (the HTTP-date form is not used here)."""
    value = response.headers.get("retry-after", "")
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
