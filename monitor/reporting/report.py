"""The HTML drift report of one detection run: what drifted, how much, since when, what next.

Tidewatch's own section comes first: the run; each feature's result with its effect size in
the feature's own units; a history strip per drifted feature over the monitor's last windows
with the start of the current episode marked (:mod:`.history`); a plot of every drifted
feature, of whatever kind (:mod:`.plots`); realized beside estimated performance
(:mod:`.performance`); data quality; and what to do, with the commands filled in and the
records to label first (:mod:`.actions`). Evidently's data drift and data summary presets
follow, on the run's window against the version's reference, with the two verdicts compared
(:mod:`.evidently`). The page loads nothing from anywhere (``CSP``) and works offline.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
from jinja2 import Environment, FileSystemLoader
from sqlalchemy.orm import Session

from alerts.effect_text import effect_text, feature_label
from monitor.data.arrays import table_columns
from monitor.data.layout import arrow_schema, from_bytes
from monitor.db.models import RegisteredModel
from monitor.db.references import get_reference
from monitor.db.results import run_performance, run_quality, run_results
from monitor.db.tables import DetectionResult, DetectionRun, PerformanceResult, QualityResult
from monitor.reporting import actions, plots
from monitor.reporting.evidently import (
    PREDICTION_LABEL,
    PREDICTION_VALUE,
    Columns,
    EvidentlyVerdict,
    evidently_html,
    neutralize,
    neutralized,
    to_frame,
    verdicts,
)
from monitor.reporting.history import History, load_history
from monitor.reporting.performance import pairs, why_they_differ
from monitor.runs.windows import load_span, window_span
from monitor.spec.model import ModelSpec
from monitor.vocabulary import RunStatus

__all__ = [
    "CSP",
    "PREDICTION_LABEL",
    "PREDICTION_VALUE",
    "Columns",
    "ReportInput",
    "load_report_input",
    "neutralize",
    "neutralized",
    "render_report",
    "sample",
    "warm_up",
]

# Evidently reports usage unless told not to; set before it is first imported (lazily, in
# .evidently: it takes seconds to import, which the service's start and the CLI should not pay).
os.environ.setdefault("DO_NOT_TRACK", "1")

log = logging.getLogger(__name__)

MAX_ROWS = 50_000  # per side: larger windows and references are sampled for the report
MAX_DRIFTED_PLOTS = 24  # a plot per drifted feature up to this many (the most drifted first)
MAX_CALM_PLOTS = 4  # when nothing drifted: the features closest to drifting, for comparison
# The page loads nothing: scripts, styles, images and fonts are inline or data URIs. The policy
# (also inherited by Evidently's srcdoc iframe) makes sure of it and blocks any request a script
# might try, including one a telemetry value smuggled into Evidently's data.
CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data:; font-src data:; frame-src 'self'"
)


@dataclass(frozen=True)
class ReportInput:
    """What one report shows, read from storage (the session can be closed afterwards)."""

    spec: ModelSpec
    run: DetectionRun
    results: list[DetectionResult]
    quality: list[QualityResult]
    performance: list[PerformanceResult]
    current: pa.Table | None  # the window's records; None when none are stored any more
    reference: pa.Table | None
    notes: list[str] = field(default_factory=list)
    history: list[History] = field(default_factory=list)  # one per drifted feature
    alerts: list[actions.AlertLine] = field(default_factory=list)  # the model's firing alerts
    labelled: set[str] = field(default_factory=set)  # ids of the window's labelled records
    current_version: str | None = None  # the model's current version (promote goes there)


@dataclass(frozen=True)
class Plot:
    feature: str
    kind: str  # what is drawn: distribution, category shares, class mix, projection
    png: str  # a data URI
    state: str  # drifted, not drifted, not tested
    effect: str  # the effect in words ("" without one)


def load_report_input(
    session: Session, registered: RegisteredModel, run: DetectionRun
) -> ReportInput:
    """The run's stored results and history, its window's records, the version's reference,
    the model's firing alerts and which of the window's records are labelled."""
    start, end = window_span(run)
    current = load_span(session, registered, start, end)
    row = get_reference(session, registered)
    reference = None if row is None else from_bytes(row.data)
    notes = []
    if current is None:
        notes.append(
            "The window's telemetry is no longer stored (retention): no plots, no Evidently."
        )
    if reference is None:
        notes.append("This version has no reference: no plots, no Evidently.")
    results = run_results(session, run.id)
    drifted = [r.feature for r in sorted(results, key=_rank) if r.drift]
    return ReportInput(
        spec=registered.spec,
        run=run,
        results=results,
        quality=run_quality(session, run.id),
        performance=run_performance(session, run.id),
        current=current,
        reference=reference,
        notes=notes,
        history=load_history(session, run, drifted),
        alerts=actions.firing_alerts(session, registered.model.id),
        labelled=set()
        if current is None
        else actions.labelled_ids(session, registered.model.id, current),
        current_version=registered.model.current_version,
    )


def sample(table: pa.Table, limit: int = MAX_ROWS, seed: int = 0) -> pa.Table:
    """At most ``limit`` rows, drawn without replacement and kept in order (deterministic)."""
    if table.num_rows <= limit:
        return table
    rng = np.random.default_rng(seed)
    return table.take(np.sort(rng.choice(table.num_rows, size=limit, replace=False)))


def conform(table: pa.Table, spec: ModelSpec) -> pa.Table:
    """``table`` with every column of the model's layout, of the layout's type: a missing
    column as nulls, a number stored as text read as a number (NaN where it is none). Stored
    telemetry already has this form; tables made elsewhere (tests, older files) may not."""
    import pyarrow.compute as pc

    columns = {}
    for target in arrow_schema(spec):
        if target.name not in table.schema.names:
            columns[target.name] = pa.nulls(table.num_rows, target.type)
            continue
        column = table.column(target.name)
        if column.type != target.type:
            try:
                column = pc.cast(column, target.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                if not pa.types.is_floating(target.type):
                    raise
                import pandas as pd

                numbers = pd.to_numeric(pd.Series(column.to_pylist()), errors="coerce")
                column = pa.array(numbers, type=target.type)
        columns[target.name] = column
    return pa.table(columns)


def warm_up() -> None:
    """Import Evidently, pandas and matplotlib (seconds) ahead of the first report request:
    ``tidewatch serve`` calls this in a background thread once its API is up."""
    import importlib

    for module in ("evidently.presets", "matplotlib.backends.backend_agg", "matplotlib.figure"):
        importlib.import_module(module)  # pandas comes with Evidently


def _rank(row: DetectionResult) -> tuple[bool, float, float]:
    p = row.p_adjusted if row.p_adjusted is not None else row.p_value
    return (not row.drift, 1.0 if p is None else p, -(row.statistic or 0.0))


def plot_choice(results: list[DetectionResult], names: list[str]) -> list[tuple[str, str]]:
    """(feature, state) to plot: every drifted feature (up to ``MAX_DRIFTED_PLOTS``, the most
    drifted first); when none drifted, the ``MAX_CALM_PLOTS`` closest to drifting; without
    results, the first columns in declared order. ``names``: the columns that can be drawn."""
    known = set(names)
    ranked = [r for r in sorted(results, key=_rank) if r.feature in known]
    drifted = [(r.feature, "drifted") for r in ranked if r.drift]
    if drifted:
        return drifted[:MAX_DRIFTED_PLOTS]
    if ranked:
        return [(r.feature, "not drifted") for r in ranked[:MAX_CALM_PLOTS]]
    return [(n, "not tested") for n in names[:MAX_CALM_PLOTS]]


def draw_plots(
    spec: ModelSpec, results: list[DetectionResult], current: pa.Table, reference: pa.Table
) -> list[Plot]:
    """A plot per chosen feature, drawn for the kind of column its detector tested."""
    cur, ref = table_columns(current, spec), table_columns(reference, spec)
    names = [*cur.numeric, *cur.categorical, *cur.vector]
    effects = {r.feature: effect_text(r.effect) for r in results}
    drawn = []
    for name, state in plot_choice(results, names):
        png: str | None
        if name in cur.vector:
            kind, png = "projection", plots.projection_png(name, ref.vector[name], cur.vector[name])
        elif name in cur.categorical:
            order = spec.output.classes if name == PREDICTION_LABEL else ()
            kind = "class mix" if name == PREDICTION_LABEL else "category shares"
            png = plots.categorical_png(
                name,
                plots.shares(ref.categorical[name]),
                plots.shares(cur.categorical[name]),
                order,
            )
        else:
            kind = "distribution"
            png = plots.numeric_png(name, ref.numeric[name], cur.numeric[name])
        if png is not None:
            drawn.append(Plot(name, kind, png, state, effects.get(name, "")))
    return drawn


def _evidently_rows(
    data: ReportInput, columns: Columns, verdict: EvidentlyVerdict | None
) -> tuple[list[tuple[str, str, str]], str]:
    tested = [r for r in data.results if r.statistic is not None or r.drift]
    seen = set(columns.numerical) | set(columns.categorical)
    left_out = sorted({r.feature for r in tested} - seen)
    monitor = next((m for m in data.spec.monitors if m.name == data.run.monitor), None)
    return verdicts(
        verdict,
        data.run.status == RunStatus.DRIFT,
        sum(r.drift for r in tested),
        len(tested),
        data.run.correction,
        data.run.alpha,
        None if monitor is None else monitor.drift_share,
        left_out,
    )


def render_report(data: ReportInput, link_query: str = "") -> str:
    """The whole page (Tidewatch's section, then Evidently's) as an HTML string.

    ``link_query``: ``?expires=...&token=...`` when the page was opened by a signed link, so
    that the page's link to the label candidates opens with it too.
    """
    began = time.perf_counter()
    columns = Columns.of(data.spec)
    notes = list(data.notes)
    drawn: list[Plot] = []
    candidates: list[actions.Candidate] = []
    evidently = ""
    verdict: EvidentlyVerdict | None = None
    n_current = n_reference = 0
    if data.current is not None and data.reference is not None:
        n_current, n_reference = data.current.num_rows, data.reference.num_rows
        current, reference = sample(data.current), sample(data.reference)
        if max(n_current, n_reference) > MAX_ROWS:
            notes.append(f"Plots and Evidently use a random sample of {MAX_ROWS:,} rows per side.")
        try:
            whole = conform(data.current, data.spec)
            current, reference = conform(current, data.spec), conform(reference, data.spec)
            drawn = draw_plots(data.spec, data.results, current, reference)
            candidates = actions.label_candidates(
                data.spec, data.results, whole, reference, data.labelled, actions.SHOWN
            )
        except Exception as exc:  # a plot's failure must not hide the page's tables
            log.exception("plots failed on run %s", data.run.id)
            notes.append(f"Plots could not be drawn: {type(exc).__name__}: {exc}")
        try:
            evidently, verdict = evidently_html(
                to_frame(sample(data.current), columns),
                to_frame(sample(data.reference), columns),
                columns,
            )
        except Exception as exc:  # Evidently's failure must not hide Tidewatch's own section
            log.exception("Evidently failed on run %s", data.run.id)
            notes.append(f"Evidently could not build its report: {type(exc).__name__}: {exc}")
    n_drifted = sum(r.drift for r in data.results)
    if n_drifted > MAX_DRIFTED_PLOTS and drawn:
        notes.append(f"Plots show the {MAX_DRIFTED_PLOTS} most drifted of {n_drifted} features.")
    run = data.run
    start, end = window_span(run)
    found = pairs(data.performance)
    rows, why = _evidently_rows(data, columns, verdict) if evidently else ([], "")
    log.info("report of run %s rendered in %.2f s", run.id, time.perf_counter() - began)
    return _ENV.get_template("report.html.j2").render(
        spec=data.spec,
        run=run,
        verdict=RunStatus(run.status).verdict,  # ok, warning or drift: styled as such
        results=sorted(data.results, key=_rank),
        effects={r.feature: effect_text(r.effect) for r in data.results},
        history=data.history,
        strip=data.history[0].points if data.history else [],
        quality=data.quality,
        pairs=found,
        streams=[p for p in data.performance if p.metric.startswith("stream.")],
        why_differ=why_they_differ(found, run.n_current),
        plots=drawn,
        promote=actions.promote_command(data.spec.name, start, end),
        current_version=data.current_version,
        alerts=[(a, actions.ack_command(a.id), actions.silence_command(a.id)) for a in data.alerts],
        candidates=candidates,
        candidates_csv=f"runs/{run.id}/label-candidates.csv{link_query}",
        region_sentence=actions.REGION_SENTENCE,
        labels_route=f"/api/v1/models/{data.spec.name}/labels",
        columns=columns,
        vectors=[f for f in data.spec.features if f.kind == "vector"],
        notes=notes,
        n_current=n_current,
        n_reference=n_reference,
        evidently=evidently,
        verdict_rows=rows,
        verdict_why=why,
        csp=CSP,
    )


def _number(value: float | None) -> str:
    """3 significant digits; a dash for none."""
    return "\u2013" if value is None else f"{value:.3g}"


def _moment(value: datetime | None) -> str:
    """A moment as people read it: ``2026-03-02 08:14:59 UTC`` (the JSON keeps full precision)."""
    return "\u2013" if value is None else f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _percent(value: float | None) -> str:
    """A share as a percentage, 3 significant digits at most: ``0.5`` is ``50%``."""
    return "\u2013" if value is None else f"{100 * value:.3g}%"


def _short(value: datetime | None) -> str:
    return "\u2013" if value is None else value.astimezone(UTC).strftime("%m-%d %H:%M:%S")


_ENV = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters["num"] = _number
_ENV.filters["moment"] = _moment
_ENV.filters["percent"] = _percent
_ENV.filters["short"] = _short
_ENV.filters["feature"] = feature_label
