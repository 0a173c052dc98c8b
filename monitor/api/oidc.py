"""Signing in through the site's identity provider (OpenID Connect), with Authlib.

``GET /login/oidc`` sends the browser to the provider (authorization code flow with ``state``,
``nonce`` and PKCE S256); ``GET /login/oidc/callback`` takes the provider's answer back:
Authlib checks the state, exchanges the code (with the client secret and the PKCE verifier)
and validates the ID token (signature against the provider's published keys, issuer,
audience, expiry, nonce). Who may then read is :mod:`monitor.api.oidc_rule`'s decision; a
person it admits gets the same session cookie as a key's sign-in, marked as an OIDC session
(:mod:`monitor.api.browser_session`), which reads only, with GET only.

Between the two requests the flow's state (Authlib's state, nonce and PKCE verifier, and where
to go after) waits in a cookie of its own: signed with the session secret, HttpOnly,
SameSite=Lax (the provider's redirect back is a top-level GET from another site), only for
``/login/oidc`` and for 10 minutes. Authlib keeps it in ``request.session``; here that is this
cookie, read before and written after, instead of a session middleware on every route.

The provider's discovery document is read once (``<issuer>/.well-known/openid-configuration``),
at the first sign-in, never at start-up: a provider that is down stops sign-ins through it, not
Tidewatch. The callback's ``code`` and ``state`` are kept out of the access log
(:data:`monitor.observability.access_log.SECRET_PARAMETERS`).
"""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from monitor.api import browser_session, oidc_rule
from monitor.api.deps import ServiceState, StateDep
from monitor.api.pages import OIDC_START as START
from monitor.api.pages import oidc_offer, page, set_session_cookie

if TYPE_CHECKING:
    from authlib.integrations.starlette_client import StarletteOAuth2App

log = logging.getLogger("tidewatch.oidc")
router = APIRouter(include_in_schema=False)

CALLBACK = "/login/oidc/callback"
FLOW_COOKIE = "tidewatch_oidc_flow"
FLOW_SECONDS = 600  # a sign-in at the provider that takes longer starts again
_FLOW_SALT = "tidewatch.oidc-flow"
_CLIENT = "tidewatch"  # the name Authlib files this provider under


class SignInRefused(Exception):
    """The sign-in stops here; the page says ``reason`` with ``status``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _client(state: ServiceState) -> StarletteOAuth2App:
    """The Authlib client of the configured provider, built at the first sign-in through it
    (Authlib is imported then, never by the commands or a service without OIDC)."""
    if state.oidc_client is None:
        with warnings.catch_warnings():
            # Authlib 1.9 prefers the httpx2 package and warns when it finds httpx; its own
            # module puts an "always" filter first when imported, so this one goes after it
            import authlib.deprecate  # noqa: F401

            warnings.filterwarnings("ignore", message="The httpx module is deprecated")
            from authlib.integrations.starlette_client import OAuth

        settings = state.settings
        oauth = OAuth()
        oauth.register(
            _CLIENT,
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret,
            server_metadata_url=_discovery_url(settings.oidc_issuer or ""),
            client_kwargs={
                "scope": settings.oidc_scopes,
                "code_challenge_method": "S256",
                "timeout": 15,
            },
        )
        state.oidc_client = oauth.create_client(_CLIENT)
    client: StarletteOAuth2App = state.oidc_client
    return client


def _discovery_url(issuer: str) -> str:
    """
    >>> _discovery_url("https://id.example/realms/ocean/")
    'https://id.example/realms/ocean/.well-known/openid-configuration'
    """
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


async def _provider(state: ServiceState) -> StarletteOAuth2App:
    """The client, its discovery document loaded and checked (OIDC Discovery 1.0, 4.3: the
    issuer it names must be the one configured, or tokens of another issuer could pass)."""
    client = _client(state)
    try:
        metadata = await client.load_server_metadata()
    except Exception as exc:  # httpx's errors, a document that is not JSON
        client.server_metadata.pop("_loaded_at", None)  # try again at the next sign-in
        log.warning("OIDC discovery at %s failed: %s", state.settings.oidc_issuer, exc)
        raise SignInRefused(502, _unreachable(state)) from exc
    configured = (state.settings.oidc_issuer or "").rstrip("/")
    if str(metadata.get("issuer", "")).rstrip("/") != configured:
        client.server_metadata.clear()
        log.error("OIDC discovery names issuer %r, not %r", metadata.get("issuer"), configured)
        raise SignInRefused(
            502, f"{oidc_rule.provider_name(state.settings)} is misconfigured here (its issuer)"
        )
    return client


def _unreachable(state: ServiceState) -> str:
    return (
        f"{oidc_rule.provider_name(state.settings)} did not answer: try again later, or sign "
        "in with an API key"
    )


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=_FLOW_SALT)


def _redirect_uri(request: Request, state: ServiceState) -> str:
    """Where the provider sends the browser back: registered there as ``<public_url>/login/
    oidc/callback`` (behind a proxy, the address people use, not the one Tidewatch sees)."""
    public = state.settings.public_url
    if public:
        return public.rstrip("/") + CALLBACK
    return str(request.url.replace(path=CALLBACK, query="", fragment=""))


def _refused_page(state: ServiceState, target: str, refused: SignInRefused) -> Response:
    return page(
        "login.html.j2",
        refused.status,
        next=target,
        hours=f"{state.settings.session_hours:g}",
        problem=refused.reason,
        oidc=oidc_offer(state, target),
    )


def _configured(state: ServiceState) -> None:
    if not oidc_rule.configured(state.settings):
        raise HTTPException(404, "sign-in through an identity provider is not configured here")


@router.get(START)
async def start(
    request: Request, state: StateDep, next_page: str | None = Query(None, alias="next")
) -> Response:
    """Off to the provider, with state, nonce and a PKCE challenge; back at the callback."""
    _configured(state)
    target = browser_session.safe_next(next_page)
    try:
        secure = _secure(request)
        client = await _provider(state)
        request.scope["session"] = {}  # Authlib files the flow's state here
        answer = await client.authorize_redirect(request, _redirect_uri(request, state))
    except SignInRefused as refused:
        return _refused_page(state, target, refused)
    except Exception as exc:
        log.warning("OIDC sign-in could not start: %s", exc)
        return _refused_page(state, target, SignInRefused(502, _unreachable(state)))
    flow = _serializer(state.session_secret).dumps({"authlib": request.session, "next": target})
    answer.set_cookie(
        FLOW_COOKIE,
        flow,
        max_age=FLOW_SECONDS,
        path=START,
        secure=secure,
        httponly=True,
        samesite="lax",
    )
    return answer


def _secure(request: Request) -> bool:
    try:
        return browser_session.cookie_secure(request)
    except HTTPException as refused:
        raise SignInRefused(refused.status_code, str(refused.detail)) from None


def _flow(request: Request, state: ServiceState) -> dict[str, Any]:
    value = request.cookies.get(FLOW_COOKIE)
    try:
        flow = _serializer(state.session_secret).loads(value or "", max_age=FLOW_SECONDS)
    except BadSignature:
        flow = None
    if not isinstance(flow, dict) or not isinstance(flow.get("authlib"), dict):
        raise SignInRefused(
            400,
            "this sign-in was started more than 10 minutes ago or in another browser: "
            "start it again",
        )
    return flow


async def _claims(request: Request, state: ServiceState, flow: dict[str, Any]) -> dict[str, Any]:
    """The validated ID token's claims (Authlib checks state, code, signature, issuer,
    audience, expiry and nonce); SignInRefused saying why not."""
    from authlib.integrations.base_client import OAuthError
    from joserfc.errors import JoseError

    client = await _provider(state)
    request.scope["session"] = flow["authlib"]
    name = oidc_rule.provider_name(state.settings)
    try:
        token = await client.authorize_access_token(request)
    except OAuthError as exc:
        # the provider's own refusal (access_denied: the person said no), or a state that
        # does not match the one this browser started with
        log.warning("OIDC sign-in refused: %s", exc.error)
        if exc.error == "access_denied":
            raise SignInRefused(403, f"{name} did not let you sign in") from exc
        raise SignInRefused(400, "this sign-in could not be completed: start it again") from exc
    except JoseError as exc:
        log.warning("OIDC ID token refused: %s", exc.error)
        raise SignInRefused(401, f"the answer of {name} could not be verified") from exc
    except Exception as exc:  # httpx's errors on the token request
        log.warning("OIDC token request failed: %s", exc)
        raise SignInRefused(502, _unreachable(state)) from exc
    claims = token.get("userinfo")
    if not claims or not isinstance(claims.get("sub"), str):
        raise SignInRefused(401, f"{name} sent no ID token")
    return dict(claims)


@router.get(CALLBACK)
async def callback(request: Request, state: StateDep) -> Response:
    """Back from the provider: the ID token validated and the rule applied, a session."""
    _configured(state)
    target = "/"
    try:
        secure = _secure(request)
        flow = _flow(request, state)
        target = browser_session.safe_next(flow.get("next"))
        claims = await _claims(request, state, flow)
        email = claims.get("email") if isinstance(claims.get("email"), str) else None
        reason = oidc_rule.refusal(claims, state.settings)
        if reason is not None:
            log.warning("OIDC sign-in of %s (%s) refused: %s", claims["sub"], email, reason)
            name = oidc_rule.provider_name(state.settings)
            who = f" as {email}" if email else ""
            raise SignInRefused(
                403,
                f"You signed in at {name}{who}, but may not read here: {reason}. "
                "Ask an administrator of Tidewatch.",
            )
    except SignInRefused as refused:
        answer = _refused_page(state, target, refused)
        answer.delete_cookie(FLOW_COOKIE, path=START, secure=request.url.scheme == "https")
        return answer
    log.info("OIDC sign-in of %s (%s)", claims["sub"], email)
    value = browser_session.sign_oidc(
        state.session_secret, claims["sub"], email, oidc_rule.fingerprint(state.settings)
    )
    answer = RedirectResponse(target, status_code=303)
    set_session_cookie(answer, state, value, secure)
    answer.delete_cookie(FLOW_COOKIE, path=START, secure=secure, httponly=True, samesite="lax")
    return answer
