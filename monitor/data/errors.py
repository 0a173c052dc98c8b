"""The error a user's data can cause: it names the field and becomes an HTTP 422."""

from __future__ import annotations


class SchemaError(ValueError):
    """Data does not match the model's declared schema.

    ``field`` is a path a user can find in their payload, e.g. ``records[3].features.depth``.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
