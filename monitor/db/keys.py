"""API keys: random tokens, stored as SHA-256 hashes, with scopes.

Scopes: ``admin`` (everything), ``read`` (list models and results), ``ingest:<model>`` (post
telemetry, labels and references of that one model, which must be registered first). A plain
SHA-256 is enough here: keys are 32 random bytes, so there is nothing to brute-force, and a hash
lookup stays O(1). A key may carry an expiry; when it was last used is kept to the minute.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from monitor.db.tables import ApiKey, Model

KEY_PREFIX = "tw_"
_SCOPE = re.compile(r"^(admin|read|ingest:[A-Za-z0-9][A-Za-z0-9_.\-]{0,127})$")
# last use is written at most once a minute per key: one write per request would turn every
# telemetry post into two writes
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def validate_scopes(scopes: list[str]) -> list[str]:
    if not scopes:
        raise ValueError("a key needs at least one scope")
    for scope in scopes:
        if not _SCOPE.match(scope):
            raise ValueError(f"invalid scope {scope!r}: use admin, read or ingest:<model>")
    return scopes


def check_models_exist(session: Session, scopes: list[str]) -> None:
    """A key for a model nobody registered would be refused on every post: say so now."""
    wanted = {scope.removeprefix("ingest:") for scope in scopes if scope.startswith("ingest:")}
    if not wanted:
        return
    known = set(session.scalars(select(Model.name).where(Model.name.in_(sorted(wanted)))))
    missing = sorted(wanted - known)
    if missing:
        raise ValueError(
            f"no model named {missing[0]!r} (scope 'ingest:{missing[0]}'): register it first "
            "(`tidewatch models create` or POST /api/v1/models), then create its key"
        )


def create_key(
    session: Session,
    scopes: list[str],
    description: str = "",
    *,
    expires_at: datetime | None = None,
) -> str:
    """Store a new key and return it; the plain key is shown once and never stored."""
    validate_scopes(scopes)
    check_models_exist(session, scopes)
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise ValueError(f"the expiry {expires_at.isoformat()} is already past")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiKey(
            key_hash=hash_key(key),
            prefix=key[:10],
            scopes=" ".join(scopes),
            description=description,
            expires_at=expires_at,
        )
    )
    session.commit()
    return key


def list_keys(session: Session, *, include_revoked: bool = False) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.id)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return list(session.scalars(query))


def lookup(session: Session, key: str) -> ApiKey | None:
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
    if row is None or row.revoked_at is not None:
        return None
    return row


def has_expired(row: ApiKey, now: datetime | None = None) -> bool:
    return row.expires_at is not None and row.expires_at <= (now or datetime.now(UTC))


def mark_used(session: Session, row: ApiKey, now: datetime | None = None) -> None:
    """Record that ``row`` was just used, unless that was already recorded within the last
    :data:`LAST_USED_RESOLUTION` (the condition is in the UPDATE, so replicas do not race)."""
    now = now or datetime.now(UTC)
    stale = now - LAST_USED_RESOLUTION
    if row.last_used_at is not None and row.last_used_at > stale:
        return
    session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == row.id,
            or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= stale),
        )
        .values(last_used_at=now)
    )
    session.commit()


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
