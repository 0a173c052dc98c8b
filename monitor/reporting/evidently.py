"""Evidently's section of the report: its data drift and data summary presets, and its verdict.

Evidently's page is a whole document with its JavaScript bundled inline, so the report embeds
it as a sandboxed ``srcdoc`` iframe: nothing is downloaded when the page is opened, and nothing
in it runs with the report's origin. Telemetry values (category values, class names) are
written into Evidently's page as inline script data, so they are neutralized before Evidently
sees them (``neutralize``): none can close a script element or add markup.

Evidently and Tidewatch may disagree on whether a window drifted, and the report says why
(:func:`verdicts`): Evidently calls the dataset drifted when at least ``drift_share`` (0.5) of
its columns drifted, each tested alone at its own threshold with no correction for testing
many, and it sees neither vector features nor the prediction's derived columns; Tidewatch tests
every feature and prediction column, corrects the p-values for testing many together
(Benjamini-Hochberg by default), and calls the run drifted when the monitor's ``drift_share``
of them drifted (0 by default: any one).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from monitor.spec.model import ModelSpec

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class EvidentlyVerdict:
    """Evidently's dataset-drift verdict, read from its ``DriftedColumnsCount`` result."""

    drifted: int  # columns Evidently found drifted
    columns: int  # columns it tested
    drift_share: float  # its rule: the dataset drifted when drifted / columns >= this

    @property
    def share(self) -> float:
        return self.drifted / self.columns if self.columns else 0.0

    @property
    def dataset_drift(self) -> bool:
        return bool(self.columns) and self.share >= self.drift_share


def verdict_of(result: dict[str, Any], columns: int) -> EvidentlyVerdict | None:
    """The verdict in a snapshot's ``dict()``; None when its layout is not the one known
    (Evidently 0.7's): the report then states the two rules without Evidently's numbers.

    >>> verdict_of({"metrics": [{"config": {"type": "evidently:metric_v2:DriftedColumnsCount",
    ...     "drift_share": 0.5}, "value": {"count": 1.0, "share": 0.25}}]}, 4)
    EvidentlyVerdict(drifted=1, columns=4, drift_share=0.5)
    """
    for metric in result.get("metrics", ()):
        config = metric.get("config") or {}
        if not str(config.get("type", "")).endswith(":DriftedColumnsCount"):
            continue
        value = metric.get("value") or {}
        count, drift_share = value.get("count"), config.get("drift_share")
        if isinstance(count, int | float) and isinstance(drift_share, int | float):
            return EvidentlyVerdict(int(count), columns, float(drift_share))
    return None


def evidently_html(
    current: pd.DataFrame, reference: pd.DataFrame, columns: Columns
) -> tuple[str, EvidentlyVerdict | None]:
    """Evidently's data drift and data summary presets, as one standalone HTML document, and
    its dataset-drift verdict.

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
    tested = len(definition.numerical_columns or []) + len(definition.categorical_columns or [])
    try:
        verdict = verdict_of(snapshot.dict(), tested)
    except Exception:  # its result's layout is Evidently's own business: the page goes on
        log.exception("could not read Evidently's verdict")
        verdict = None
    return _with_height_reporter(html), verdict


def verdicts(
    evidently: EvidentlyVerdict | None,
    tidewatch_drift: bool,
    drifted: int,
    tested: int,
    correction: str,
    alpha: float,
    drift_share: float | None,
    left_out: list[str],
) -> tuple[list[tuple[str, str, str]], str]:
    """The two rules side by side (who, rule and outcome) and, when the verdicts differ, one
    sentence on why; the sentence is "" when they agree.

    >>> rows, why = verdicts(EvidentlyVerdict(1, 4, 0.5), True, 3, 6, "bh", 0.05, 0.0, ["emb"])
    >>> why[:60]
    'Evidently says no dataset drift although Tidewatch found dri'
    """
    share_rule = (
        "any drifted feature"
        if not drift_share
        else f"at least {100 * drift_share:.3g}% of the tested features drifted"
    )
    ours = (
        f"each feature and prediction column tested, p-values corrected together "
        f"({correction}, alpha {alpha:g}); drift when {share_rule}"
    )
    tidewatch_outcome = (
        f"{drifted} of {tested} drifted: {'drift' if tidewatch_drift else 'no drift'}"
    )
    theirs = "each column tested alone at its own threshold, no correction; dataset drift when "
    if evidently is None:
        theirs += "at least half of its columns drifted"
        outcome = "see its section below"
    else:
        theirs += f"at least {100 * evidently.drift_share:.3g}% of its columns drifted"
        outcome = (
            f"{evidently.drifted} of {evidently.columns} drifted: "
            f"{'dataset drift' if evidently.dataset_drift else 'no dataset drift'}"
        )
    rows = [("Tidewatch (alerts on this)", ours, tidewatch_outcome), ("Evidently", theirs, outcome)]
    if evidently is None or evidently.dataset_drift == tidewatch_drift:
        return rows, ""
    unseen = f" and does not see {', '.join(left_out)}" if left_out else ""
    if tidewatch_drift:
        why = (
            f"Evidently says no dataset drift although Tidewatch found drift: Evidently waits for "
            f"{100 * evidently.drift_share:.3g}% of its columns to drift "
            f"({evidently.drifted} of {evidently.columns} did){unseen}, while this monitor "
            f"alerts on {share_rule}."
        )
    else:
        why = (
            "Evidently says dataset drift although Tidewatch did not: Evidently tests each "
            "column alone without correcting for testing many, and with many rows its distance "
            "tests flag differences too small to matter; Tidewatch corrects the p-values for "
            f"the {tested} tests together ({correction}) and finds {drifted} drifted."
        )
    return rows, why


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
