"""Who may read after signing in with the site's identity provider (OIDC), decided from the
ID token's claims.

The rule is the settings' ``oidc_allowed_email_domains`` and ``oidc_allowed_groups``; each one
that is set must hold (a domain *and* a group when both are set), and with neither set no one
may read: an identity provider usually knows far more people than should see the models, so
signing in proves who someone is, never that they may read. This module imports nothing of
Authlib: the session check of every request uses it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from monitor.settings import Settings


def configured(settings: Settings) -> bool:
    return bool(settings.oidc_issuer and settings.oidc_client_id and settings.oidc_client_secret)


def provider_name(settings: Settings) -> str:
    """``oidc_provider_name``, or the issuer's host: "Sign in with login.example.org"."""
    if settings.oidc_provider_name:
        return settings.oidc_provider_name
    return urlsplit(settings.oidc_issuer or "").hostname or "your identity provider"


def fingerprint(settings: Settings) -> str:
    """A digest of the provider and the rule, kept in each OIDC session: changing who may read
    (or the provider) ends every OIDC session at its next request, without a table of them.

    >>> a = Settings(oidc_issuer="https://id.example", oidc_client_id="c", oidc_client_secret="s")
    >>> b = a.model_copy(update={"oidc_allowed_groups": ["plankton"]})
    >>> fingerprint(a) == fingerprint(a.model_copy()) and fingerprint(a) != fingerprint(b)
    True
    """
    rule = [
        (settings.oidc_issuer or "").rstrip("/"),
        settings.oidc_client_id,
        sorted(settings.oidc_allowed_email_domains),
        sorted(settings.oidc_allowed_groups),
        settings.oidc_groups_claim,
        settings.oidc_require_verified_email,
    ]
    return hashlib.sha256(json.dumps(rule).encode()).hexdigest()[:16]


def _groups(claims: Mapping[str, Any], name: str) -> set[str]:
    value = claims.get(name)
    if isinstance(value, str):  # some providers send one group as a string
        return {value}
    if isinstance(value, list):
        return {g for g in value if isinstance(g, str)}
    return set()


def refusal(claims: Mapping[str, Any], settings: Settings) -> str | None:
    """Why these ID token claims may not read here, in words for the person; None if they may.

    >>> s = Settings(oidc_issuer="https://id.example", oidc_client_id="c",
    ...              oidc_client_secret="s", oidc_allowed_email_domains=["example.org"])
    >>> refusal({"sub": "1", "email": "ada@Example.org", "email_verified": True}, s) is None
    True
    >>> refusal({"sub": "2", "email": "eve@example.org.evil", "email_verified": True}, s)
    'the e-mail domain example.org.evil is not one that may read here'
    >>> refusal({"sub": "3", "email": "ada@example.org"}, s)
    'your identity provider did not say that the e-mail ada@example.org is verified'
    """
    domains, groups = settings.oidc_allowed_email_domains, settings.oidc_allowed_groups
    if not domains and not groups:
        return (
            "no one may read here through the identity provider yet: an administrator must set "
            "oidc_allowed_email_domains or oidc_allowed_groups"
        )
    if domains:
        email = claims.get("email")
        if not isinstance(email, str) or "@" not in email:
            return "your identity provider sent no e-mail address (ask for the 'email' scope)"
        if settings.oidc_require_verified_email and claims.get("email_verified") is not True:
            return f"your identity provider did not say that the e-mail {email} is verified"
        domain = email.rsplit("@", 1)[1].lower()
        if domain not in domains:
            return f"the e-mail domain {domain} is not one that may read here"
    if groups and not _groups(claims, settings.oidc_groups_claim) & set(groups):
        return "you are in none of the groups that may read here"
    return None
