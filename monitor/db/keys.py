"""API keys: random tokens, stored as SHA-256 hashes, with scopes.

Scopes: ``admin`` (everything), ``read`` (list models and results), ``ingest:<model>`` (post
telemetry, labels and references of that one model). A plain SHA-256 is enough here: keys are
32 random bytes, so there is nothing to brute-force, and a hash lookup stays O(1).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.db.tables import ApiKey

KEY_PREFIX = "tw_"
_SCOPE = re.compile(r"^(admin|read|ingest:[A-Za-z0-9][A-Za-z0-9_.\-]{0,127})$")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def validate_scopes(scopes: list[str]) -> list[str]:
    if not scopes:
        raise ValueError("a key needs at least one scope")
    for scope in scopes:
        if not _SCOPE.match(scope):
            raise ValueError(f"invalid scope {scope!r}: use admin, read or ingest:<model>")
    return scopes


def create_key(session: Session, scopes: list[str], description: str = "") -> str:
    """Store a new key and return it; the plain key is shown once and never stored."""
    validate_scopes(scopes)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiKey(
            key_hash=hash_key(key),
            prefix=key[:10],
            scopes=" ".join(scopes),
            description=description,
        )
    )
    session.commit()
    return key


def lookup(session: Session, key: str) -> ApiKey | None:
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
    if row is None or row.revoked_at is not None:
        return None
    return row


def revoke(session: Session, prefix: str) -> int:
    rows = session.scalars(
        select(ApiKey).where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
    )
    count = 0
    for row in rows:
        row.revoked_at = datetime.now(UTC)
        count += 1
    session.commit()
    return count


def allows(scopes: str, needed: str) -> bool:
    """Does a key with ``scopes`` grant ``needed`` (``admin``, ``read`` or ``ingest:<m>``)?"""
    held = set(scopes.split())
    return "admin" in held or needed in held
