"""Signed links to one run's report, for e-mails: a mail client cannot send an API key.

The token is an HMAC-SHA256 of the model name and run id under ``report_link_secret``: it opens
that report only, and anyone holding the link can open it (as with any link in a mail).
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote


def token(secret: str, model: str, run_id: int) -> str:
    message = f"{model}:{run_id}".encode()  # names cannot hold ":"
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def valid_token(secret: str, model: str, run_id: int, candidate: str) -> bool:
    """
    >>> valid_token("s", "m", 1, token("s", "m", 1)), valid_token("s", "m", 2, token("s", "m", 1))
    (True, False)
    """
    # bytes: a str with non-ASCII characters would make compare_digest raise
    return hmac.compare_digest(token(secret, model, run_id).encode(), candidate.encode())


def report_url(base: str, model: str, run_id: int, secret: str | None) -> str:
    url = f"{base.rstrip('/')}/api/v1/models/{quote(model)}/report?run={run_id}"
    return f"{url}&token={token(secret, model, run_id)}" if secret else url
