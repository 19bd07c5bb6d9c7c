"""The report: every chart is a valid Vega-Lite spec, PNGs are real images, the page is whole,
and the report reads nothing but the report models, the exposure's parents."""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import altair as alt
import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import PROJECT_ROOT, DbtRun, copy_database, database_held_open
from customer_segmentation.report import charts as report_charts
from customer_segmentation.report import page as report

SECTIONS = ["data", "features", "choosing_k", "quality", "segments", "value", "movement"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
REPORT_MODELS_DIR = PROJECT_ROOT / "models" / "reports"
EXPOSURE = "exposure.customer_segmentation.segmentation_report"
# The one statement the report may run on a model: `select *` from it, ordered or not.
REPORT_STATEMENT = re.compile(r"select \* from (rpt_\w+)(?: order by \w+(?:, \w+)*)?")


class RecordingConnection:
    """A DuckDB connection that records every statement; any other way of reading fails."""

    def __init__(self, con: duckdb.DuckDBPyConnection, statements: list[str]) -> None:
        self._con = con
        self._statements = statements

    def sql(self, query: str, *args: object, **kwargs: object) -> object:
        self._statements.append(query)
        return self._con.sql(query, *args, **kwargs)

    def execute(self, query: str, *args: object, **kwargs: object) -> object:
        self._statements.append(query)
        return self._con.execute(query, *args, **kwargs)

    def query(self, query: str, *args: object, **kwargs: object) -> object:
        self._statements.append(query)
        return self._con.query(query, *args, **kwargs)

    def close(self) -> None:
        self._con.close()

    def __getattr__(self, name: str) -> object:
        # table(), view(), read_parquet(), ... would read without a statement to check.
        raise AssertionError(f"the report used connection.{name}: only SQL statements are checked")


@dataclass
class Rendered:
    """One run of the report's command line on the bundled build."""

    out: Path
    statements: list[str]
    sections: list[report.Section]


@pytest.fixture(scope="module")
def rendered(bundled_build: DbtRun, tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """The report as `python -m customer_segmentation.report` writes it, once for every test:
    the page and every PNG, every SQL statement it ran, and the sections it drew."""
    out = tmp_path_factory.mktemp("report")
    statements: list[str] = []
    sections: list[list[report.Section]] = []
    connect = duckdb.connect
    build_sections = report.build_sections

    def recording_connect(*args: object, **kwargs: object) -> RecordingConnection:
        return RecordingConnection(connect(*args, **kwargs), statements)

    def kept_sections(data: dict[str, pd.DataFrame]) -> list[report.Section]:
        sections.append(build_sections(data))
        return sections[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(report.duckdb, "connect", recording_connect)
        patch.setattr(report, "build_sections", kept_sections)
        assert report.main(["--database", str(bundled_build.database), "--out", str(out)]) == 0
    assert len(sections) == 1
    return Rendered(out, statements, sections[0])


@pytest.fixture(scope="module")
def sections(rendered: Rendered) -> list[report.Section]:
    return rendered.sections


def all_charts(sections: list[report.Section]) -> dict[str, alt.TopLevelMixin]:
    return {name: chart for s in sections for name, chart in s.charts.items()}


def manifest(run: DbtRun) -> dict:
    return json.loads((run.database.parent / "target" / "manifest.json").read_text())


@pytest.mark.dbt
def test_every_section_and_chart_is_built(sections: list[report.Section]) -> None:
    assert [s.key for s in sections] == SECTIONS
    charts = all_charts(sections)
    assert len(charts) == 26
    for name, chart in charts.items():
        spec = chart.to_dict()  # validates against the Vega-Lite schema
        assert spec["$schema"].startswith("https://vega.github.io/schema/vega-lite/"), name


def unit_specs(spec: dict, path: str = "") -> Iterator[tuple[str, dict]]:
    """Every single-mark view of a Vega-Lite spec, with where it sits."""
    if "mark" in spec:
        yield path, spec
    for key in ("layer", "hconcat", "vconcat", "concat"):
        for i, sub in enumerate(spec.get(key, [])):
            yield from unit_specs(sub, f"{path}/{key}[{i}]")
    if "spec" in spec:
        yield from unit_specs(spec["spec"], f"{path}/spec")


@pytest.mark.dbt
def test_every_mark_has_a_tooltip_and_segment_charts_highlight(
    sections: list[report.Section],
) -> None:
    highlighting = []
    for name, chart in all_charts(sections).items():
        spec = chart.to_dict()
        if is_empty_state(spec):
            continue
        for path, unit in unit_specs(spec):
            assert "tooltip" in unit.get("encoding", {}), f"{name}{path}: no tooltip"
        params = [p["name"] for p in spec.get("params", [])]
        uses_segments = '"segment_name' in json.dumps(spec)
        if "highlight" in params:
            highlighting.append(name)
            tests = [
                u["encoding"]["opacity"]["condition"]["test"]
                for _, u in unit_specs(spec)
                if "condition" in u.get("encoding", {}).get("opacity", {})
            ]
            assert tests and all("highlight" in t for t in tests), name
        elif uses_segments and name != "segment_drift":
            raise AssertionError(f"{name} shows segments but cannot highlight one")
    assert len(highlighting) >= 10


@pytest.mark.dbt
def test_segments_have_one_colour_each_in_cluster_order(
    sections: list[report.Section], bundled_build: DbtRun
) -> None:
    names = [
        r[0]
        for r in bundled_build.query(
            "select segment_name from segment_profiles order by cluster_id"
        )
    ]
    spec = all_charts(sections)["pca_scatter"].to_dict()
    color = spec["encoding"]["color"]["scale"]
    assert color["domain"] == names
    assert len(set(color["range"])) == len(names)


@pytest.mark.dbt
def test_png_export_gives_images(sections: list[report.Section], rendered: Rendered) -> None:
    figures = rendered.out / "figures"
    assert sorted(p.stem for p in figures.glob("*.png")) == sorted(all_charts(sections))
    for name in all_charts(sections):
        content = (figures / f"{name}.png").read_bytes()
        assert content.startswith(PNG_SIGNATURE), name
        assert len(content) > 5_000, name


@pytest.mark.dbt
def test_page_is_self_contained_and_complete(
    rendered: Rendered, sections: list[report.Section], bundled_build: DbtRun
) -> None:
    page = (rendered.out / "index.html").read_text(encoding="utf-8")
    assert "<script src=" not in page  # Vega, Vega-Lite and vega-embed are inline
    assert "vegaEmbed" in page
    for key in ["summary", *SECTIONS]:
        assert f'<section id="{key}">' in page
    for name in all_charts(sections):
        assert f'id="chart-{name}"' in page
    k = bundled_build.scalar("select k from cluster_model_selection where is_selected limit 1")
    assert f"<b>{k} segments</b>" in page
    assert page.count("<b>Action:</b>") == k
    assert '<section id="customers">' in page
    for word in ["kneed", "(s)", "GBP of net purchases"]:  # jargon the summary used to print
        summary = page[page.index('<section id="summary">') : page.index('<section id="data">')]
        assert word not in summary, word


@pytest.mark.dbt
def test_the_report_reads_only_the_exposures_parents(
    rendered: Rendered, bundled_build: DbtRun
) -> None:
    read = []
    for statement in rendered.statements:
        match = REPORT_STATEMENT.fullmatch(statement)
        assert match, f"the report ran {statement!r}, not a select * from a report model"
        read.append(match.group(1))
        assert tables_named(statement) == [match.group(1)], statement
    assert len(read) == len(set(read)), "a report model read twice"
    assert read == list(report.REPORT_MODELS)  # the builds last, after the charts' models

    nodes = manifest(bundled_build)["nodes"]
    parents = manifest(bundled_build)["exposures"][EXPOSURE]["depends_on"]["nodes"]
    assert {nodes[p]["relation_name"].split(".")[-1].strip('"') for p in parents} == set(read)
    for parent in parents:
        node = nodes[parent]
        assert node["resource_type"] == "model", parent
        assert node["original_file_path"].startswith("models/reports/rpt_"), parent
        assert node["access"] == "public", parent
        assert node["config"]["materialized"] == "view", parent


def tables_named(statement: str) -> list[str]:
    """Every table or view a statement names, from DuckDB's own parse of it."""
    with duckdb.connect() as con:
        parsed = con.execute("select json_serialize_sql($1::varchar)", [statement]).fetchall()
    tree = json.loads(parsed[0][0])
    assert not tree["error"], tree
    names: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("type") == "BASE_TABLE":
                names.append(node["table_name"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(tree)
    return names


def test_report_models_are_the_exposures_parents_and_documented() -> None:
    # Without a build: the list the report reads and the exposure's depends_on are the same.
    spec = yaml.safe_load((REPORT_MODELS_DIR / "_reports.yml").read_text())
    (exposure,) = spec["exposures"]
    assert exposure["name"] == "segmentation_report"
    refs = [re.fullmatch(r"ref\('(\w+)'\)", d).group(1) for d in exposure["depends_on"]]
    assert refs == list(report.REPORT_MODELS)
    documented = {m["name"]: m for m in spec["models"]}
    assert set(documented) == {p.stem for p in REPORT_MODELS_DIR.glob("rpt_*.sql")}
    assert set(documented) == set(report.REPORT_MODELS)
    for name, model in documented.items():
        assert model.get("description"), name
        assert all(c.get("description") for c in model["columns"]), name
    assert not (PROJECT_ROOT / "models" / "marts" / "_exposures.yml").exists()


@pytest.mark.dbt
def test_the_builds_view_sees_the_row_written_after_it(bundled_build: DbtRun) -> None:
    # rpt_builds is created early in the build; the on-run-end row comes after every model.
    kind = "select table_type from information_schema.tables where table_name = 'rpt_builds'"
    assert bundled_build.scalar(kind) == "VIEW"
    rows = bundled_build.query("select status, is_full_build from rpt_builds order by started_at")
    assert rows[-1] == ("success", True)


def builds_database(path: Path, builds: list[tuple]) -> duckdb.DuckDBPyConnection:
    """A database with build_log rows for the given builds and the rpt_builds view over it.

    Each build: (invocation_id, minute started, is_full_build, file, status or None).
    """
    sql = (REPORT_MODELS_DIR / "rpt_builds.sql").read_text()
    sql = re.sub(r"\{\{ config\(.*?\) \}\}", "", sql)
    sql = sql.replace("{{ source('build_hooks', 'build_log') }}", "build_log")
    with duckdb.connect(str(path)) as con:
        con.execute(
            "create table build_log (invocation_id varchar, event varchar, logged_at timestamp, "
            "command varchar, status varchar, failed_nodes varchar, "
            "raw_transactions_path varchar, is_full_build boolean)"
        )
        for invocation_id, minute, full, file, status in builds:
            at = f"2026-01-01 10:{minute:02d}:00"
            con.execute(
                "insert into build_log values (?, 'started', ?, 'build', 'running', null, ?, ?)",
                [invocation_id, at, file, full],
            )
            if status:
                failed = "scaler_parameters (error)" if status == "error" else None
                con.execute(
                    "insert into build_log values (?, 'finished', ?, 'build', ?, ?, ?, ?)",
                    [invocation_id, at, status, failed, file, full],
                )
        con.execute(f"create view rpt_builds as {sql}")
    return duckdb.connect(str(path), read_only=True)


@pytest.mark.parametrize(
    ("builds", "message"),
    [
        ([("a", 1, True, "a.csv", "success")], None),
        ([("a", 1, True, "a.csv", "success"), ("b", 2, False, "a.csv", "success")], None),
        ([("a", 1, True, "a.csv", None)], r"the latest build, dbt build started 2026-01-01 "
         r"10:01:00 UTC \(a\), did not finish \(killed, or still running\)"),
        ([("a", 1, True, "a.csv", "success"), ("b", 2, True, "b.csv", "error")],
         r"the latest build, .* \(b\), failed \(scaler_parameters \(error\)\)"),
        ([("a", 1, False, "a.csv", "success")], r"no complete `dbt build`"),
        ([("a", 1, True, "a.csv", "success"), ("b", 2, False, "b.csv", "success")],
         r"\(b\) read b\.csv, but the last complete build read a\.csv"),
        ([("a", 1, True, "a.csv", "success"), ("b", 2, False, "a.csv", "error"),
          ("c", 3, False, "a.csv", "success")],
         r"\(b\) after the last complete build failed \(scaler_parameters \(error\)\)"),
    ],
)  # fmt: skip
def test_the_builds_view_and_check_refuse_mixed_tables(
    builds: list[tuple], message: str | None, tmp_path: Path
) -> None:
    database = tmp_path / "builds.duckdb"
    with builds_database(database, builds) as con:
        if message is None:
            report.check_latest_build(con, database)
        else:
            with pytest.raises(report.ReportError, match=message):
                report.check_latest_build(con, database)


def test_a_database_without_build_log_is_refused(tmp_path: Path) -> None:
    database = tmp_path / "no_log.duckdb"
    with (
        duckdb.connect(str(database)) as con,
        pytest.raises(report.ReportError, match="has no build_log"),
    ):
        report.check_latest_build(con, database)


def test_missing_database_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(report.ReportError, match="no such database; run `make build` first"):
        report.load_marts(tmp_path / "nope.duckdb")
    assert report.main(["--database", str(tmp_path / "nope.duckdb"), "--out", str(tmp_path)]) == 1


def test_database_locked_by_another_process_is_a_clear_error(tmp_path: Path) -> None:
    database = tmp_path / "locked.duckdb"
    with (
        database_held_open(database),
        pytest.raises(report.ReportError, match="Another process holds the file"),
    ):
        report.load_marts(database)
    time.sleep(0.1)


def test_a_database_without_the_marts_is_a_clear_error(tmp_path: Path) -> None:
    database = tmp_path / "empty.duckdb"
    duckdb.connect(str(database)).close()
    with pytest.raises(report.ReportError, match="a table the report reads is missing"):
        report.load_marts(database)


def test_scatter_says_how_many_customers_the_sample_shows() -> None:
    from customer_segmentation.report import charts

    sample = pd.DataFrame(
        {
            "customer_id": [1, 2, 3],
            "pca_1": [0.0, 1.0, 2.0],
            "pca_2": [0.0, 1.0, 0.5],
            "distance_to_centroid": [0.1, 0.2, 0.3],
            "segment_name": ["A", "B", "A"],
            "n_customers": [10, 10, 10],
        }
    )
    axes = pd.DataFrame(
        {
            "axis": [1, 1, 1, 2, 2, 2],
            "feature": ["monetary", "recency_days", "return_rate"] * 2,
            "axis_correlation": [0.9, -0.6, 0.1, 0.2, None, 0.7],
        }
    )
    spec = charts.pca_scatter(sample, charts.segment_colors(["A", "B"]), axes).to_dict()
    assert spec["title"]["subtitle"] == "3 of 10 customers shown"
    # Each axis named by the features that follow it (|correlation| >= 0.3), strongest first.
    assert spec["encoding"]["x"]["title"] == (
        "Axis 1 rises with net spend, and falls with days since the last order"
    )
    assert spec["encoding"]["y"]["title"] == "Axis 2 rises with share returned"


def run_compiled(
    run: DbtRun, model: str, tables: dict[str, pd.DataFrame], tmp_path: Path
) -> pd.DataFrame:
    """A report model's SQL, as the build compiled it, on made-up tables in a database of the
    same name (the compiled SQL names the database)."""
    compiled = run.database.parent / "target" / "compiled" / "customer_segmentation"
    sql = (compiled / "models" / "reports" / f"{model}.sql").read_text()
    with duckdb.connect(str(tmp_path / run.database.name)) as con:
        for name, frame in tables.items():
            con.register("frame", frame)
            con.execute(f"create table main.{name} as select * from frame")
            con.unregister("frame")
        return con.sql(sql).df()


@pytest.mark.dbt
def test_per_customer_tables_are_aggregated_or_sampled_in_sql(
    bundled_build: DbtRun, tmp_path: Path
) -> None:
    # The report never pulls every customer's rows to count or sample them in pandas.
    assert "group by" in (REPORT_MODELS_DIR / "rpt_rfm_cells.sql").read_text()
    assert "group by" in (REPORT_MODELS_DIR / "rpt_segment_sizes_over_time.sql").read_text()
    assert "{%- set sample_size = 5000 %}" in (REPORT_MODELS_DIR / "rpt_pca_sample.sql").read_text()
    q = bundled_build.scalar
    assert q("select count(*) from rpt_rfm_cells") == q(
        "select count(distinct (r_score, f_score)) from customer_rfm_segments"
    )
    assert q("select sum(customers) from rpt_rfm_cells") == q(
        "select count(*) from customer_rfm_segments"
    )
    assert q("select sum(customers) from rpt_segment_sizes_over_time") == q(
        "select count(*) from customer_segment_history"
    )
    # The bundled data has fewer customers than the sample: every one of them, in hash order.
    assert bundled_build.query("select customer_id from rpt_pca_sample order by draw_order") == (
        bundled_build.query(
            "select customer_id from customer_clusters order by hash(customer_id), customer_id"
        )
    )
    # More customers than the sample: 5,000 of them, the first in hash order.
    customers = pd.DataFrame({"customer_id": range(1, 6_001)})
    clusters = customers.assign(
        cluster_id=customers["customer_id"] % 2 + 1,
        hierarchical_cluster_id=1,
        distance_to_centroid=0.5,
        pca_1=0.0,
        pca_2=1.0,
    )
    names = pd.DataFrame({"cluster_id": [1, 2], "segment_name": ["A", "B"]})
    sample = run_compiled(
        bundled_build,
        "rpt_pca_sample",
        {"customer_clusters": clusters, "segment_names": names},
        tmp_path,
    ).sort_values("draw_order")
    assert len(sample) == 5_000
    assert set(sample["n_customers"]) == {6_000}
    with duckdb.connect() as con:
        con.register("clusters", clusters)
        first = con.sql(
            "select customer_id from clusters order by hash(customer_id), customer_id limit 5000"
        ).fetchall()
    assert sample["customer_id"].tolist() == [row[0] for row in first]


def migration_rows(to_dates: list[str], kinds: list[str]) -> pd.DataFrame:
    """Two rows (a stay and a move) per period ending at each date."""
    rows = []
    for to_date, kind in zip(to_dates, kinds, strict=True):
        end = pd.Timestamp(to_date)
        for to_cluster in (1, 2):
            rows.append(
                {
                    "from_snapshot_date": (end - pd.Timedelta(days=30)).date(),
                    "to_snapshot_date": end.date(),
                    "period_kind": kind,
                    "period_days": 30,
                    "from_cluster_id": 1,
                    "from_segment_id": 7,
                    "from_segment_name": "A",
                    "to_cluster_id": to_cluster,
                    "to_segment_id": 6 + to_cluster,
                    "to_segment_name": "AB"[to_cluster - 1],
                    "n_customers": 5,
                    "n_entered": 0,
                    "n_ordered_in_period": 1,
                    "n_lapsed_in_period": 0,
                }
            )
    return pd.DataFrame(rows)


@pytest.mark.dbt
def test_the_migration_chart_shows_the_last_full_period(
    bundled_build: DbtRun, tmp_path: Path
) -> None:
    # On the bundled data: the last month before the partial one to the snapshot date.
    shown = "select distinct to_snapshot_date, period_kind from rpt_segment_migration"
    last_month = "select max(to_snapshot_date) from segment_migration where period_kind = 'month'"
    assert bundled_build.query(shown) == [(bundled_build.scalar(last_month), "month")]
    # Full periods and a partial one: the last full one.
    months = migration_rows(
        ["2011-10-01", "2011-11-01", "2011-12-10"], ["month", "month", "month_to_date"]
    )
    only_partial = migration_rows(["2011-12-10"], ["month_to_date"])
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    result = run_compiled(
        bundled_build, "rpt_segment_migration", {"segment_migration": months}, tmp_path / "a"
    )
    assert set(result["to_snapshot_date"].astype(str)) == {"2011-11-01"}
    assert len(result) == 2
    # Only a partial period (a snapshot date inside the first period): that one.
    result = run_compiled(
        bundled_build,
        "rpt_segment_migration",
        {"segment_migration": only_partial},
        tmp_path / "b",
    )
    assert set(result["period_kind"]) == {"month_to_date"}
    assert len(result) == 2


VALUE_CHARTS = [
    "segment_value",
    "p_alive_distribution",
    "clv_validation_purchases",
    "clv_validation_value",
]
NOT_FITTED = "12 customers have a repeat purchase, fewer than clv_min_repeat_customers (50)"


def is_empty_state(spec: dict) -> bool:
    return spec.get("mark", {}).get("type") == "text" and "layer" not in spec


def empty_state_text(spec: dict) -> str:
    """The message of an empty-state chart (its one row)."""
    (rows,) = spec["datasets"].values()
    (row,) = rows
    return row["text"]


@pytest.mark.dbt
def test_the_value_section_draws_every_value_chart(sections: list[report.Section]) -> None:
    (value,) = [s for s in sections if s.key == "value"]
    assert list(value.charts) == VALUE_CHARTS
    assert "one purchase so far counts as still buying" in value.intro
    assert "How far to trust it" in value.intro
    specs = {name: chart.to_dict() for name, chart in value.charts.items()}
    assert not any(is_empty_state(spec) for spec in specs.values())
    # Predicted value and value at risk: one panel each, in segment colours.
    panels = specs["segment_value"]["hconcat"]
    assert [p["layer"][0]["encoding"]["x"]["field"] for p in panels] == [
        "predicted_clv",
        "value_at_risk",
    ]
    # The validation charts: the x axis in bucket order, 0..6 then 7+ (no `all`).
    purchases = specs["clv_validation_purchases"]["encoding"]["x"]
    assert purchases["sort"] == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert specs["clv_validation_value"]["encoding"]["x"]["sort"] == [
        "1", "2", "3", "4", "5", "6", "7+"
    ]  # fmt: skip
    # Every P(alive) range has its place on the axis, empty or not.
    x = specs["p_alive_distribution"]["layer"][0]["encoding"]["x"]
    assert x["scale"]["domain"][-2:] == ["99.9% or more", "one purchase so far"]
    assert len(x["scale"]["domain"]) == 8


@pytest.mark.dbt
def test_the_summary_names_the_segments_with_the_most_value_and_risk(
    rendered: Rendered, bundled_build: DbtRun
) -> None:
    page = (rendered.out / "index.html").read_text(encoding="utf-8")
    top, share = bundled_build.query(
        "select segment_name, share_of_predicted_clv from segment_profiles "
        "order by predicted_clv desc, cluster_id limit 1"
    )[0]
    at_risk = bundled_build.scalar(
        "select segment_name from segment_profiles order by value_at_risk desc, cluster_id limit 1"
    )
    assert f"the segment with the most predicted value is <b>{top}</b>, {share:.0%} of it" in page
    assert f"The most value at risk (past spend times the chance the customer has left) is in " \
        f"<b>{at_risk}</b>" in page  # fmt: skip
    assert "The value ahead is not available" not in page


@pytest.mark.dbt
def test_each_segment_card_shows_its_rule_fidelity_and_stability(
    rendered: Rendered, sections: list[report.Section], bundled_build: DbtRun
) -> None:
    page = (rendered.out / "index.html").read_text(encoding="utf-8")
    start = page.index('<div class="cards">')
    cards = page[start : page.index("</section>", start)]
    rows = bundled_build.query(
        "select segment_name, segment_rule, rule_fidelity, stability_band, jaccard_stability"
        " from segment_profiles order by cluster_id"
    )
    for name, rule, fidelity, band, jaccard in rows:
        card = cards[cards.index(f"{html.escape(name)}</h3>") :]
        card = card[: card.index("</div>")]
        assert f"<b>Rule:</b> {html.escape(rule)}" in card
        assert f"all the segment's rules: {fidelity:.0%} (fidelity)" in card
        assert f"<dt>Stability</dt><dd>{band} (Jaccard {jaccard:.2f})</dd>" in card
    spec = all_charts(sections)["rule_fidelity"].to_dict()
    drawn = spec["hconcat"][0]
    values = spec["datasets"][drawn["data"]["name"]]
    assert [v["segment_name"] for v in values] == [r[0] for r in rows]
    assert [v["rule_fidelity"] for v in values] == [r[2] for r in rows]


@pytest.mark.dbt
def test_the_p_alive_distribution_is_counted_in_sql(bundled_build: DbtRun) -> None:
    assert "group by" in (REPORT_MODELS_DIR / "rpt_p_alive_distribution.sql").read_text()
    q = bundled_build.scalar
    assert q("select sum(n_customers) from rpt_p_alive_distribution") == q(
        "select count(p_alive) from customer_value"
    )
    assert q("select count(*) from rpt_p_alive_distribution") == 8 * 5  # ranges x tiers
    assert q("select sum(n_customers) from rpt_p_alive_distribution where is_one_purchase") == q(
        "select count(*) from customer_value where x = 0"
    )
    assert q(
        "select sum(n_customers) from rpt_p_alive_distribution where lower_bound >= 0.99 "
        "and not is_one_purchase"
    ) == q("select count(*) from customer_value where x > 0 and p_alive >= 0.99")
    assert q("select round(sum(share_of_value_at_risk), 9) from rpt_segment_value") == 1


@pytest.mark.dbt
def test_a_report_without_a_lifetime_value_fit_still_renders(
    bundled_build: DbtRun, tmp_path: Path
) -> None:
    # The bundled build with the models' values nulled, as a build whose data is too thin
    # leaves them (the file keeps its name: the report views name the database).
    database = copy_database(bundled_build, tmp_path / "db" / bundled_build.database.name)
    with duckdb.connect(str(database)) as con:
        con.execute(
            "update clv_model_parameters set estimate = null, std_error = null, "
            "converged = false, null_reason = $1",
            [NOT_FITTED],
        )
        con.execute(
            "update customer_value set p_alive = null, churn_risk = null, "
            "expected_purchases = null, expected_order_value = null, predicted_clv = null, "
            "value_at_risk = null, value_tier = null, null_reason = $1",
            [NOT_FITTED],
        )
        con.execute(
            "update segment_profiles set mean_p_alive = null, predicted_clv = null, "
            "mean_predicted_clv = null, share_of_predicted_clv = null, value_at_risk = null"
        )
        con.execute(
            "update clv_validation set predicted_mean = null, predicted_total = null, "
            "mean_absolute_error = null, correlation = null"
        )
    out = tmp_path / "report"
    assert report.main(["--database", str(database), "--out", str(out)]) == 0
    page = (out / "index.html").read_text(encoding="utf-8")
    # The summary says so in plain words; the value section gives the model's reason.
    assert "The value ahead is not available: the purchase model could not be fitted on this " \
        "data. Section 6 says why" in page  # fmt: skip
    assert f"the purchase model (BG/NBD) was not fitted ({NOT_FITTED})" in page
    assert "the segment with the most predicted value" not in page
    data = report.load_marts(database)
    (value,) = [s for s in report.build_sections(data) if s.key == "value"]
    for name, chart in value.charts.items():
        spec = chart.to_dict()
        assert is_empty_state(spec), name
        assert NOT_FITTED in empty_state_text(spec), name
        assert (out / "figures" / f"{name}.png").read_bytes().startswith(PNG_SIGNATURE)
    assert "How far to trust it" not in value.intro


def test_the_value_charts_say_why_when_there_is_nothing_to_draw() -> None:
    scale = report_charts.segment_colors(["A", "B"])
    segments = pd.DataFrame(
        {
            "cluster_id": [1, 2],
            "segment_name": ["A", "B"],
            "n_customers": [3, 4],
            "mean_p_alive": [None, None],
            "predicted_clv": [None, None],
            "mean_predicted_clv": [None, None],
            "share_of_predicted_clv": [None, None],
            "value_at_risk": [None, None],
            "share_of_value_at_risk": [None, None],
        }
    )
    empty = {
        "segment_value": report_charts.segment_value(segments, scale, 365, "not fitted: why"),
        "p_alive_distribution": report_charts.p_alive_distribution(
            pd.DataFrame(columns=["bucket_order", "bucket_label", "n_customers"]),
            "not fitted: why",
        ),
        "clv_validation": report_charts.clv_validation(
            pd.DataFrame(columns=["measure", "calibration_purchases", "predicted_mean"]),
            "repeat_purchases",
            "not fitted: why",
        ),
    }
    for name, chart in empty.items():
        spec = chart.to_dict()
        assert is_empty_state(spec), name
        assert empty_state_text(spec) == "not fitted: why", name


def test_the_validation_chart_orders_its_axis_and_states_the_totals() -> None:
    rows = [("7+", 7, 10.0, 13.0), ("0", 0, 1.0, 1.2), ("all", 8, 2.0, 2.5), ("2", 2, 2.5, 3.0)]
    validation = pd.DataFrame(
        {
            "measure": "repeat_purchases",
            "calibration_purchases": [r[0] for r in rows],
            "bucket_order": [r[1] for r in rows],
            "customers": [10, 100, 200, 50],
            "predicted_mean": [r[2] for r in rows],
            "actual_mean": [r[3] for r in rows],
            "predicted_total": [100.0, 100.0, 400.0, 125.0],
            "actual_total": [130.0, 120.0, 500.0, 150.0],
            "mean_absolute_error": 1.0,
            "calibration_end": pd.Timestamp("2011-06-06"),
            "holdout_end": pd.Timestamp("2011-12-10"),
            "null_reason": None,
        }
    )
    spec = report_charts.clv_validation(validation, "repeat_purchases").to_dict()
    assert spec["encoding"]["x"]["sort"] == ["0", "2", "7+"]
    assert spec["title"]["subtitle"][-1] == (
        "All 200 customers: 400 repeat purchases predicted, 500 made (25% more than predicted)."
    )
    assert report_charts.gap_in_words(90, 100) == "10% less than predicted"
    assert report_charts.gap_in_words(100.2, 100) == "as predicted"


def test_money_has_thousands_separators_and_the_currency() -> None:
    assert report_charts.money(8216027.65, "GBP") == "£8,216,028"
    assert report_charts.money(-1234.4, "EUR") == "-€1,234"
    assert report_charts.money(1234567, "CHF") == "1,234,567 CHF"


def selection_rows(
    rule: str, stability: list[float], knee: int | None, chosen: int
) -> pd.DataFrame:
    ks = list(range(2, 2 + len(stability)))
    return pd.DataFrame(
        {
            "algorithm": "kmeans",
            "k": ks,
            "stability": stability,
            "is_knee": [k == knee for k in ks],
            "is_selected": [k == chosen for k in ks],
            "selection_rule": rule,
            "selection_reason": f"k={chosen}: kneed says so",
            "stability_threshold": 0.75,
        }
    )


def test_the_reason_for_k_is_in_plain_words() -> None:
    words = report.k_in_words(
        selection_rows("best_mean_rank_among_stable", [0.9, 0.6, 0.8, 0.5], knee=3, chosen=4)
    )
    assert words == (
        "Splits into 2 to 5 segments were tried. Only the splits into 2 and 4 come back "
        "largely the same when the split is repeated on random samples of the customers; of "
        "those, 4 scores best overall on three measures of how distinct and compact the groups "
        "are. The point where extra segments stop paying off, 3, did not come back reliably, so "
        "it was not used."
    )
    knee = report.k_in_words(selection_rows("knee_if_stable", [0.9, 0.8, 0.5], knee=3, chosen=3))
    assert "beyond 3 the gain tails off" in knee
    assert "stability 0.80 of 1, 0.75 needed" in knee
    rough = report.k_in_words(selection_rows("most_stable", [0.5, 0.7, 0.6], knee=None, chosen=3))
    assert "read the segments as rough groupings" in rough
    for rule in ["fixed", "registered_model", "registered_k_if_stable"]:
        text = report.k_in_words(selection_rows(rule, [0.9, 0.8], knee=None, chosen=2))
        assert text.startswith("2 segments"), rule
    for text in [words, knee, rough]:
        assert "kneed" not in text and "Calinski" not in text


def test_the_country_chart_cuts_a_dominant_bar_and_marks_small_markets() -> None:
    countries = pd.DataFrame(
        {
            "country": ["United Kingdom", "Germany", "France", "Brazil"],
            "n_customers": [3916, 94, 87, 1],
            "revenue": [7_242_855.0, 205_381.0, 183_802.0, 1_143.6],
            "share_of_revenue": [0.83, 0.024, 0.021, 0.0001],
            "revenue_rank": [1, 2, 3, 4],
        }
    )
    spec = report_charts.revenue_by_country(countries, "GBP").to_dict()
    revenue, customers = spec["hconcat"]
    bars = revenue["layer"][0]
    assert bars["encoding"]["x"]["scale"]["domain"] == [0, pytest.approx(205_381.0 * 1.35)]
    assert (
        "United Kingdom is cut at the axis end: 7,242,855 GBP, 83% of revenue."
        in (spec["title"]["subtitle"])
    )
    rows = {r["country"]: r for r in spec["datasets"][spec["data"]["name"]]} if "data" in spec \
        else {r["country"]: r for r in next(iter(spec["datasets"].values()))}  # fmt: skip
    assert rows["United Kingdom"]["is_cut"] and not rows["Germany"]["is_cut"]
    assert rows["Brazil"]["is_few"] and not rows["France"]["is_few"]
    assert customers["layer"][0]["encoding"]["x"]["field"] == "n_customers"


def test_the_weekday_chart_keeps_a_day_without_orders() -> None:
    timing = pd.DataFrame(
        {
            "iso_weekday": [1, 2, 7],
            "weekday_name": ["Monday", "Tuesday", "Sunday"],
            "hour_of_day": [8, 12, 15],
            "n_orders": [3, 5, 2],
            "revenue": [10.0, 20.0, 5.0],
        }
    )
    spec = report_charts.purchase_timing(timing).to_dict()
    assert spec["encoding"]["y"]["scale"]["domain"] == report_charts.WEEKDAYS
    assert spec["encoding"]["x"]["scale"]["domain"] == list(range(8, 16))
    assert spec["title"]["subtitle"] == (
        "No orders on Wednesday, Thursday, Friday, Saturday in this data: the empty rows."
    )


def test_the_lift_axis_fits_the_lifts() -> None:
    domain, ticks = report_charts.lift_domain(pd.Series([0.21, 0.9, 1.4, 19.5]))
    assert domain == [pytest.approx(0.21 / 1.25), pytest.approx(19.5 * 1.25)]
    assert ticks == [0.2, 0.5, 1, 2, 5, 10, 20]


def test_each_dendrogram_branch_counts_the_segments_under_it() -> None:
    # Four customers: 0 and 1 merge first (node 4), then 2 and 3 (node 5), then both (node 6).
    z = np.array([[0, 1, 0.5, 2], [2, 3, 0.7, 2], [4, 5, 2.0, 4]], dtype=float)
    leaves = pd.DataFrame(
        {"leaf_id": [0, 1, 2, 3], "segment_name": ["A", "A", "A", "B"], "n_customers": 1}
    )
    branches = report_charts.branch_segments(z, 4, [4, 5], leaves, ["A", "B"])
    first = branches[branches["x"] == 1.0]
    second = branches[branches["x"] == 11.0]
    assert first[["segment_name", "n_customers", "share"]].values.tolist() == [["A", 2, 1.0]]
    assert second[["segment_name", "n_customers", "share"]].values.tolist() == [
        ["A", 1, 0.5],
        ["B", 1, 0.5],
    ]
    assert second["share_end"].max() == 1.0


def test_a_chart_of_more_than_5000_rows_is_drawn(tmp_path: Path) -> None:
    # The silhouettes of 10,000 sampled customers (any build above 10,000 customers): Altair's
    # default guard refuses more than 5,000 rows; the report draws them, page and PNG.
    rows = 10_000
    silhouettes = pd.DataFrame(
        {
            "customer_id": np.arange(rows),
            "cluster_id": np.arange(rows) % 2 + 1,
            "silhouette": np.linspace(-0.1, 0.8, rows),
            "segment_name": np.where(np.arange(rows) % 2, "B", "A"),
        }
    )
    chart = report_charts.silhouette_plot(
        silhouettes, report_charts.segment_colors(["A", "B"]), 10**6
    )
    with pytest.raises(alt.MaxRowsError):
        chart.to_dict()  # Altair's default, which the report lifts for its own conversions only
    spec = report.chart_spec(chart)
    assert len(next(iter(spec["datasets"].values()))) == rows
    section = report.Section("quality", "4. Quality", "intro", {"silhouette_plot": chart})
    page = report.page_html([section], "", "", "Report", ["A", "B"])
    assert page.count('id="chart-silhouette_plot"') == 1
    report.save_png(chart, tmp_path / "silhouette.png")
    assert (tmp_path / "silhouette.png").read_bytes().startswith(PNG_SIGNATURE)
    assert "a sample of 10,000 of 1,000,000 customers" in json.dumps(spec["title"])


def test_churn_risk_does_not_call_lapsed_one_time_buyers_safe() -> None:
    row = pd.Series(
        {"mean_repeat_churn_risk": 0.0028, "share_lapsed": 0.57, "share_one_purchase": 0.54}
    )
    assert report.churn_in_words(row, "180") == (
        "57% have not ordered for 180+ days; repeat buyers under 1% likely to have stopped; "
        "54% have bought once (too soon to tell)"
    )
    row["mean_repeat_churn_risk"] = None
    assert "no estimate for repeat buyers" in report.churn_in_words(row, "180")


def test_segment_names_cannot_break_out_of_the_page() -> None:
    name = 'Recent "first" </script><script>alert(1)</script> & <b>co</b>'
    chart = report_charts.segment_sizes(
        pd.DataFrame(
            {
                "segment_name": [name],
                "n_customers": [3],
                "share_of_customers": [1.0],
                "share_of_revenue": [1.0],
            }
        ),
        report_charts.segment_colors([name]),
    )
    section = report.Section("segments", "5. Segments", "intro", {"segment_sizes": chart})
    page = report.page_html([section], "", "", "Report", [name])
    script = page[page.rindex("<script>") :]
    assert "</script><script>alert(1)" not in script
    assert script.count("</script>") == 1  # only the page's own closing tag


def test_the_drift_chart_names_its_threshold() -> None:
    drift = pd.DataFrame(
        {
            "reference_model_id": 1,
            "measure": ["population_stability_index", "segment_share_points"],
            "subject": ["monetary", "Loyal regulars"],
            "drift": [0.3, 1.0],
            "threshold": [0.2, 5.0],
            "share_of_threshold": [1.5, 0.2],
            "is_drifted": [True, False],
            "reference_value": [None, 30.0],
            "current_value": [None, 31.0],
        }
    )
    spec = report_charts.segment_drift(drift).to_dict()
    for _, unit in unit_specs(spec):
        assert "tooltip" in unit["encoding"]
    assert "PSI warns above 0.2" in spec["title"]["subtitle"]


@pytest.mark.dbt
def test_the_readme_quotes_the_bundled_report(rendered: Rendered) -> None:
    readme = " ".join((PROJECT_ROOT / "README.md").read_text().split())
    page = html.unescape((rendered.out / "index.html").read_text(encoding="utf-8"))
    summary = " ".join(page[page.index('<section id="summary">') :].split())
    quoted = re.search(r"in plain words \(\"(.*?)\.\.\.\"\)", readme).group(1)
    assert quoted in summary
    churn = re.search(r"the bundled Lapsed one-time buyers: \"(.*?)\"\)", readme).group(1)
    card = summary[summary.index("Lapsed one-time buyers</h3>") :]
    assert churn in card[: card.index("</dl>")]


@pytest.mark.dbt
def test_the_new_report_views_equal_a_direct_computation(bundled_build: DbtRun) -> None:
    with duckdb.connect(str(bundled_build.database), read_only=True) as con:
        customers = con.sql(
            "select s.customer_id, s.cluster_id, s.segment_id, s.recency_days, s.net_monetary,"
            " s.predicted_clv, v.x, v.churn_risk from customer_segments s"
            " join customer_value v using (customer_id)"
        ).df()
        segments = con.sql("select * from rpt_segments").df().set_index("cluster_id")
        top = con.sql("select * from rpt_top_customers").df()
        axes = con.sql("select * from rpt_pca_axes").df()
        scaled = con.sql(
            "select f.*, c.pca_1, c.pca_2 from customer_features_scaled f"
            " join customer_clusters c using (customer_id)"
        ).df()
        leaves = con.sql("select sum(n_customers) from rpt_ward_leaves").fetchall()[0][0]
        lapsed_after = con.sql("select lapsed_after_days from rpt_summary").fetchall()[0][0]
    # Churn signals per segment, from the customers.
    for cluster_id, group in customers.groupby("cluster_id"):
        row = segments.loc[cluster_id]
        assert row["share_lapsed"] == pytest.approx((group["recency_days"] >= lapsed_after).mean())
        assert row["share_one_purchase"] == pytest.approx((group["x"] == 0).mean())
        repeat = group.loc[group["x"] > 0, "churn_risk"]
        assert row["mean_repeat_churn_risk"] == pytest.approx(repeat.mean())
    # The top customers: each segment's first 200 by predicted value, net spend, id.
    for segment_id, group in customers.groupby("segment_id"):
        expected = group.sort_values(
            ["predicted_clv", "net_monetary", "customer_id"], ascending=[False, False, True]
        )["customer_id"].head(200)
        shown = top[top["segment_id"] == segment_id].sort_values("rank_in_segment")
        assert shown["customer_id"].tolist() == expected.tolist()
    # The axes' correlations, by numpy.
    for row in axes.itertuples():
        expected = np.corrcoef(scaled[row.feature], scaled[f"pca_{row.axis}"])[0, 1]
        assert row.axis_correlation == pytest.approx(expected, abs=1e-9)
    assert len(axes) == 2 * (len(scaled.columns) - 3)
    # Every customer sits under one Ward leaf.
    assert leaves == len(customers)
