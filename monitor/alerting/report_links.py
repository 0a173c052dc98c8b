"""Signed links to one run's report, for e-mails: a mail client cannot send an API key.

The token is an HMAC-SHA256 of the model name, the run id and the link's expiry (unix seconds,
carried in the link as ``expires``) under ``report_link_secret``: it opens that report only,
until then (``report_link_ttl_seconds`` after the mail was written). Anyone holding the link can
open it meanwhile, as with any link in a mail; signing the expiry means changing it breaks the
token. Links are built in one place, :func:`report_url`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime
from urllib.parse import quote


def token(secret: str, model: str, run_id: int, expires: int) -> str:
    message = f"{model}:{run_id}:{expires}".encode()  # names cannot hold ":"
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def link_problem(
    secret: str,
    model: str,
    run_id: int,
    expires: int | None,
    candidate: str,
    now: float | None = None,
) -> str | None:
    """None when the link opens this report, else why it does not (said to the reader).

    >>> link_problem("s", "m", 1, 100, token("s", "m", 1, 100), now=99) is None
    True
    >>> link_problem("s", "m", 1, 101, token("s", "m", 1, 100), now=99)
    'invalid report link: it was altered or is not for this report'
    >>> link_problem("s", "m", 1, 100, token("s", "m", 1, 100), now=100)[:29]
    'this report link has expired '
    """
    if expires is None:  # a link from before links expired: they are no longer honoured
        return "this report link has no expiry date and no longer opens the report"
    # bytes: a str with non-ASCII characters would make compare_digest raise
    if not hmac.compare_digest(token(secret, model, run_id, expires).encode(), candidate.encode()):
        return "invalid report link: it was altered or is not for this report"
    # checked after the signature: only a link Tidewatch made is told that it expired
    if (time.time() if now is None else now) >= expires:
        when = datetime.fromtimestamp(expires, UTC).isoformat(timespec="seconds")
        return f"this report link has expired ({when}): open the report with an API key"
    return None


def report_url(
    base: str,
    model: str,
    run_id: int,
    secret: str | None,
    ttl_seconds: int,
    now: float | None = None,
) -> str:
    """The link to a run's report: signed, and open for ``ttl_seconds`` from ``now``, with a
    secret; a plain one (the reader needs a key) without.

    >>> report_url("https://tw/", "m", 3, None, 60)
    'https://tw/api/v1/models/m/report?run=3'
    >>> report_url("https://tw", "m", 3, "s", 60, now=1000.5) == (
    ...     f"https://tw/api/v1/models/m/report?run=3&expires=1060&token={token('s', 'm', 3, 1060)}"
    ... )
    True
    """
    url = f"{base.rstrip('/')}/api/v1/models/{quote(model)}/report?run={run_id}"
    if not secret:
        return url
    expires = int(time.time() if now is None else now) + ttl_seconds
    return f"{url}&expires={expires}&token={token(secret, model, run_id, expires)}"
