"""The report's own sections on a mixed drift: a plot per drifted feature of every kind, the
history strip with the episode's start, realized beside estimated performance, what to do
(commands that the CLI accepts, the records to label as CSV), Evidently's verdict explained.

The scenario (tests/monitor/report_scenario.py) is built once for the module, on SQLite.
"""

from __future__ import annotations

import csv
import html
import io
import re
import shlex
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from monitor.alerting.report_links import report_url
from monitor.app import create_app
from monitor.db.tables import DetectionResult, DetectionRun, ModelVersion
from monitor.reporting import plots
from monitor.reporting.evidently import EvidentlyVerdict, verdicts
from monitor.reporting.history import load_history
from monitor.reporting.report import ReportInput, render_report
from monitor.settings import Settings
from monitor.spec.model import ModelSpec
from tests.conftest import SPEC, make_key
from tests.monitor import report_scenario as scenario
from tests.monitor.test_report import transient_run

BASE = f"/api/v1/models/{scenario.NAME}"
SECRET = "link-secret"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The service (on loopback, so browsers may sign in) with the scenario's three runs."""
    folder = tmp_path_factory.mktemp("report")
    settings = Settings(
        database_url=f"sqlite:///{Path(folder) / 'r.db'}",
        device="cpu",
        scheduler=False,
        report_link_secret=SECRET,
    )
    with TestClient(
        create_app(settings), base_url="http://127.0.0.1", follow_redirects=False
    ) as client:
        admin = make_key(client, "admin")
        runs = scenario.build(client, admin)
        page = client.get(f"{BASE}/report", params={"run": runs[-1]["id"]}, headers=admin)
        assert page.status_code == 200, page.text
        yield {"client": client, "admin": admin, "runs": runs, "page": page.text}


def text(fragment: str) -> str:
    """A piece of the page as a reader sees it: entities decoded, white space collapsed."""
    return html.unescape(re.sub(r"\s+", " ", fragment))


def moment(iso: str) -> datetime:
    return datetime.fromisoformat(iso).astimezone(UTC)


def shown(value: datetime) -> str:
    """A moment as the page writes it (to the second, in UTC)."""
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def test_the_scenario_drifts_as_intended(built: dict[str, Any]) -> None:
    calm, first, last = built["runs"]
    assert calm["status"] == "ok" and not any(r["drift"] for r in calm["results"])
    for run in (first, last):
        drifted = {r["feature"] for r in run["results"] if r["drift"]}
        # "*": the joint test over the numeric features (brightness moved) flags too
        assert drifted == {*scenario.DRIFTED, "*"}, drifted


def test_a_plot_for_each_drifted_feature_of_every_kind(built: dict[str, Any]) -> None:
    page = built["page"]
    figures = dict(re.findall(r'data-feature="([^"]+)" data-kind="([^"]+)"', page))
    assert figures == {
        "brightness": "distribution",
        "camera": "category shares",
        "emb": "projection",
        "prediction.label": "class mix",
    }
    assert page.count("data:image/png;base64,") == len(figures)
    assert page.count(">drifted</span>") == len(figures)
    for calm in scenario.CALM:  # not drifted, so not drawn
        assert f'data-feature="{calm}"' not in page
    # the effect in the feature's own units under its plot: the new camera, the vanished class
    assert "flowcam-3 0% -&gt; " in page and "(new)" in page
    assert "dinoflagellate " in page and "-&gt; 0% (vanished)" in page


def test_the_history_strip_marks_where_the_episode_began(built: dict[str, Any]) -> None:
    calm, first, last = built["runs"]
    page = built["page"]
    began = shown(moment(first["window_end"]))
    for feature in scenario.DRIFTED:
        row = re.search(rf'<tr id="history-{re.escape(feature)}">(.*?)</tr>', page, re.S)
        assert row is not None, feature
        cells = re.findall(r'<td class="cell ([^"]*)"', row.group(1))
        # oldest first: the calm window, then the episode's first window (marked), then this run
        assert [c.split() for c in cells] == [["calm"], ["drift", "start"], ["drift", "this"]]
        assert f"drifting since {began} (run {first['id']}), 2 windows" in text(row.group(1))
        # the statistic of each window, as stored
        stats = [
            next(r for r in run["results"] if r["feature"] == feature)["statistic"]
            for run in (calm, first, last)
        ]
        for value in stats:
            assert f"{value:.3g}" in row.group(1)


def test_realized_beside_estimated_with_why(built: dict[str, Any]) -> None:
    last = built["runs"][-1]
    values = {p["metric"]: p for p in last["performance"]}
    realized, estimated = values["accuracy"], values["estimated.accuracy"]
    assert realized["n_labels"] == 60 and realized["value"] < estimated["value"]
    page = built["page"]
    row = re.search(r"<tr[^>]*><td>accuracy</td>(.*?)</tr>", page, re.S)
    assert row is not None
    assert f"{realized['value']:.3g} (60 labelled)" in row.group(1)
    assert f"{estimated['value']:.3g} (calibrated on {estimated['n_labels']})" in row.group(1)
    why = re.search(r'<p class="why" id="why-performance">(.*?)</p>', page, re.S)
    assert why is not None
    assert "60 labelled records of this window's 300" in text(why.group(1))
    assert f"calibration on {estimated['n_labels']} labelled records" in text(why.group(1))


def command_line(page: str, pattern: str) -> list[str]:
    found = re.findall(pattern, page)
    return [html.unescape(f) for f in found]


def test_what_to_do_names_this_model_run_and_alerts(built: dict[str, Any]) -> None:
    client, admin, runs, page = built["client"], built["admin"], built["runs"], built["page"]
    last = runs[-1]
    start = moment(last["window_start"])
    end = moment(last["window_end"]) + timedelta(microseconds=1)  # a count window's end
    (promote,) = command_line(page, r'<pre id="promote">([^<]*)</pre>')
    assert promote == (
        f"tidewatch reference promote {scenario.NAME} --from {start.isoformat()} "
        f"--to {end.isoformat()}"
    )
    firing = client.get("/api/v1/alerts", params={"state": "firing"}, headers=admin).json()
    assert firing, "the drift rule fired"
    commands = command_line(page, r"<td><code>(tidewatch alerts [^<]*)</code></td>")
    expected = []
    for alert in firing:
        expected += [
            f"tidewatch alerts ack {alert['id']}",
            f"tidewatch alerts silence {alert['id']} --hours 4",
        ]
    assert commands == expected
    for line in [promote, *commands]:  # each parses with the real command line
        assert parses(line), line


def parses(line: str) -> bool:
    """Whether ``tidewatch``'s command line takes ``line``: each word down to a command,
    then that command's arguments and options checked as the CLI would (nothing is run).
    Raises on an unknown command, option or argument."""
    import typer.main

    from monitor.cli import app

    command: Any = typer.main.get_command(app)  # typer's own click classes
    words = shlex.split(line)
    assert words.pop(0) == "tidewatch"
    context = command.make_context("tidewatch", [], resilient_parsing=True)
    while hasattr(command, "get_command"):  # a group: the next word names its command
        found = command.get_command(context, words.pop(0))
        if found is None:
            raise LookupError(f"no command in {line!r}")
        command = found
        context = command.make_context(command.name, [], parent=context, resilient_parsing=True)
    command.make_context(command.name, words, parent=context.parent)  # raises on a bad line
    return True


def test_a_wrong_command_line_does_not_parse() -> None:
    assert parses("tidewatch alerts silence 3 --hours 4")
    for wrong in (
        "tidewatch alerts silence 3 --for 4",
        "tidewatch alerts mute 3",
        "tidewatch reference promote m --since 2026-01-01",
        "tidewatch alerts ack",
    ):
        with pytest.raises(Exception):  # noqa: B017 (click's errors or LookupError)
            parses(wrong)


# -- the records to label ------------------------------------------------------------------


def expected_candidates(drifted: set[str], limit: int) -> list[str]:
    """The candidates computed here from the records the scenario posted, as the page defines
    them: unlabelled records, those in the drifted region first, the smallest margin first."""
    reference, _ = scenario.records("ref", 600, drifted=False, seed=1)
    window, _ = scenario.records("w2", scenario.WINDOW, drifted=True, seed=12, start=600)
    labelled = {r["id"] for r in window[:60]}

    def column(rows: list[dict[str, Any]], name: str) -> list[Any]:
        return [r["features"][name] for r in rows]

    def counts(values: list[str]) -> dict[str, float]:
        return {v: values.count(v) / len(values) for v in set(values)}

    region = np.zeros(len(window), dtype=bool)
    if "brightness" in drifted:
        low, high = np.percentile(column(reference, "brightness"), [5, 95])
        values = np.array(column(window, "brightness"))
        region |= (values < low) | (values > high)
    for name, get in (
        ("camera", lambda r: r["features"]["camera"]),
        ("prediction.label", lambda r: r["prediction"]["label"]),
    ):
        if name in drifted:
            ref, cur = counts([get(r) for r in reference]), counts([get(r) for r in window])
            region |= np.array([cur[get(r)] >= 2 * ref.get(get(r), 0.0) for r in window])
    if "emb" in drifted:  # stored as float32
        ref_emb = np.array(column(reference, "emb"), dtype=np.float32).astype(np.float64)
        cur_emb = np.array(column(window, "emb"), dtype=np.float32).astype(np.float64)
        centre = ref_emb.mean(axis=0)
        limit_distance = np.percentile(np.linalg.norm(ref_emb - centre, axis=1), 90)
        region |= np.linalg.norm(cur_emb - centre, axis=1) > limit_distance
    margins = []
    for r in window:
        p = np.array(r["prediction"]["probabilities"], dtype=np.float32).astype(np.float64)
        p = np.sort(p / p.sum())[::-1]
        margins.append(p[0] - p[1])
    order = sorted(
        (i for i, r in enumerate(window) if r["id"] not in labelled),
        key=lambda i: (not region[i], margins[i], i),
    )
    return [window[i]["id"] for i in order[:limit]]


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_label_candidates_are_the_most_uncertain_in_the_drifted_region(
    built: dict[str, Any],
) -> None:
    client, admin, last = built["client"], built["admin"], built["runs"][-1]
    url = f"{BASE}/runs/{last['id']}/label-candidates.csv"
    answer = client.get(url, params={"limit": 50}, headers=make_key(client, "read"))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    rows = read_csv(answer.text)
    drifted = {r["feature"] for r in last["results"] if r["drift"]}
    assert [r["record_id"] for r in rows] == expected_candidates(drifted, 50)
    assert rows[0]["drifted_region"] == "yes" and rows[0]["drifted_features"]
    margins = [float(r["margin"]) for r in rows if r["drifted_region"] == "yes"]
    assert margins == sorted(margins)
    # the first ten are on the page, in the same order, with a link to the whole list
    page = built["page"]
    listed = re.findall(r"<tr><td><code>([^<]+)</code></td>", page)
    assert listed == [r["record_id"] for r in rows[:10]]
    assert f'href="runs/{last["id"]}/label-candidates.csv"' in page
    # the ids are the stored ones: labels posted for them match records
    body = {"labels": [{"id": r["record_id"], "label": "copepod"} for r in rows[:5]]}
    stored = client.post(f"{BASE}/labels", json=body, headers=admin).json()
    assert stored["matched"] == 5
    after = read_csv(client.get(url, params={"limit": 50}, headers=admin).text)
    assert [r["record_id"] for r in after[:45]] == [r["record_id"] for r in rows[5:]]


def test_label_candidates_open_like_the_report(built: dict[str, Any]) -> None:
    client, runs = built["client"], built["runs"]
    run_id = runs[-1]["id"]
    url = f"{BASE}/runs/{run_id}/label-candidates.csv"
    refused = client.get(url)
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert client.get(url, headers=make_key(client, f"ingest:{scenario.NAME}")).status_code == 403
    assert client.get(url, headers=make_key(client, "read")).status_code == 200
    assert (
        client.get(f"{BASE}/runs/999999/label-candidates.csv", headers=built["admin"]).status_code
        == 404
    )
    # the run's signed report link opens it too, and carries on from the page opened with it
    link = report_url("http://127.0.0.1", scenario.NAME, run_id, SECRET, 3600, now=time.time())
    query = link.split("&", 1)[1]
    assert client.get(f"{url}?{query}").status_code == 200
    opened = client.get(link)
    assert opened.status_code == 200
    assert f'href="runs/{run_id}/label-candidates.csv?{html.escape(query)}"' in opened.text
    other = report_url("http://127.0.0.1", scenario.NAME, runs[0]["id"], SECRET, 3600)
    answer = client.get(f"{url}?{other.split('&', 1)[1]}")
    assert answer.status_code == 401 and "invalid report link" in answer.json()["detail"]
    # a browser signed in with a read key
    reader = make_key(client, "read")["Authorization"].removeprefix("Bearer ")
    try:
        assert client.post("/login", data={"key": reader}).status_code == 303
        assert client.get(url).status_code == 200
    finally:
        client.cookies.clear()
    assert client.get(url).status_code == 401


# -- Evidently's verdict ----------------------------------------------------------------


def one_feature_drift() -> ReportInput:
    """brightness alone moves: Tidewatch's drift (any feature), not Evidently's (half)."""
    spec = ModelSpec.model_validate(SPEC)
    rng = np.random.default_rng(3)

    def table(n: int, shift: float) -> pa.Table:
        return pa.table(
            {
                "f.brightness": rng.normal(size=n) + shift,
                "f.site": rng.choice(["a", "b"], n).tolist(),
                "p.label": rng.choice(["copepod", "diatom"], n).tolist(),
            }
        )

    run = transient_run()
    run.status = "drift"
    results = [
        DetectionResult(
            feature="brightness",
            method="ks",
            statistic=0.5,
            p_value=1e-9,
            p_adjusted=3e-9,
            drift=True,
            n_reference=400,
            n_current=300,
        ),
        DetectionResult(
            feature="site",
            method="chi2",
            statistic=0.1,
            p_value=0.7,
            p_adjusted=0.7,
            drift=False,
            n_reference=400,
            n_current=300,
        ),
        DetectionResult(
            feature="emb",
            method="ks_pca",
            statistic=0.05,
            p_value=0.6,
            p_adjusted=0.7,
            drift=False,
            n_reference=400,
            n_current=300,
        ),
    ]
    return ReportInput(spec, run, results, [], [], table(300, 2.0), table(400, 0.0))


def test_evidently_disagreeing_is_explained() -> None:
    page = render_report(one_feature_drift())
    rows = re.search(r'<table id="verdicts">(.*?)</table>', page, re.S)
    assert rows is not None
    # Evidently's own numbers, read from its result: 1 of its 3 columns drifted
    assert "1 of 3 drifted: no dataset drift" in rows.group(1)
    assert "1 of 3 drifted: drift" in rows.group(1)  # Tidewatch: brightness of its 3 tested
    why = re.search(r'<p class="why" id="why-verdicts">(.*?)</p>', page, re.S)
    assert why is not None
    said = text(why.group(1))
    assert "Evidently says no dataset drift although Tidewatch found drift" in said
    assert "50% of its columns" in said and "does not see emb" in said


def test_verdict_sentences() -> None:
    rows, why = verdicts(EvidentlyVerdict(3, 4, 0.5), False, 0, 6, "bh", 0.05, 0.0, [])
    assert rows[1][2] == "3 of 4 drifted: dataset drift"
    assert why.startswith("Evidently says dataset drift although Tidewatch did not")
    assert verdicts(EvidentlyVerdict(3, 4, 0.5), True, 2, 6, "bh", 0.05, 0.0, [])[1] == ""
    # without Evidently's numbers, the rules are still said side by side, with no verdict
    rows, why = verdicts(None, True, 2, 6, "bonferroni", 0.01, 0.25, [])
    assert "at least 25% of the tested features drifted" in rows[0][1] and why == ""


# -- the history of a longer episode --------------------------------------------------------


def test_an_episode_counts_back_to_the_last_calm_window(
    client: TestClient, model: dict[str, Any]
) -> None:
    """drift, calm, then drift, a run without the feature's result, drift x 13: the episode
    starts after the calm window, spans more runs than the strip shows, and the run without a
    result neither breaks nor extends it (on SQLite and PostgreSQL)."""
    with client.app.state.tidewatch.sessions() as session:  # type: ignore[attr-defined]
        version = session.query(ModelVersion).first()
        assert version is not None
        t0 = datetime(2027, 1, 1, tzinfo=UTC)
        pattern = [True, False, True, None, *[True] * 13]
        runs = []
        for i, drift in enumerate(pattern):
            run = DetectionRun(
                model_version_id=version.id,
                monitor="episode",
                status="drift",
                window_start=t0 + timedelta(minutes=i),
                window_end=t0 + timedelta(minutes=i + 1),
            )
            session.add(run)
            session.flush()
            if drift is not None:
                session.add(
                    DetectionResult(
                        run_id=run.id,
                        feature="x",
                        method="ks",
                        statistic=float(i),
                        drift=drift,
                        n_reference=1,
                        n_current=1,
                        effect={"size": i / 10},
                    )
                )
            runs.append(run)
        session.commit()
        (history,) = load_history(session, runs[-1], ["x"], windows=12)
        assert history.episode is not None
        assert history.episode.first_run_id == runs[2].id
        assert history.episode.windows == 14  # runs 2 and 4..16, not the one without a result
        assert len(history.points) == 12 and history.points[-1].run_id == runs[-1].id
        assert not any(p.episode_start for p in history.points)  # its start is off the strip
        assert [p.size for p in history.points] == [i / 10 for i in range(5, 17)]
        (calm,) = load_history(session, runs[1], ["x"])
        assert calm.episode is None
        (short,) = load_history(session, runs[4], ["x"])
        assert short.episode is not None and short.episode.windows == 2
        assert [p.drift for p in short.points] == [True, False, True, None, True]
        assert [p.episode_start for p in short.points] == [False, False, True, False, False]


# -- plots of few points ------------------------------------------------------------------


def test_fewer_than_three_values_are_points_on_a_sensible_axis() -> None:
    figure = plots.numeric_figure("x", np.array([1.0, 2.0, 3.0, 4.0]), np.array([10.0, 12.0]))
    assert figure is not None
    (axes,) = figure.axes
    assert not axes.patches  # no histogram bars
    low, high = axes.get_xlim()
    assert low < 1.0 and high > 12.0 and high - low < 30  # spans the values, with a margin
    assert [t.get_text() for t in axes.get_yticklabels()] == ["current", "reference"]
    single = plots.numeric_figure("x", np.array([5.0]), np.array([5.0]))
    assert single is not None
    low, high = single.axes[0].get_xlim()
    assert low < 5.0 < high and high - low <= 20
    many = plots.numeric_figure("x", np.arange(50.0), np.arange(50.0) + 5)
    assert many is not None and many.axes[0].patches  # enough values: a histogram
    assert plots.numeric_png("x", np.array([np.nan]), np.array([1.0])) is None


def test_margins_of_chunked_and_sliced_windows() -> None:
    from monitor.reporting.actions import margins

    spec = ModelSpec.model_validate(SPEC)
    rng = np.random.default_rng(5)
    rows = rng.dirichlet([1.0, 1.0], 40).astype(np.float32).tolist()
    rows[7] = None
    proba = pa.array(rows, pa.list_(pa.float32(), 2))
    whole = pa.table({"p.proba": proba})
    top, margin = margins(whole, spec)
    assert np.isnan(margin[7]) and np.isnan(top[7])
    kept = [i for i in range(40) if i != 7]
    expected = [abs(rows[i][0] - rows[i][1]) / (rows[i][0] + rows[i][1]) for i in kept]
    assert np.allclose(margin[kept], expected, atol=1e-6)
    # a window read from several batches, then filtered and cut: the same numbers per record
    chunked = pa.concat_tables([whole.slice(0, 15), whole.slice(15)]).slice(5, 30)
    top_cut, margin_cut = margins(chunked, spec)
    assert np.allclose(margin_cut, margin[5:35], equal_nan=True)
    assert np.allclose(top_cut, top[5:35], equal_nan=True)
