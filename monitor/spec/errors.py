"""How a validation error reads to a person: where, then what, one line each.

``str()`` of a pydantic error adds the input, the error type and a link to pydantic's site
after every message; a user of Tidewatch needs the place and the reason only.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import ValidationError

# what pydantic puts before the message of an exception raised in a validator
_PREFIXES = ("Value error, ", "Assertion failed, ")


def _where(parts: Iterable[int | str]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def describe(error: ValidationError) -> str:
    """``place: reason`` per problem (the place written as in the API's 422s), one a line;
    the lines after the first are indented, to follow a heading such as ``invalid settings:``.

    >>> from pydantic import BaseModel
    >>> class Window(BaseModel):
    ...     size: int
    >>> try:
    ...     Window(size="ten")
    ... except ValidationError as exc:
    ...     print(describe(exc))
    size: Input should be a valid integer, unable to parse string as an integer
    """
    lines = []
    for e in error.errors(include_url=False, include_input=False, include_context=False):
        message = str(e["msg"])
        for prefix in _PREFIXES:
            message = message.removeprefix(prefix)
        where = _where(e["loc"])
        # a message that already names its place (an unknown setting) is not told it twice
        lines.append(f"{where}: {message}" if where and where not in message else message)
    return "\n  ".join(lines)
