"""Small panel functions the Tidewatch dashboards are composed of.

Why: every panel of every dashboard queries the same Prometheus data source variable
(``${datasource}``), shows the model status with the same colours and is placed on the grid the
same way. Keeping each kind of panel in one short function means a dashboard module reads as a
list of titles, PromQL expressions, units and positions, and a fix here reaches every panel.

Positions are explicit (:func:`at`), not left to the SDK's flow layout, so the layout of a
dashboard can be read from its module (and checked for overlaps by a test).
"""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import prometheus, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as models
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from monitor.vocabulary import ModelStatus as Status

DATASOURCE_VARIABLE = "datasource"
# every panel and every query variable reads from the dashboard's data source variable
DATASOURCE = models.DataSourceRef(type_val="prometheus", uid="${" + DATASOURCE_VARIABLE + "}")

# (expr, legend) of one query
Query = tuple[str, str]
Item = stat.Panel | timeseries.Panel | table.Panel | statetimeline.Panel | dashboard_builders.Row

# a model's status as a number, for panels that draw states over time
STATUS_CODES = {Status.OK: 0, Status.WARNING: 1, Status.DRIFT: 2, Status.NO_DATA: 3}
STATUS_COLORS = {
    Status.OK: "green",
    Status.WARNING: "yellow",
    Status.DRIFT: "red",
    Status.NO_DATA: "grey",
}
# which status a series shows when several are set at once (the worst, no data before ok)
WORST_FIRST = (Status.DRIFT, Status.WARNING, Status.NO_DATA, Status.OK)


def at(x: int, y: int, w: int, h: int) -> models.GridPos:
    """A position on Grafana's 24-column grid (``h`` in grid rows of 30 px)."""
    return models.GridPos(x=x, y=y, w=w, h=h)


def query(
    expr: str, legend: str = "", ref_id: str = "A", instant: bool = False
) -> prometheus.Dataquery:
    """A Prometheus query on the dashboard's data source; ``instant`` ones come as a table."""
    target = prometheus.Dataquery().expr(expr).ref_id(ref_id).datasource(DATASOURCE)
    if legend:
        target = target.legend_format(legend)
    if instant:
        target = target.instant().format(PromQueryFormat.TABLE)
    return target


def link(title: str, url: str, new_tab: bool = True) -> dashboard_builders.DashboardLink:
    """A data link; the SDK types data links as dashboard links (extra keys Grafana ignores)."""
    return dashboard_builders.DashboardLink(title).url(url).target_blank(new_tab)


def row(title: str, y: int) -> dashboard_builders.Row:
    """An expanded row: a band across the grid; the panels below it follow at top level."""
    return dashboard_builders.Row(title).collapsed(False).grid_pos(at(0, y, 24, 1))


def stat_panel(
    title: str, expr: str, unit: str, pos: models.GridPos, legend: str = ""
) -> stat.Panel:
    """One big number per series (the last value), with a sparkline of the time range."""
    return (
        stat.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .with_target(query(expr, legend))
        .unit(unit)
        .grid_pos(pos)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
    )


def timeseries_panel(
    title: str, queries: Sequence[Query], unit: str, pos: models.GridPos
) -> timeseries.Panel:
    """Lines over time, one query per (expr, legend), with a table legend of last and max."""
    panel = (
        timeseries.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .unit(unit)
        .grid_pos(pos)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
        )
    )
    for number, (expr, legend) in enumerate(queries):
        panel = panel.with_target(query(expr, legend, ref_id=chr(ord("A") + number)))
    return panel


def table_panel(
    title: str, expr: str, unit: str, pos: models.GridPos, hidden: Sequence[str] = ("Time",)
) -> table.Panel:
    """The current value of each series as a table row (its labels as columns)."""
    excluded = dict.fromkeys(hidden, True)
    return (
        table.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .with_target(query(expr, instant=True))
        .unit(unit)
        .grid_pos(pos)
        .with_transformation(
            models.DataTransformerConfig(id_val="organize", options={"excludeByName": excluded})
        )
    )


def state_timeline_panel(
    title: str, expr: str, legend: str, pos: models.GridPos, mappings: list[models.ValueMapping]
) -> statetimeline.Panel:
    """One band per series, coloured by its mapped value over time."""
    return (
        statetimeline.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .with_target(query(expr, legend))
        .grid_pos(pos)
        .mappings(mappings)
        .show_value(common.VisibilityMode.NEVER)
        .merge_values(True)
    )


def value_mapping(results: dict[str, tuple[str, str]]) -> models.ValueMap:
    """Map each value to (text, colour)."""
    return models.ValueMap(
        options={
            value: models.ValueMappingResult(text=text, color=color, index=index)
            for index, (value, (text, color)) in enumerate(results.items())
        }
    )


def status_text_mappings() -> list[models.ValueMapping]:
    """ok, warning, drift, no_data as the text of a label column, in the status colours."""
    return [value_mapping({s: (s, STATUS_COLORS[s]) for s in STATUS_CODES})]


def status_code_mappings() -> list[models.ValueMapping]:
    """The numbers of :func:`status_code_expr` shown as the status names, in their colours."""
    return [value_mapping({str(code): (s, STATUS_COLORS[s]) for s, code in STATUS_CODES.items()})]


def status_code_expr(by: str, matchers: str = "") -> str:
    """The current status of each ``by`` group as a number of :data:`STATUS_CODES`.

    Group A gauges are exposed by every replica, so each status is de-duplicated with ``max``;
    the worst status comes first, so replicas that disagree for a scrape show the worse one.

    >>> status_code_expr("model", 'model="$model"')[:75]
    '(max by (model) (tidewatch_model_status{model="$model", status="drift"}) =='
    """
    prefix = f"{matchers}, " if matchers else ""
    return " or ".join(
        f'(max by ({by}) (tidewatch_model_status{{{prefix}status="{s}"}}) == 1) * {STATUS_CODES[s]}'
        for s in WORST_FIRST
    )


def color_cells(panel: table.Panel, column: str) -> table.Panel:
    """Colour the background of one table column by its value mapping."""
    return panel.override_by_name(
        column,
        [
            models.DynamicConfigValue(
                id_val="custom.cellOptions", value=common.TableColoredBackgroundCellOptions()
            )
        ],
    )


def datasource_variable() -> dashboard_builders.DatasourceVariable:
    """``${datasource}``: any Prometheus data source, the provisioned one by default."""
    return (
        dashboard_builders.DatasourceVariable(DATASOURCE_VARIABLE)
        .label("Data source")
        .type("prometheus")
        .current(models.VariableOption(text="Prometheus", value="prometheus"))
    )


def query_variable(name: str, label: str, promql: str) -> dashboard_builders.QueryVariable:
    """A variable of label values, refreshed with the time range (new models appear)."""
    return (
        dashboard_builders.QueryVariable(name)
        .label(label)
        .query(promql)
        .datasource(DATASOURCE)
        .refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(models.VariableSort.ALPHABETICAL_ASC)
    )


def add_all(dashboard: dashboard_builders.Dashboard, items: Sequence[Item]) -> None:
    """Add rows and panels in order, numbering them 1, 2, ... (stable ``viewPanel`` links)."""
    for number, item in enumerate(items, start=1):
        item.id(number)
        if isinstance(item, dashboard_builders.Row):
            dashboard.with_row(item)
        else:
            dashboard.with_panel(item)


def dashboard(
    title: str,
    uid: str,
    since: str,
    variables: list[cogbuilder.Builder[models.VariableModel]],
    items: Sequence[Item],
) -> dashboard_builders.Dashboard:
    """A Tidewatch dashboard: the settings both share, then its variables and panels."""
    board = (
        dashboard_builders.Dashboard(title)
        .uid(uid)
        .tags(["tidewatch"])
        .refresh("1m")
        .time(since, "now")
        .tooltip(models.DashboardCursorSync.CROSSHAIR)
        .variables(variables)
    )
    add_all(board, items)
    return board
