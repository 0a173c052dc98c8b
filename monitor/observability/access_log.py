"""Credentials kept out of the access log.

uvicorn logs every request on ``uvicorn.access`` with its path and query string, and a signed
report link carries its ``token`` there (and a misguided client might send ``key=``; the
identity provider sends ``code`` and ``state`` to the OIDC callback): whoever reads the logs
could open the report. :class:`RedactCredentials` replaces those values with
``REDACTED`` before any handler formats the record.
"""

from __future__ import annotations

import logging
from urllib.parse import unquote_plus

ACCESS_LOGGER = "uvicorn.access"
# token: a signed report link's; key: a misguided client's API key; code and state: the
# identity provider's answer at /login/oidc/callback (a code is worth a session until used)
SECRET_PARAMETERS = frozenset({"token", "key", "code", "state"})
REDACTED = "REDACTED"


def redact_query(path: str) -> str:
    """``path`` with the values of its secret query parameters replaced.

    Names are compared decoded, as the server reads them (``%74oken`` is ``token``).

    >>> redact_query("/api/v1/models/m/report?run=3&expires=9&token=abc&key=k#x")
    '/api/v1/models/m/report?run=3&expires=9&token=REDACTED&key=REDACTED#x'
    >>> redact_query("/healthz")
    '/healthz'
    """
    base, mark, rest = path.partition("?")
    if not mark:
        return path
    query, hash_mark, fragment = rest.partition("#")
    pairs = [
        f"{name}={REDACTED}" if unquote_plus(name) in SECRET_PARAMETERS else pair
        for pair in query.split("&")
        for name in [pair.partition("=")[0]]
    ]
    return f"{base}?{'&'.join(pairs)}{hash_mark}{fragment}"


class RedactCredentials(logging.Filter):
    """Redacts the path of uvicorn's access records, which log with the arguments
    ``(client_addr, method, full_path, http_version, status_code)`` (its access formatter reads
    them by position, so the shape is kept)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (*args[:2], redact_query(args[2]), *args[3:])
        return True  # redacts, never drops


def redact_access_log() -> None:
    """Install :class:`RedactCredentials` on uvicorn's access logger, once per process.

    On the logger, not a handler: it then holds whatever handlers a log configuration adds,
    and ``logging.config.dictConfig`` (uvicorn's own, or ``--log-config``) replaces a logger's
    handlers but keeps its filters.
    """
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, RedactCredentials) for f in logger.filters):
        logger.addFilter(RedactCredentials())
