"""Write the segmentation report: one offline HTML page and a PNG per chart.

Usage: ``python -m customer_segmentation.report [--database PATH] [--out DIR]``. Reads the
DuckDB file written by ``dbt build`` read-only; ``make build`` ends with this, ``make report``
redraws without rebuilding.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import altair as alt
import duckdb
import pandas as pd

from customer_segmentation.errors import SegmentationError
from customer_segmentation.report import charts

CORRELATION_FEATURES = [
    "recency_days",
    "frequency",
    "monetary",
    "tenure_days",
    "average_order_value",
    "average_items_per_order",
    "distinct_products",
    "return_rate",
    "share_of_orders_last_90_days",
    "mean_order_hour",
]
PCA_SAMPLE_SIZE = 5000  # points in the scatter chart (a fixed, hash-ordered sample)

# The marts the report reads (also the exposure's depends_on in models/marts/_exposures.yml).
MART_QUERIES: dict[str, str] = {
    "audit": "select * from data_quality_audit order by rule_order",
    "monthly": "select * from monthly_activity order by activity_month",
    "countries": "select * from country_summary",
    "cohorts": "select * from cohort_retention",
    "order_sizes": "select * from order_size_distribution",
    "timing": "select * from purchase_timing",
    # Only the columns the charts use; aggregation and sampling stay in SQL, so a report on
    # millions of customers moves cells and samples into pandas, not every customer.
    "features": f"""
        select snapshot_date, {", ".join(CORRELATION_FEATURES)}
        from customer_features order by customer_id
    """,
    "rfm_cells": """
        select r_score, f_score, count(*) as customers, sum(monetary) as revenue,
               any_value(rfm_segment_label) as rfm_segment_label
        from customer_rfm_segments group by all order by all
    """,
    "selection": "select * from cluster_model_selection order by algorithm, k",
    "silhouettes": """
        select s.*, n.segment_name
        from customer_silhouettes as s inner join segment_names as n using (cluster_id)
    """,
    "linkage": "select * from hierarchy_linkage order by merge_order",
    "clusters_sample": f"""
        select c.*, n.segment_name, count(*) over () as n_customers
        from customer_clusters as c inner join segment_names as n using (cluster_id)
        order by hash(c.customer_id), c.customer_id
        limit {PCA_SAMPLE_SIZE}
    """,
    "profiles": "select * from segment_profiles order by cluster_id",
    "feature_profiles": """
        select p.*, n.segment_name
        from segment_feature_profiles as p inner join segment_names as n using (cluster_id)
    """,
    "crosstab": "select * from segment_rfm_crosstab",
    "rfm_segments": "select * from reference.rfm_segments order by segment_order",
    "migration": "select * from segment_migration",
    "history_counts": """
        select snapshot_date, segment_name, count(*) as customers
        from customer_segment_history group by all order by all
    """,
    "evaluation": "select * from cluster_evaluation",
}

PROFILE_FEATURES = ["recency_days", "frequency", "monetary", "return_rate"]


class ReportError(SegmentationError, RuntimeError):
    """The report cannot be drawn (no database, locked database, missing tables)."""


def load_marts(database: Path) -> dict[str, pd.DataFrame]:
    """Read every mart the report needs, read-only.

    Raises:
        ReportError: the file is missing, locked by a running build, or lacks a mart.

    """
    if not database.is_file():
        raise ReportError(f"{database}: no such database; run `make build` first")
    try:
        con = duckdb.connect(str(database), read_only=True)
    except duckdb.IOException as error:
        raise ReportError(
            f"{database}: cannot open it read-only ({error}). Another process holds the file "
            "(a running `dbt build`, or an open DuckDB session): wait for it or close it."
        ) from error
    try:
        data = {}
        for name, query in MART_QUERIES.items():
            try:
                data[name] = con.sql(query).df()
            except duckdb.CatalogException as error:
                raise ReportError(
                    f"{database}: a table the report reads is missing ({error}); "
                    "run `make build` to create every mart"
                ) from error
        check_latest_build(con, database)
        return data
    finally:
        con.close()


BUILDS_QUERY = """
    select
        invocation_id,
        min(logged_at) filter (where event = 'started') as started_at,
        any_value(command) as command,
        bool_or(is_full_build) as is_full_build,
        any_value(raw_transactions_path) as raw_transactions_path,
        any_value(status) filter (where event = 'finished') as status,
        any_value(failed_nodes) filter (where event = 'finished') as failed_nodes
    from build_log
    group by invocation_id
    order by started_at
"""


def check_latest_build(con: duckdb.DuckDBPyConnection, database: Path) -> None:
    """Refuse the tables unless they come from one complete build that succeeded.

    A build that failed or was killed half way leaves tables of two builds side by side (the
    cleaned lines of a new file, the segments of the old one); so does a partial build
    (``--select``) of another file. build_log tells: the latest complete ``dbt build`` must
    have succeeded, and every run after it must have finished, succeeded and read its file.

    Raises:
        ReportError: naming the build (its start, UTC, and invocation id) and what is wrong.

    """
    try:
        builds = con.sql(BUILDS_QUERY).fetchall()
    except duckdb.Error:
        builds = []
    if not builds:
        raise ReportError(
            f"{database}: has no build_log, so it cannot tell whether its tables come from one "
            "complete build; run `make build`"
        )

    def named(build: tuple) -> str:
        invocation_id, started_at, command = build[:3]
        return f"dbt {command} started {started_at:%Y-%m-%d %H:%M:%S} UTC ({invocation_id})"

    latest = builds[-1]
    if latest[5] is None:
        raise ReportError(
            f"{database}: the latest build, {named(latest)}, did not finish (killed, or still "
            "running), so the tables mix it with an earlier build; run `make build` again"
        )
    if latest[5] != "success":
        raise ReportError(
            f"{database}: the latest build, {named(latest)}, failed ({latest[6]}), so the "
            "tables mix it with an earlier build; fix what dbt reported and run `make build` "
            "again"
        )
    complete = [i for i, b in enumerate(builds) if b[3] and b[5] == "success"]
    if not complete:
        raise ReportError(
            f"{database}: no complete `dbt build` (without --select) has succeeded on it, so "
            "its tables may come from several partial builds; run `make build`"
        )
    full = builds[complete[-1]]
    for later in builds[complete[-1] + 1 :]:
        if later[5] != "success":
            raise ReportError(
                f"{database}: {named(later)} after the last complete build "
                f"{'failed (' + str(later[6]) + ')' if later[5] else 'did not finish'}, so the "
                "tables mix two builds; run `make build` again"
            )
        if later[4] != full[4]:
            raise ReportError(
                f"{database}: {named(later)} read {later[4]}, but the last complete build "
                f"read {full[4]}, so the tables mix two files; run `make build` again"
            )


@dataclass(frozen=True)
class Section:
    """A titled group of charts on the page."""

    key: str
    title: str
    intro: str
    charts: dict[str, alt.TopLevelMixin]


def build_sections(data: dict[str, pd.DataFrame]) -> list[Section]:
    """Every chart of the report, grouped into the page's sections."""
    names = data["profiles"].sort_values("cluster_id")["segment_name"].tolist()
    scale = charts.segment_colors(names)
    k = len(names)
    rfm_order = data["rfm_segments"]["segment_label"].tolist()
    builders: list[tuple[str, str, str, dict[str, Callable[[], alt.TopLevelMixin]]]] = [
        (
            "data",
            "1. The data",
            "What went in, what was cleaned away and why, and how the business looks over time.",
            {
                "cleaning_audit": lambda: charts.cleaning_audit(data["audit"]),
                "monthly_activity": lambda: charts.monthly_activity(data["monthly"]),
                "revenue_by_country": lambda: charts.revenue_by_country(data["countries"]),
                "cohort_retention": lambda: charts.cohort_retention(
                    data["cohorts"], charts.partial_months(data["monthly"])
                ),
                "order_value_distribution": lambda: charts.order_value_distribution(
                    data["order_sizes"]
                ),
                "purchase_timing": lambda: charts.purchase_timing(data["timing"]),
            },
        ),
        (
            "features",
            "2. Customer features",
            "Recency, frequency and monetary value per customer, how features relate, and the "
            "classic RFM grid.",
            {
                "feature_distributions": lambda: charts.feature_distributions(data["features"]),
                "feature_correlations": lambda: charts.feature_correlations(
                    data["features"], CORRELATION_FEATURES
                ),
                "rfm_grid": lambda: charts.rfm_grid(data["rfm_cells"]),
            },
        ),
        (
            "choosing_k",
            "3. Choosing the number of segments",
            "k-means and Ward clustering were fitted for every k; the rule that picked k is "
            "stated in the summary.",
            {
                "elbow": lambda: charts.elbow(data["selection"]),
                "selection_metrics": lambda: charts.selection_metrics(data["selection"]),
            },
        ),
        (
            "quality",
            "4. Quality of the segments",
            "How well customers sit in their segment, and the hierarchy the Ward clusters come "
            "from.",
            {
                "silhouette_plot": lambda: charts.silhouette_plot(data["silhouettes"], scale),
                "dendrogram": lambda: charts.dendrogram(data["linkage"], k),
            },
        ),
        (
            "segments",
            "5. The segments",
            "Who is in each segment, how big and valuable it is (net of returns), and how it "
            "differs from the average customer. Two views with two vocabularies: the RFM "
            "segments are a fixed rule grid on recency, frequency and spend, comparable across "
            "shops and over time; the segments here describe what this data's customers look "
            "like on every feature, and move when they do. No name is used by both; the last "
            "chart shows how they overlap.",
            {
                "pca_scatter": lambda: charts.pca_scatter(data["clusters_sample"], scale),
                "segment_sizes": lambda: charts.segment_sizes(data["profiles"], scale),
                "centroid_heatmap": lambda: charts.centroid_heatmap(
                    data["feature_profiles"], scale, CORRELATION_FEATURES
                ),
                "profile_bars": lambda: charts.profile_bars(
                    data["feature_profiles"], scale, PROFILE_FEATURES
                ),
                "segment_rfm_heatmap": lambda: charts.segment_rfm_heatmap(
                    data["crosstab"], scale, rfm_order
                ),
            },
        ),
        (
            "movement",
            "6. Movement between segments",
            "Segments as of earlier period ends (equal months, or quarters), scored with today's "
            "model. The days from the last period end to the snapshot date are a partial "
            "period: the migration shows the last full period, and the time axis draws the "
            "partial one as short as it is.",
            {
                "migration_heatmap": lambda: charts.migration_heatmap(data["migration"], scale),
                "segment_sizes_over_time": lambda: charts.segment_sizes_over_time(
                    data["history_counts"], scale
                ),
            },
        ),
    ]
    return [
        Section(key, title, intro, {name: build() for name, build in chart_builders.items()})
        for key, title, intro, chart_builders in builders
    ]


def summary_html(data: dict[str, pd.DataFrame]) -> str:
    """The opening summary, written from the data, and the table of segments."""
    profiles = data["profiles"].sort_values("cluster_id")
    selection = data["selection"]
    chosen = selection[selection["is_selected"] & (selection["algorithm"] == "kmeans")].iloc[0]
    largest = profiles.loc[profiles["n_customers"].idxmax()]
    richest = profiles.loc[profiles["share_of_revenue"].idxmax()]
    snapshot = pd.Timestamp(data["features"]["snapshot_date"].iloc[0]).date()
    kept = int(data["audit"].loc[data["audit"]["row_class"] == "kept", "n_rows"].iloc[0])
    raw = int(data["audit"]["n_rows"].sum())
    # The stored reason starts "k=5: ..."; the sentence already names k.
    reason = str(chosen["selection_reason"]).split(": ", 1)[-1]
    text = (
        f"<p>{int(profiles['n_customers'].sum()):,} customers, as of {snapshot}, from "
        f"{raw:,} transaction lines ({kept:,} kept after cleaning), fall into "
        f"<b>{int(chosen['k'])} segments</b>. Why {int(chosen['k'])}: "
        f"{html.escape(reason)}.</p>"
        f"<p>The largest segment is <b>{html.escape(largest['segment_name'])}</b> "
        f"({largest['share_of_customers']:.0%} of customers); the most valuable is "
        f"<b>{html.escape(richest['segment_name'])}</b>, with {richest['share_of_revenue']:.0%} of "
        f"revenue from {richest['share_of_customers']:.0%} of customers.</p>"
    )
    colors = charts.segment_colors(profiles["segment_name"].tolist()).range
    rows = "".join(
        "<tr>"
        f'<td><span class="swatch" style="background:{color}"></span>'
        f"{html.escape(row.segment_name)}</td>"
        f"<td class='num'>{row.n_customers:,}</td>"
        f"<td class='num'>{row.share_of_customers:.0%}</td>"
        f"<td class='num'>{row.share_of_revenue:.0%}</td>"
        f"<td>{html.escape(row.segment_description)}</td>"
        f"<td>{html.escape(str(row.recommended_action))}</td>"
        "</tr>"
        for row, color in zip(profiles.itertuples(), colors, strict=True)
    )
    table = (
        "<table><thead><tr><th>Segment</th><th>Customers</th><th>Share</th>"
        "<th>Revenue share</th><th>Who they are</th><th>Recommended action</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )
    return f'<section id="summary"><h2>Summary</h2>{text}{table}</section>'


PAGE_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2rem auto;
       max-width: 1100px; color: #222; line-height: 1.45; padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.3rem; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #eee; padding: 0.35rem 0.5rem; text-align: left;
         vertical-align: top; }
td.num { text-align: right; white-space: nowrap; }
.swatch { display: inline-block; width: 0.8rem; height: 0.8rem; margin-right: 0.4rem;
          border-radius: 2px; vertical-align: middle; }
.chart { margin: 1.5rem 0; } nav a { margin-right: 1rem; }
"""


def page_html(sections: list[Section], summary: str, title: str) -> str:
    """The whole page: Vega scripts inline (opens offline), then every chart."""
    import vl_convert
    from altair.utils._importers import vl_version_for_vl_convert

    bundle = vl_convert.javascript_bundle(vl_version=vl_version_for_vl_convert())
    nav = "".join(f'<a href="#{s.key}">{html.escape(s.title)}</a>' for s in sections)
    body = []
    embeds = []
    for section in sections:
        body.append(
            f'<section id="{section.key}"><h2>{html.escape(section.title)}</h2>'
            f"<p>{html.escape(section.intro)}</p>"
        )
        for name, chart in section.charts.items():
            body.append(f'<div class="chart" id="chart-{name}"></div>')
            spec = json.dumps(chart.to_dict())
            embeds.append(f"vegaEmbed('#chart-{name}', {spec}, {{actions: false}});")
        body.append("</section>")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{PAGE_STYLE}</style>"
        f"<script>{bundle}</script></head><body>"
        f"<h1>{html.escape(title)}</h1><nav>{nav}</nav>{summary}{''.join(body)}"
        f"<script>{''.join(embeds)}</script></body></html>"
    )


def write_report(database: Path, out_dir: Path, png: bool = True) -> list[Path]:
    """Write ``index.html`` and ``figures/<chart>.png`` under out_dir; return the files."""
    data = load_marts(database)
    sections = build_sections(data)
    out_dir.mkdir(parents=True, exist_ok=True)
    page = out_dir / "index.html"
    page.write_text(
        page_html(sections, summary_html(data), "Customer segmentation report"), encoding="utf-8"
    )
    written = [page]
    if png:
        figures = out_dir / "figures"
        figures.mkdir(exist_ok=True)
        for section in sections:
            for name, chart in section.charts.items():
                path = figures / f"{name}.png"
                chart.save(str(path), scale_factor=2)
                written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database",
        type=Path,
        default=Path(os.environ.get("DBT_DUCKDB_PATH", "customer_segmentation.duckdb")),
        help="DuckDB file written by dbt build (default: $DBT_DUCKDB_PATH or "
        "customer_segmentation.duckdb)",
    )
    parser.add_argument("--out", type=Path, default=Path("reports"), help="output directory")
    parser.add_argument("--no-png", action="store_true", help="skip the PNG figures")
    args = parser.parse_args(argv)
    try:
        written = write_report(args.database, args.out, png=not args.no_png)
    except ReportError as error:
        print(f"report: {error}", file=sys.stderr)
        return 1
    print(f"report: wrote {written[0]} and {len(written) - 1} PNG figure(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
