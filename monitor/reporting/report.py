"""The HTML drift report of one detection run: Tidewatch's stored verdicts, plots, Evidently.

The page has Tidewatch's own section on top (the run, its per-feature results, data quality,
performance, and reference-vs-current histograms of the most drifted numeric features) and
Evidently's data drift and data summary presets below, computed on the run's window and the
version's reference. Evidently's page is a whole document with its JavaScript bundled inline,
so it is embedded as a sandboxed ``srcdoc`` iframe: nothing is downloaded when the page is
opened, and nothing in it runs with the report's origin. Telemetry values (category values,
class names) are written into Evidently's page as inline script data, so they are neutralized
before Evidently sees them (``neutralize``): none can close a script element or add markup.
The page works offline.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from jinja2 import Environment
from sqlalchemy.orm import Session

from monitor.data.layout import from_bytes
from monitor.db.models import RegisteredModel
from monitor.db.references import get_reference
from monitor.db.results import run_performance, run_quality, run_results
from monitor.db.tables import DetectionResult, DetectionRun, PerformanceResult, QualityResult
from monitor.runs.windows import load_span, window_span
from monitor.spec.model import ModelSpec
from monitor.vocabulary import RunStatus

if TYPE_CHECKING:
    import pandas as pd

# Evidently reports usage unless told not to; set before it is first imported (lazily, below:
# it takes seconds to import, which the service's start and the CLI should not pay).
os.environ.setdefault("DO_NOT_TRACK", "1")

log = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_ROWS = 50_000  # per side: larger windows and references are sampled for the report
MAX_PLOTS = 4
# The page loads nothing: scripts, styles, images and fonts are inline or data URIs. The policy
# (also inherited by Evidently's srcdoc iframe) makes sure of it and blocks any request a script
# might try, including one a telemetry value smuggled into Evidently's data.
CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data:; font-src data:; frame-src 'self'"
)
PREDICTION_LABEL = "prediction.label"
PREDICTION_VALUE = "prediction.value"


@dataclass(frozen=True)
class Columns:
    """The report's columns: named as in the results (features by name, the prediction)."""

    numerical: list[str]
    categorical: list[str]
    vectors: list[str]  # not given to Evidently: one column per dimension is too wide
    source: dict[str, str]  # report column -> Arrow column

    @classmethod
    def of(cls, spec: ModelSpec) -> Columns:
        numerical = [f.name for f in spec.features if f.kind == "numeric"]
        categorical = [f.name for f in spec.features if f.kind == "categorical"]
        vectors = [f.name for f in spec.features if f.kind == "vector"]
        source = {name: f"f.{name}" for name in numerical + categorical}
        if spec.output.task == "classification" and PREDICTION_LABEL not in source:
            categorical.append(PREDICTION_LABEL)
            source[PREDICTION_LABEL] = "p.label"
        elif spec.output.task == "regression" and PREDICTION_VALUE not in source:
            numerical.append(PREDICTION_VALUE)
            source[PREDICTION_VALUE] = "p.value"
        return cls(numerical, categorical, vectors, source)


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


@dataclass(frozen=True)
class Plot:
    feature: str
    png: str  # a data URI
    drift: bool | None


def load_report_input(
    session: Session, registered: RegisteredModel, run: DetectionRun
) -> ReportInput:
    """The run's stored results, its window's records and the version's reference."""
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
    return ReportInput(
        spec=registered.spec,
        run=run,
        results=run_results(session, run.id),
        quality=run_quality(session, run.id),
        performance=run_performance(session, run.id),
        current=current,
        reference=reference,
        notes=notes,
    )


def sample(table: pa.Table, limit: int = MAX_ROWS, seed: int = 0) -> pa.Table:
    """At most ``limit`` rows, drawn without replacement and kept in order (deterministic)."""
    if table.num_rows <= limit:
        return table
    rng = np.random.default_rng(seed)
    return table.take(np.sort(rng.choice(table.num_rows, size=limit, replace=False)))


def to_frame(table: pa.Table, columns: Columns) -> pd.DataFrame:
    """The report's columns of an Arrow table (missing values as NaN / None)."""
    import pandas as pd

    present = {name: arrow for name, arrow in columns.source.items() if arrow in table.schema.names}
    frame = table.select(list(present.values())).to_pandas()
    frame.columns = list(present)
    for name in columns.numerical:
        if name in frame:
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    for name in columns.categorical:
        if name in frame:
            frame[name] = frame[name].astype("object")
    return frame


# Look-alikes (fullwidth forms) for the characters that make markup. Evidently writes values
# unescaped into JSON inside inline <script> elements (and Plotly reads a few tags in labels),
# so "</script><script>..." in a category value would end its data and run as script in the
# frame. Replacing the characters in the values themselves, before Evidently sees them, is the
# guarantee: without a "<" no value can close a script, open an HTML comment (which hides the
# real </script>) or start a tag, wherever Evidently puts it. Escaping "</" in Evidently's
# output instead would mean parsing its page to tell its own tags from data, and break with its
# next template. The values stay legible; the cost is that "a<b" and "a\uff1cb" become one
# category in Evidently's section (never in the monitor's own results).
_LOOK_ALIKES = str.maketrans({"<": "\uff1c", ">": "\uff1e", "&": "\uff06"})


def neutralize(value: object) -> object:
    """A string with look-alikes for ``<``, ``>`` and ``&``; anything else unchanged.

    >>> neutralize("</script>"), neutralize(1.5), neutralize(None)
    ('\uff1c/script\uff1e', 1.5, None)
    """
    return value.translate(_LOOK_ALIKES) if isinstance(value, str) else value


def neutralized(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with every non-numeric cell, and every column name, through ``neutralize``.

    Column names are feature names, which the spec already limits to ``[A-Za-z0-9_.-]``; they
    go through it anyway so that the guarantee does not depend on that rule.
    """
    import pandas as pd

    safe = frame.rename(columns=lambda name: str(neutralize(str(name))))
    for name in safe.columns:
        if not pd.api.types.is_numeric_dtype(safe[name]):
            safe[name] = safe[name].astype("object").map(neutralize)
    return safe


def warm_up() -> None:
    """Import Evidently, pandas and matplotlib (seconds) ahead of the first report request:
    ``tidewatch serve`` calls this in a background thread once its API is up."""
    import importlib

    for module in ("evidently.presets", "matplotlib.backends.backend_agg", "matplotlib.figure"):
        importlib.import_module(module)  # pandas comes with Evidently


def evidently_html(current: pd.DataFrame, reference: pd.DataFrame, columns: Columns) -> str:
    """Evidently's data drift and data summary presets, as one standalone HTML document.

    Every value and column name given to Evidently is ``neutralize``d first (here, not in the
    callers: no path to Evidently can skip it).
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset, DataSummaryPreset

    current, reference = neutralized(current), neutralized(reference)
    definition = DataDefinition(
        numerical_columns=[n for c in columns.numerical if (n := str(neutralize(c))) in current],
        categorical_columns=[
            n for c in columns.categorical if (n := str(neutralize(c))) in current
        ],
    )
    snapshot = Report([DataDriftPreset(), DataSummaryPreset()]).run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
    )
    html: str = snapshot.get_html_str(as_iframe=False)
    return _with_height_reporter(html)


# Posted to the report page so it can size the sandboxed iframe to Evidently's content. The
# body's height (not the document's) is used: it does not grow with the iframe itself.
_HEIGHT_REPORTER = """<script>
(function () {
  function post() {
    parent.postMessage({tidewatchHeight: document.body.scrollHeight}, "*");
  }
  new ResizeObserver(post).observe(document.body);
  window.addEventListener("load", post);
})();
</script>
"""


def _with_height_reporter(html: str) -> str:
    head, tag, tail = html.rpartition("</body>")
    return head + _HEIGHT_REPORTER + tag + tail if tag else html + _HEIGHT_REPORTER


def _rank(row: DetectionResult) -> tuple[bool, float, float]:
    p = row.p_adjusted if row.p_adjusted is not None else row.p_value
    return (not row.drift, 1.0 if p is None else p, -(row.statistic or 0.0))


def plot_features(data: ReportInput, columns: Columns) -> list[str]:
    """Up to ``MAX_PLOTS`` numeric columns, the most drifted first (declared order without
    results)."""
    numeric = set(columns.numerical)
    ranked = sorted((r for r in data.results if r.feature in numeric), key=_rank)
    chosen = [r.feature for r in ranked] or columns.numerical
    return chosen[:MAX_PLOTS]


def histogram_png(feature: str, reference: np.ndarray, current: np.ndarray) -> str | None:
    """Reference and current densities on shared bins, as a PNG data URI (None: no values)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    reference = reference[np.isfinite(reference)]
    current = current[np.isfinite(current)]
    if not reference.size or not current.size:
        return None
    edges = np.histogram_bin_edges(np.concatenate([reference, current]), bins=30).tolist()
    # a Figure of its own, not pyplot: pyplot's global state is not safe across threads
    figure = Figure(figsize=(4.2, 2.6), dpi=80)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.hist(reference, bins=edges, density=True, alpha=0.55, color="#1f77b4", label="reference")
    axes.hist(current, bins=edges, density=True, alpha=0.55, color="#d62728", label="current")
    axes.set_title(feature, fontsize=10)
    axes.tick_params(labelsize=8)
    axes.legend(fontsize=8, frameon=False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def render_report(data: ReportInput) -> str:
    """The whole page (Tidewatch's section, then Evidently's) as an HTML string."""
    began = time.perf_counter()
    columns = Columns.of(data.spec)
    notes = list(data.notes)
    plots: list[Plot] = []
    evidently = ""
    n_current = n_reference = 0
    if data.current is not None and data.reference is not None:
        n_current, n_reference = data.current.num_rows, data.reference.num_rows
        current = to_frame(sample(data.current), columns)
        reference = to_frame(sample(data.reference), columns)
        if max(n_current, n_reference) > MAX_ROWS:
            notes.append(f"Plots and Evidently use a random sample of {MAX_ROWS:,} rows per side.")
        drift = {r.feature: r.drift for r in data.results}
        for name in plot_features(data, columns):
            if name in current and name in reference:
                png = histogram_png(
                    name, reference[name].to_numpy(float), current[name].to_numpy(float)
                )
                if png is not None:
                    plots.append(Plot(name, png, drift.get(name)))
        try:
            evidently = evidently_html(current, reference, columns)
        except Exception as exc:  # Evidently's failure must not hide Tidewatch's own section
            log.exception("Evidently failed on run %s", data.run.id)
            notes.append(f"Evidently could not build its report: {type(exc).__name__}: {exc}")
    log.info("report of run %s rendered in %.2f s", data.run.id, time.perf_counter() - began)
    return _TEMPLATE.render(
        spec=data.spec,
        run=data.run,
        verdict=RunStatus(data.run.status).verdict,  # ok, warning or drift: styled as such
        results=data.results,
        quality=data.quality,
        performance=data.performance,
        plots=plots,
        columns=columns,
        vectors=[f for f in data.spec.features if f.kind == "vector"],
        notes=notes,
        n_current=n_current,
        n_reference=n_reference,
        evidently=evidently,
        csp=CSP,
    )


def _number(value: float | None) -> str:
    return "\u2013" if value is None else f"{value:.4g}"


def _moment(value: datetime | None) -> str:
    return "\u2013" if value is None else value.astimezone(UTC).isoformat(timespec="milliseconds")


_ENV = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
_ENV.filters["num"] = _number
_ENV.filters["moment"] = _moment

_TEMPLATE = _ENV.from_string(
    """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{{ csp }}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tidewatch: {{ spec.name }} v{{ spec.version }}, run {{ run.id }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 0; color: #1d2330; background: #fff; }
main { max-width: 1180px; margin: 0 auto; padding: 16px 24px; }
h1 { font-size: 1.5rem; margin: 0.4rem 0; }
h2 { font-size: 1.15rem; margin: 1.4rem 0 0.5rem; }
table { border-collapse: collapse; font-size: 0.9rem; }
th, td { padding: 4px 10px; border-bottom: 1px solid #dde1e8; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.status { display: inline-block; padding: 2px 10px; border-radius: 10px; color: #fff; }
.s-ok { background: #2e7d32; } .s-warning { background: #ef6c00; } .s-drift { background: #c62828; }
.s-other { background: #607d8b; }
tr.flag td { background: #fdecea; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
.plots figure { margin: 0; } .plots figcaption { font-size: 0.85rem; }
.note { color: #5a6270; font-size: 0.9rem; }
iframe { width: 100%; height: 1600px; border: 1px solid #dde1e8; }
</style>
</head>
<body>
<main>
<h1>Drift report: {{ spec.name }} v{{ spec.version }}, run {{ run.id }}</h1>
{% set kind = run.status if verdict else "other" %}
<p><span class="status s-{{ kind }}">{{ run.status }}</span> {{ run.message }}</p>
<table>
<tr><th>monitor</th><td>{{ run.monitor }}</td></tr>
<tr><th>window</th><td>{{ run.window_start | moment }} to {{ run.window_end | moment }}
{% if run.window_key %} ({{ run.window_key }}){% endif %}</td></tr>
<tr><th>records</th><td>{{ run.n_current }} in the run, {{ run.n_reference }} in the reference
{%- if n_current %}; {{ n_current }} stored now with timestamps in the window{% endif %}</td></tr>
<tr><th>drifted share</th><td>{{ run.drifted_share | num }}
(correction {{ run.correction }}, alpha {{ run.alpha | num }})</td></tr>
<tr><th>computed</th><td>{{ run.started_at | moment }} ({{ run.trigger }})</td></tr>
</table>
{% for note in notes %}<p class="note">{{ note }}</p>{% endfor %}

<h2>Feature drift</h2>
{% if results %}
<table>
<tr><th>feature</th><th>method</th><th>statistic</th><th>p-value</th><th>adjusted</th>
<th>drift</th><th>reference</th><th>current</th></tr>
{% for r in results %}
<tr{% if r.drift %} class="flag"{% endif %}><td>{{ r.feature }}</td><td>{{ r.method }}</td>
<td class="n">{{ r.statistic | num }}</td><td class="n">{{ r.p_value | num }}</td>
<td class="n">{{ r.p_adjusted | num }}</td><td>{{ "yes" if r.drift else "no" }}</td>
<td class="n">{{ r.n_reference }}</td><td class="n">{{ r.n_current }}</td></tr>
{% endfor %}
</table>
{% else %}<p class="note">No drift results were stored for this run.</p>{% endif %}

{% if plots %}
<h2>Reference and current distributions</h2>
<div class="plots">
{% for p in plots %}
<figure><img src="{{ p.png }}" alt="histograms of {{ p.feature }}" width="336" height="208">
<figcaption>{{ p.feature }}{% if p.drift %} (drifted){% endif %}</figcaption></figure>
{% endfor %}
</div>
{% endif %}

{% if quality %}
<h2>Data quality</h2>
<table>
<tr><th>feature</th><th>check</th><th>value</th><th>reference</th><th>problem</th></tr>
{% for q in quality %}
<tr{% if q.problem %} class="flag"{% endif %}><td>{{ q.feature }}</td><td>{{ q.check }}</td>
<td class="n">{{ q.value | num }}</td><td class="n">{{ q.reference_value | num }}</td>
<td>{{ "yes" if q.problem else "no" }}</td></tr>
{% endfor %}
</table>
{% endif %}

{% if performance %}
<h2>Performance</h2>
<table>
<tr><th>metric</th><th>value</th><th>threshold</th><th>problem</th><th>labels</th></tr>
{% for m in performance %}
<tr{% if m.problem %} class="flag"{% endif %}><td>{{ m.metric }}</td>
<td class="n">{{ m.value | num }}</td><td class="n">{{ m.threshold | num }}</td>
<td>{{ "yes" if m.problem else "no" }}</td><td class="n">{{ m.n_labels }}</td></tr>
{% endfor %}
</table>
{% endif %}

{% if evidently %}
<h2>Evidently: data drift and data summary</h2>
<p class="note">Computed by Evidently with its own default tests and thresholds on
{{ n_current }} current and {{ n_reference }} reference rows
({{ columns.numerical | join(", ") }}{% if columns.numerical and columns.categorical %}, {% endif %}
{{ columns.categorical | join(", ") }}); its verdicts may differ from the monitor's above, which
are the ones Tidewatch alerts on.
{% if vectors %}Vector features ({% for v in vectors %}{{ v.name }}: {{ v.dim }} dimensions
{%- if not loop.last %}, {% endif %}{% endfor %}) are left out of it; their drift is in the
table above.{% endif %}</p>
<iframe id="evidently" title="Evidently report" sandbox="allow-scripts"
 srcdoc="{{ evidently }}"></iframe>
<script>
window.addEventListener("message", function (event) {
  var frame = document.getElementById("evidently");
  var data = event.data;
  if (frame && event.source === frame.contentWindow && data && data.tidewatchHeight > 0) {
    frame.style.height = Math.min(data.tidewatchHeight + 32, 40000) + "px";
  }
});
</script>
{% endif %}
</main>
</body>
</html>
"""
)
