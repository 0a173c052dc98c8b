"""All configuration in one validated object.

Sources, strongest first: keyword arguments, ``TIDEWATCH_*`` environment variables, the TOML
file given with ``--config`` (or ``TIDEWATCH_CONFIG``), then the defaults below.

An unknown name stops the start, in the TOML file (``extra="forbid"``) as in the environment: a
``TIDEWATCH_*`` variable that is neither a setting nor in :data:`NOT_SETTINGS` is refused with
the closest known name, so that ``TIDEWATCH_SMTP_PASSWRD`` cannot silently leave a channel off.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class Settings(BaseSettings):
    """Tidewatch settings; every field can be set as ``TIDEWATCH_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="TIDEWATCH_", extra="forbid")

    database_url: str = Field(
        default="sqlite:///./tidewatch.db",
        description="SQLAlchemy URL; postgresql://user@host/db uses psycopg 3.",
    )
    host: str = Field(default="127.0.0.1", description="address `tidewatch serve` binds")
    port: int = Field(default=8000, ge=0, le=65535)
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="largest telemetry or labels body (413 beyond)",
    )
    max_reference_bytes: int = Field(
        default=2 * 1024 * 1024 * 1024, ge=1024, description="largest reference upload (413 beyond)"
    )
    max_batch_records: int = Field(default=10_000, ge=1, description="records per telemetry batch")
    # load: request work runs on `request_threads` threads, each holding at most one database
    # connection, so the pool (db_pool_size) must hold at least that many; the overflow serves
    # the scheduler, alert delivery and the CLI. Beyond `max_in_flight` requests at once the
    # service answers 503 with Retry-After instead of queueing into client timeouts.
    request_threads: int = Field(
        default=16, ge=1, description="threads doing request work (database, parsing)"
    )
    db_pool_size: int = Field(default=20, ge=1, description="database connections kept open")
    db_max_overflow: int = Field(default=10, ge=0, description="extra connections under load")
    db_pool_timeout: float = Field(
        default=30.0, gt=0, description="seconds to wait for a free connection"
    )
    # Requests waiting for a thread hold a socket and, once read, their body: 512 batches of
    # 1,000 records are ~70 MB. Only authenticated callers get as far as sending a body.
    max_in_flight: int = Field(
        default=512, ge=1, description="requests handled at once; beyond, 503 and Retry-After"
    )
    # Longer than clients keep idle connections (httpx: 5 s), so the client closes an idle
    # connection first: with equal timeouts a request sent just as the server closed the
    # connection is reset (seen as httpx ReadError under load).
    keep_alive_seconds: int = Field(
        default=30, ge=1, description="how long an idle HTTP connection is kept open"
    )
    retention_days: float = Field(
        default=30.0, gt=0, description="telemetry older than this is purged"
    )
    purge_interval_seconds: float = Field(default=3600.0, gt=0)
    migrate_on_start: bool = Field(default=True, description="run `db upgrade` when serving")
    device: str = Field(default="auto", description="detector device: auto, cpu, cuda or cuda:N")
    reference_cache_size: int = Field(
        default=32, ge=1, description="fitted references kept in memory"
    )
    scheduler: bool = Field(
        default=True, description="`tidewatch serve` also schedules monitors (one leader)"
    )
    scheduler_threads: int = Field(default=4, ge=1, description="monitors run at once")
    # APScheduler takes whole seconds
    misfire_grace_seconds: int = Field(
        default=300, ge=1, description="a scheduled run later than this is skipped"
    )
    leader_poll_seconds: float = Field(
        default=2.0, gt=0, description="how often a follower tries to lead (takeover bound)"
    )
    scheduler_sync_seconds: float = Field(
        default=30.0, gt=0, description="how often the leader re-reads the models' monitors"
    )
    metrics_cache_seconds: float = Field(
        default=5.0, ge=0, description="results on /metrics are re-read after this long"
    )
    metrics_port: int = Field(
        default=9464, ge=0, le=65535, description="`tidewatch worker` serves /metrics here (0: off)"
    )
    # alert delivery (a channel without its address is off)
    smtp_host: str | None = Field(default=None, description="SMTP server for alert e-mails")
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_starttls: bool = Field(default=False, description="STARTTLS after connecting")
    smtp_ssl: bool = Field(default=False, description="TLS from the start (port 465)")
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_sender: str = Field(default="tidewatch@localhost", description="From: of alert e-mails")
    webhook_url: str | None = Field(default=None, description="POSTed signed alert JSON")
    webhook_secret: str | None = Field(default=None, description="HMAC-SHA256 key for webhooks")
    alertmanager_url: str | None = Field(default=None, description="Alertmanager base URL")
    grafana_url: str | None = Field(default=None, description="for dashboard links in alerts")
    public_url: str | None = Field(default=None, description="Tidewatch's URL, for report links")
    report_link_secret: str | None = Field(
        default=None, description="signs report links in alerts, which then open without a key"
    )
    report_link_ttl_seconds: int = Field(
        default=7 * 24 * 3600, gt=0, description="a signed report link opens for this long"
    )
    session_hours: float = Field(default=12, gt=0, description="a browser sign-in lasts this long")
    session_secret: str | None = Field(
        default=None,
        description="signs browser sessions; unset, a random one per process (a restart signs "
        "everyone out, and replicas behind one address need the same secret)",
    )
    # OIDC sign-in (monitor/api/oidc.py): off unless oidc_issuer is set, and then no one may
    # read until oidc_allowed_email_domains or oidc_allowed_groups says who
    oidc_issuer: str | None = Field(
        default=None,
        description="OpenID provider's issuer URL (discovery at <issuer>/.well-known/"
        "openid-configuration); set, /login offers 'Sign in with <provider>'",
    )
    oidc_client_id: str | None = Field(default=None, description="Tidewatch's client id there")
    oidc_client_secret: str | None = Field(
        default=None, repr=False, description="and its client secret"
    )
    oidc_provider_name: str | None = Field(
        default=None, description="shown on the sign-in button (default: the issuer's host)"
    )
    oidc_scopes: str = Field(
        default="openid email profile", description="scopes asked for (openid is required)"
    )
    oidc_allowed_email_domains: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="who may read: a verified e-mail in one of these domains (comma-separated)",
    )
    oidc_allowed_groups: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="who may read: one of these values in the groups claim (comma-separated)",
    )
    oidc_groups_claim: str = Field(default="groups", description="the ID token claim of groups")
    oidc_require_verified_email: bool = Field(
        default=True,
        description="e-mail domains count only with email_verified true (off for providers "
        "that do not send it and verify e-mail themselves)",
    )
    alert_delivery_seconds: float = Field(default=5.0, gt=0, description="outbox poll interval")
    alert_retry_seconds: float = Field(default=10.0, gt=0, description="first retry delay")
    alert_max_attempts: int = Field(default=8, ge=1, description="then a delivery has failed")
    # `serve` and `worker` log at log_level; other commands only warn unless --log-level says
    log_level: Literal["debug", "info", "warning", "error", "critical"] = Field(
        default="info", description="Tidewatch's own log lines; libraries log only warnings"
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="json: one JSON object per line, for log shippers"
    )
    config_file: Path | None = Field(default=None, description="TOML file the settings came from")

    @field_validator("database_url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql", "postgres")):
            raise ValueError("database_url must be a sqlite:// or postgresql:// URL")
        return value

    @model_validator(mode="after")
    def _threads_fit_the_pool(self) -> Settings:
        if self.request_threads > self.db_pool_size:
            raise ValueError(
                f"request_threads ({self.request_threads}) must not exceed db_pool_size "
                f"({self.db_pool_size}): a request thread would wait for a connection"
            )
        return self

    @model_validator(mode="after")
    def _signed_webhooks(self) -> Settings:
        # an unsigned webhook would let anyone who can reach the receiver start a retraining
        if self.webhook_url and not self.webhook_secret:
            raise ValueError("webhook_url needs webhook_secret (webhooks are signed)")
        if self.smtp_ssl and self.smtp_starttls:
            raise ValueError("choose smtp_ssl (TLS from the start) or smtp_starttls, not both")
        return self

    @field_validator("oidc_allowed_email_domains", "oidc_allowed_groups", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        # the environment gives one string: "a.org, b.org" (or a JSON list, as TOML would)
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("oidc_allowed_email_domains")
    @classmethod
    def _bare_domains(cls, value: list[str]) -> list[str]:
        return [domain.strip().lower().lstrip("@") for domain in value]

    @model_validator(mode="after")
    def _usable_oidc(self) -> Settings:
        if not self.oidc_issuer:
            return self
        if not self.oidc_client_id or not self.oidc_client_secret:
            raise ValueError("oidc_issuer needs oidc_client_id and oidc_client_secret")
        if "openid" not in self.oidc_scopes.split():
            raise ValueError("oidc_scopes must include openid (the ID token says who signed in)")
        parts = urlsplit(self.oidc_issuer)
        loopback = parts.hostname in {"localhost", "127.0.0.1", "::1"}
        # the provider's answers (keys, tokens) must not be readable or alterable on the way
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
            raise ValueError("oidc_issuer must be an https:// URL (http only to a loopback host)")
        return self

    @field_validator("log_level", mode="before")
    @classmethod
    def _any_case_level(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value  # INFO as Python writes it

    @field_validator("device")
    @classmethod
    def _device_name(cls, value: str) -> str:
        if value != "auto" and value != "cpu" and not value.startswith("cuda"):
            raise ValueError("device must be auto, cpu, cuda or cuda:N")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # here, because every Settings(...) passes through it before reading the environment
        refuse_unknown_variables(os.environ)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = _CONFIG_FILE.get("path")
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


PREFIX = "TIDEWATCH_"

# TIDEWATCH_* variables that are not settings but are read elsewhere: they may be set in the same
# environment as the service (a shell, a container, CI), so they must not stop its start.
NOT_SETTINGS = frozenset(
    {
        "TIDEWATCH_CONFIG",  # load_settings() and --config: the TOML file
        "TIDEWATCH_URL",  # CLI --url and collectors.deepaas: the service's address
        "TIDEWATCH_KEY",  # CLI --key and collectors.deepaas: an API key
        "TIDEWATCH_MODEL",  # collectors.deepaas: the monitored model
        "TIDEWATCH_SAMPLER",  # collectors.deepaas: which predictions are sent
        "TIDEWATCH_SPOOL_DIR",  # collectors.client: the telemetry spool folder
        "TIDEWATCH_VARIANT",  # deploy/compose.yaml: the image variant, cpu or cuda
        "TIDEWATCH_TEST_PG",  # tests/conftest.py: the tests' PostgreSQL server
        "TIDEWATCH_BENCH_PG",  # benchmarks/: the benchmarks' PostgreSQL server
        "TIDEWATCH_UPDATE_DOCS",  # tests/alerts/test_browser.py: refresh the e-mail screenshot
    }
)


def _known_variables() -> list[str]:
    return sorted({PREFIX + name.upper() for name in Settings.model_fields} | NOT_SETTINGS)


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """The ``TIDEWATCH_*`` names in ``environ`` that are neither settings nor
    :data:`NOT_SETTINGS`; case-insensitive, as pydantic-settings reads them."""
    known = set(_known_variables())
    return sorted(
        name for name in environ if name.upper().startswith(PREFIX) and name.upper() not in known
    )


def _closest(name: str, known: list[str]) -> str | None:
    # compared without the prefix that every name shares, which would make any two look alike
    tails = [k.removeprefix(PREFIX) for k in known]
    close = difflib.get_close_matches(name.upper().removeprefix(PREFIX), tails, n=1)
    return PREFIX + close[0] if close else None


def _unknown_error(name: str, known: list[str]) -> InitErrorDetails:
    close = _closest(name, known)
    return InitErrorDetails(
        type=PydanticCustomError(
            "unknown_setting",
            "unknown setting {name}{hint}",
            {"name": name, "hint": f" (did you mean {close}?)" if close else ""},
        ),
        loc=(name,),
        input=None,
    )


def refuse_unknown_variables(environ: Mapping[str, str]) -> None:
    """Raise a :class:`~pydantic.ValidationError` naming each unknown ``TIDEWATCH_*`` variable
    and the closest known name; its value is never shown (it may be a password)."""
    unknown = unknown_variables(environ)
    if unknown:
        known = _known_variables()
        raise ValidationError.from_exception_data(
            Settings.__name__, [_unknown_error(name, known) for name in unknown], hide_input=True
        )


# Set only for the duration of load_settings(): pydantic-settings builds sources from the class,
# so the TOML path has to reach settings_customise_sources from outside.
_CONFIG_FILE: dict[str, Path | None] = {}


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Build and validate settings; a missing or malformed TOML file is an error."""
    path = config_file or os.environ.get("TIDEWATCH_CONFIG")
    toml_path = Path(path) if path else None
    if toml_path is not None and not toml_path.is_file():
        raise FileNotFoundError(f"config file {toml_path} does not exist")
    _CONFIG_FILE["path"] = toml_path
    try:
        return Settings(**overrides, config_file=toml_path)
    finally:
        _CONFIG_FILE.clear()
