"""``tidewatch --log-level LEVEL --log-format text|json COMMAND``: how much every command logs.

A command that prints its own output (``models list``, ``detect``, ``demo``, ...) logs only
warnings unless ``--log-level`` (or ``TIDEWATCH_LOG_LEVEL``) asks for more, so its output is
its table and nothing else. ``serve`` and ``worker`` log at the settings' ``log_level``
(``info`` unless set), which ``--log-level`` overrides. Libraries log only warnings either way
(see :mod:`monitor.observability.logs`).
"""

from __future__ import annotations

from typing import Annotated, Literal

import click
import typer

from monitor.observability.logs import configure
from monitor.settings import Settings

COMMAND_LEVEL = "warning"  # a command's output is what it prints


def options(
    ctx: typer.Context,
    log_level: Annotated[
        Literal["debug", "info", "warning", "error", "critical"] | None,
        typer.Option(
            envvar="TIDEWATCH_LOG_LEVEL",
            case_sensitive=False,
            help="Tidewatch's log lines from this level up (warning; for serve and worker "
            "the log_level setting, info)",
            show_default=False,
        ),
    ] = None,
    log_format: Annotated[
        Literal["text", "json"] | None,
        typer.Option(
            envvar="TIDEWATCH_LOG_FORMAT",
            help="text, or json: one JSON object per line, for log shippers (text)",
            show_default=False,
        ),
    ] = None,
) -> None:
    ctx.obj = {"log_level": log_level, "log_format": log_format}
    configure((log_level or COMMAND_LEVEL).lower(), log_format or "text")


def service_logging(settings: Settings) -> None:
    """Logging for ``serve`` and ``worker``: ``--log-level`` and ``--log-format`` when given,
    else the settings (``TIDEWATCH_LOG_LEVEL``, the TOML file, ``info``)."""
    context = click.get_current_context(silent=True)
    chosen = (context.find_root().obj if context is not None else None) or {}
    level = chosen.get("log_level") or settings.log_level
    configure(level.lower(), chosen.get("log_format") or settings.log_format)
