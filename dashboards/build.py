"""Encode the dashboards to Grafana JSON, write them, list their queries, draw their layouts.

Why: the dashboards are code, but Grafana provisions JSON files. ``build_all`` is the one place
that turns the builders into the JSON kept in ``deploy/grafana/dashboards`` (written by
``tidewatch dashboards build``, pushed by ``tidewatch dashboards push``); a test fails when the
kept JSON is not what the code generates. ``panel_queries`` lists every PromQL expression so
that tests can check them against the /metrics contract (and against a real Prometheus), and
``layout_svg`` draws a dashboard's grid for the docs without running Grafana.

``python -m dashboards.build`` rewrites the JSON and the SVG pictures in the repository.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards import model, overview

DASHBOARDS: dict[str, Callable[[], Dashboard]] = {
    "overview.json": overview.dashboard,
    "model.json": model.dashboard,
}
ROOT = Path(__file__).resolve().parent.parent
JSON_DIR = ROOT / "deploy" / "grafana" / "dashboards"
SVG_DIR = ROOT / "docs" / "dashboards"

# the picture: pixels per grid column and per grid row
COLUMN_PX = 32
ROW_PX = 20
CHAR_PX = 7  # about one character of 12 px sans-serif


def encode(builder: Dashboard) -> dict[str, Any]:
    """The dashboard as the plain JSON Grafana reads."""
    encoded: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    return encoded


def build_all() -> dict[str, dict[str, Any]]:
    """Every dashboard by its file name."""
    return {name: encode(make()) for name, make in DASHBOARDS.items()}


def dump(dashboard: dict[str, Any]) -> str:
    """The text kept in the repository: sorted keys, two-space indents, a final newline."""
    return json.dumps(dashboard, indent=2, sort_keys=True) + "\n"


def write_all(directory: Path) -> list[Path]:
    """Write every dashboard into ``directory`` (created when missing); the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, dashboard in build_all().items():
        path = directory / name
        path.write_text(dump(dashboard), encoding="utf-8")
        written.append(path)
    return written


def all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows included, with the panels of collapsed rows after their row."""
    found = []
    for panel in dashboard.get("panels", []):
        found.append(panel)
        found.extend(panel.get("panels", []) if panel.get("type") == "row" else [])
    return found


def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) of every target of every panel, rows' panels included."""
    return [
        (panel.get("title", ""), target.get("expr", ""))
        for panel in all_panels(dashboard)
        for target in panel.get("targets", [])
    ]


def _fit(text: str, width_px: int) -> str:
    most = max(1, width_px // CHAR_PX)
    return text if len(text) <= most else text[: most - 1] + "\u2026"


def _rect(panel: dict[str, Any]) -> str:
    pos = panel["gridPos"]
    x, y = pos["x"] * COLUMN_PX, pos["y"] * ROW_PX
    w, h = pos["w"] * COLUMN_PX, pos["h"] * ROW_PX
    title = escape(_fit(panel.get("title", ""), w - 12))
    if panel.get("type") == "row":
        return (
            f'<rect class="row" x="{x}" y="{y}" width="{w}" height="{h}" fill="#d8d9da"/>'
            f'<text x="{x + 6}" y="{y + 15}" font-weight="bold">{title}</text>'
        )
    kind = escape(panel.get("type", ""))
    return (
        f'<rect class="panel" x="{x + 2}" y="{y + 2}" width="{w - 4}" height="{h - 4}" rx="3" '
        f'fill="#f4f5f5" stroke="#9fa7b3"/>'
        f'<text x="{x + 8}" y="{y + 17}">{title}</text>'
        f'<text x="{x + 8}" y="{y + 31}" fill="#6e7687" font-size="10">{kind}</text>'
    )


def layout_svg(dashboard: dict[str, Any]) -> str:
    """The dashboard's 24-column grid as SVG: one rectangle per panel, rows as grey bands."""
    panels = [panel for panel in all_panels(dashboard) if "gridPos" in panel]
    rows = max((p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels), default=1)
    width, height = 24 * COLUMN_PX, rows * ROW_PX
    title = escape(dashboard.get("title", ""))
    lines = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f"<title>{title}</title>",
        *(_rect(panel) for panel in panels),
        "</svg>",
    ]
    return "\n".join(lines) + "\n"


def write_layouts(directory: Path) -> list[Path]:
    """Write ``<name>.svg`` for every dashboard into ``directory``; the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, dashboard in build_all().items():
        path = directory / name.replace(".json", ".svg")
        path.write_text(layout_svg(dashboard), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_all(JSON_DIR) + write_layouts(SVG_DIR):
        print(path.relative_to(ROOT))
