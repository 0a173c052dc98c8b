"""What every delivery channel promises: a name and ``send``, failing with one error type.

The outbox (which retries with backoff) must know whether trying again can help, and nothing
else about the channel; so every failure becomes :class:`DeliveryError` with ``retryable`` set.
"""

from __future__ import annotations

from typing import Protocol

from alerts.notification import Notification


class DeliveryError(Exception):
    """A notification was not delivered; ``retryable`` says whether a later try may succeed."""

    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable

    def __repr__(self) -> str:
        return f"DeliveryError({self.message!r}, retryable={self.retryable})"


class Channel(Protocol):
    """A way out for notifications ("email", "webhook", "alertmanager")."""

    @property
    def name(self) -> str:
        """The channel's name in configuration and the outbox ("email", ...); read-only, so
        frozen dataclasses and plain class attributes both satisfy it."""
        ...

    def send(self, notification: Notification) -> None:
        """Deliver one notification or raise :class:`DeliveryError`."""
        ...


def http_status_retryable(status: int) -> bool:
    """HTTP answers worth retrying: 5xx, 408 Request Timeout and 429 Too Many Requests.

    Any other 4xx means the request itself is wrong (bad URL, bad payload, refused secret):
    sending it again would fail again, so the outbox should give up and say so.
    """
    return status >= 500 or status in (408, 429)


def post_json(url: str, body: bytes, headers: dict[str, str], timeout: float, what: str) -> None:
    """POST ``body`` and turn every failure into :class:`DeliveryError` (shared by HTTP channels).

    httpx is imported here, not at module level, so ``import alerts`` stays light.
    """
    import httpx

    try:
        response = httpx.post(
            url,
            content=body,
            headers={"Content-Type": "application/json", **headers},
            timeout=timeout,
        )
    except httpx.HTTPError as exc:  # connection refused, DNS, timeouts: the far end may recover
        raise DeliveryError(f"{what} {url}: {type(exc).__name__}: {exc}", retryable=True) from exc
    if response.is_success:
        return
    raise DeliveryError(
        f"{what} {url} answered {response.status_code}: {response.text[:200]}",
        retryable=http_status_retryable(response.status_code),
    )
