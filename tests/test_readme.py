"""The README tells the truth: its shell and Python examples run as written.

Fenced ``bash`` blocks run in order in one shell (so a key exported in one is there for the
next), in a copy of ``examples/``, with ``tidewatch`` from this environment on the PATH and the
service they start on port 8000. ``python`` blocks run after them, each in its own interpreter.
``json`` blocks parse, and validate against the model their marker names. A block that needs a
module's own model or data says so in a marker on the line before it:
``<!-- readme-test: skip: <why> -->``. Every ``tidewatch ...`` command named inline in the
prose exists (its ``--help`` answers).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from alerts.rules import AlertRule
from monitor.spec.model import ModelSpec, MonitorConfig
from tests.conftest import service_missing

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BIN = Path(sys.executable).parent
PORT = 8000  # the README's own


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    marker: str | None  # what the readme-test comment above it says


def blocks(text: str) -> list[Block]:
    found: list[Block] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[i])
        if fence is None:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        above = re.match(r"^<!-- readme-test: (.*) -->$", lines[i - 1]) if i else None
        code = "\n".join(lines[i + 1 : end])
        found.append(Block(i + 1, fence[1], code, above[1] if above else None))
        i = end + 1
    return found


ALL = blocks(README.read_text())


def _runnable(lang: str) -> list[Block]:
    return [b for b in ALL if b.lang == lang and not (b.marker or "").startswith("skip")]


def test_every_skipped_block_says_why() -> None:
    for block in ALL:
        if block.marker is not None and block.marker.startswith("skip"):
            assert len(block.marker.removeprefix("skip:").strip()) > 10, block.line
    # the examples a user runs first are not skipped
    assert _runnable("bash") and _runnable("python")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _environment(home: Path) -> dict[str, str]:
    # a new user's shell: no TIDEWATCH_* from this test session, this environment's commands
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDEWATCH_")}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        HOME=str(home),
        COLUMNS="100",
        DO_NOT_TRACK="1",
    )
    return env


def test_the_shell_examples_run_as_written(tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        service_missing("curl", "the README's examples use it")
    if not _port_free(PORT):
        service_missing(f"port {PORT}", "another process holds the README's port")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    script = ["set -euo pipefail", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT"]
    for block in _runnable("bash"):
        script += [f"echo '=== README.md line {block.line}'", f"cd {shlex.quote(str(tmp_path))}"]
        script.append(block.code)
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=tmp_path,
        env=_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
        start_new_session=True,  # the background `serve` goes with the trap, or with the group
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    # what the README says these commands show
    assert "DRIFT" in done.stdout  # the verdict of `tidewatch detect plankton` on current.csv
    assert '"ignored_features":{"sharpness":1}' in done.stdout.replace(" ", "")  # the curl


def test_the_python_examples_run_as_written(tmp_path: Path) -> None:
    for block in _runnable("python"):
        done = subprocess.run(
            [sys.executable, "-c", block.code],
            cwd=tmp_path,
            env=_environment(tmp_path),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"README.md line {block.line}:\n{done.stderr[-3000:]}"


def test_the_json_examples_are_valid() -> None:
    checked = 0
    for block in (b for b in ALL if b.lang == "json"):
        data = json.loads(block.code)  # every JSON block parses
        if block.marker == "same as examples/plankton/plankton.json":
            assert data == json.loads((ROOT / "examples/plankton/plankton.json").read_text())
            ModelSpec.model_validate(data)
        elif block.marker == "a monitor":
            MonitorConfig.model_validate(data)
        elif block.marker == "alert rules":
            for rule in data["alerts"]:
                AlertRule.model_validate(rule)
        else:
            raise AssertionError(f"README.md line {block.line}: say what this JSON is")
        checked += 1
    assert checked >= 3


INLINE = re.compile(r"`(tidewatch [^`]*)`")


def test_commands_named_in_the_prose_exist() -> None:
    """Each inline ``tidewatch ...`` names a real command, with options it really has.

    (Typer runs its own copy of click, so groups are told by their ``commands``.)"""
    import typer

    from monitor.cli import app

    root = typer.main.get_command(app)
    named = {m[1] for m in INLINE.finditer(README.read_text())}
    assert len(named) > 10
    for command in sorted(named):
        tokens = shlex.split(command.replace("...", ""))[1:]
        current, path = root, ["tidewatch"]
        options = set(current.params and [o for p in current.params for o in p.opts])
        for token in tokens:
            if token in getattr(current, "commands", {}):
                current = current.commands[token]
                path.append(token)
                options |= {o for p in current.params for o in p.opts}
        assert len(path) > 1 or tokens[0].startswith("-"), f"`{command}`: no such command"
        # a group alone names no command (the root alone: its options, `tidewatch --log-...`)
        group_alone = hasattr(current, "commands") and len(path) > 1
        assert not group_alone or "--help" in tokens, f"`{command}`: which command of the group?"
        for option in (t.split("=")[0] for t in tokens if t.startswith("--")):
            assert option in options | {"--help"}, f"`{command}`: {' '.join(path)} has no {option}"
