"""The ``tidewatch`` command line: one module per command group.

Groups that work on the database (``db``, ``models``, ``keys``, ``monitors``, ``alerts``, and
``detect``/``backfill``/``status``) take ``--config``; groups that talk to a running service
as a module would (``reference``, ``collect``) take ``--url`` and ``--key``.

The root imports only the module of the command it runs (:data:`COMMANDS`): importing every
command module and letting typer build the whole command tree was about a tenth of
``tidewatch models list`` (issue 17). ``--help`` still lists every command, by loading them.
"""

from __future__ import annotations

import gc
import importlib
import os
from collections.abc import Iterator, MutableMapping
from typing import Any

import typer
from typer.core import TyperGroup

from monitor.cli import logging_options

# name -> (module, attribute): a typer group, or a function that is one command. In the order
# `tidewatch --help` lists them.
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("monitor.cli.service", "serve"),
    "worker": ("monitor.cli.service", "worker"),
    "demo": ("monitor.cli.service", "demo"),
    "collect": ("monitor.cli.collect", "collect"),
    "detect": ("monitor.cli.detection", "detect"),
    "backfill": ("monitor.cli.detection", "backfill"),
    "status": ("monitor.cli.detection", "status"),
    "db": ("monitor.cli.db", "group"),
    "models": ("monitor.cli.models", "group"),
    "keys": ("monitor.cli.keys", "group"),
    "reference": ("monitor.cli.reference", "group"),
    "monitors": ("monitor.cli.monitors", "group"),
    "dashboards": ("monitor.cli.dashboards", "group"),
    "alerts": ("monitor.cli.alerts", "group"),
}


def load(name: str) -> Any:
    """The click command (or group) ``name``, built from its module."""
    module, attribute = COMMANDS[name]
    found = getattr(importlib.import_module(module), attribute)
    # registered on a root of its own, as it would be on the whole tree's (typer makes a root
    # of one command that command; completion options are the real root's)
    root = typer.Typer(add_completion=False)
    if isinstance(found, typer.Typer):
        root.add_typer(found, name=name)
        return typer.main.get_command(root).commands[name]  # type: ignore[attr-defined]
    root.command(name=name)(found)
    return typer.main.get_command(root)


class _Commands(MutableMapping[str, Any]):
    """The root's commands by name, each loaded the first time it is looked up."""

    def __init__(self) -> None:
        self._loaded: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._loaded:
            if name not in COMMANDS:
                raise KeyError(name)
            self._loaded[name] = load(name)
        return self._loaded[name]

    def __contains__(self, name: object) -> bool:  # without loading it
        return name in COMMANDS or name in self._loaded

    def __setitem__(self, name: str, command: Any) -> None:
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        del self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter({**dict.fromkeys(COMMANDS), **dict.fromkeys(self._loaded)})

    def __len__(self) -> int:
        return len(set(COMMANDS) | set(self._loaded))


class LazyGroup(TyperGroup):
    """Typer's group, with :class:`_Commands` for its commands (click looks a command up by
    name; help and completion list them all)."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = _Commands()


app = typer.Typer(
    cls=LazyGroup, help="Tidewatch: monitoring for ML models in production.", no_args_is_help=True
)
app.callback()(logging_options.options)  # --log-level and --log-format, before the command


def main() -> None:
    os.environ.setdefault("DO_NOT_TRACK", "1")  # library usage telemetry stays off
    # What the imports made (modules, classes, schemas) lives as long as the process: frozen,
    # the cyclic collector stops walking it at each collection and at exit, which was a sixth
    # of a command's start-up (see the README's "Start-up time")
    gc.freeze()
    app()
