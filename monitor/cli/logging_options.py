"""``tidewatch --log-level LEVEL --log-format text|json COMMAND``: how much every command logs.

A command that prints its own output (``models list``, ``detect``, ``demo``, ...) logs only
warnings unless ``--log-level`` (or ``TIDEWATCH_LOG_LEVEL``) asks for more, so its output is
its table and nothing else. ``serve`` and ``worker`` log at the settings' ``log_level``
(``info`` unless set), which ``--log-level`` overrides. Libraries log only warnings either way
(see :mod:`monitor.observability.logs`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

import typer

from monitor.observability.logs import configure

if TYPE_CHECKING:  # `tidewatch --help` loads no settings
    from monitor.settings import Settings

COMMAND_LEVEL = "warning"  # a command's output is what it prints
# what --log-level and --log-format said (one command per process). Not click's context: typer
# runs its own copy of click, so click.get_current_context() never sees typer's context.
_chosen: dict[str, str | None] = {}


def options(
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
    _chosen.update(log_level=log_level, log_format=log_format)
    configure((log_level or COMMAND_LEVEL).lower(), log_format or "text")


def service_logging(settings: Settings) -> None:
    """Logging for ``serve`` and ``worker``: ``--log-level`` and ``--log-format`` when given,
    else the settings (``TIDEWATCH_LOG_LEVEL``, the TOML file, ``info``)."""
    level = _chosen.get("log_level") or settings.log_level
    configure(level.lower(), _chosen.get("log_format") or settings.log_format)
