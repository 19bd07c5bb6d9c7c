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

# The report models the page reads (models/reports), each with the order its charts need (its
# key or sort column; "" when the order does not matter). The report issues no other SQL: every
# join, filter, aggregation and sample is in the models. The exposure segmentation_report in
# models/reports/_reports.yml depends on exactly these (tests/test_report.py checks both ways).
REPORT_MODELS: dict[str, str] = {
    "rpt_summary": "",
    "rpt_segments": "cluster_id",
    "rpt_cleaning_audit": "rule_order",
    "rpt_monthly_activity": "activity_month",
    "rpt_revenue_by_country": "revenue_rank",
    "rpt_cohort_retention": "cohort_month, months_since_first_purchase",
    "rpt_order_value_distribution": "bucket_order",
    "rpt_purchase_timing": "iso_weekday, hour_of_day",
    "rpt_customer_features": "customer_id",
    "rpt_rfm_cells": "r_score, f_score",
    "rpt_model_selection": "algorithm, k",
    "rpt_segment_silhouettes": "customer_id",
    "rpt_ward_dendrogram": "merge_order",
    "rpt_pca_sample": "draw_order",
    "rpt_segment_z_scores": "cluster_id, feature",
    "rpt_segment_lifts": "cluster_id, feature",
    "rpt_segment_rfm_crosstab": "cluster_id, rfm_segment",
    "rpt_segment_value": "cluster_id",
    "rpt_p_alive_distribution": "bucket_order, tier_order",
    "rpt_clv_validation": "measure, bucket_order",
    "rpt_segment_migration": "from_segment_name, to_segment_name",
    "rpt_segment_sizes_over_time": "snapshot_date, segment_name",
    "rpt_segment_model": "",
    "rpt_segment_drift": "measure, subject",
    "rpt_top_customers": "segment_id, rank_in_segment",
    "rpt_ward_leaves": "leaf_id, segment_name",
    "rpt_pca_axes": "axis, feature",
    # Read by check_latest_build, after the others.
    "rpt_builds": "started_at",
}
BUILDS_MODEL = "rpt_builds"


def report_query(model: str) -> str:
    """The one statement the report runs on a report model."""
    order = REPORT_MODELS[model]
    return f"select * from {model}" + (f" order by {order}" if order else "")


class ReportError(SegmentationError, RuntimeError):
    """The report cannot be drawn (no database, locked database, missing tables)."""


def load_marts(database: Path) -> dict[str, pd.DataFrame]:
    """Read every report model (REPORT_MODELS), read-only; keyed by model name.

    Raises:
        ReportError: the file is missing, locked by a running build, lacks a report model, or
            its tables are not from one complete successful build.

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
        for model in REPORT_MODELS:
            if model == BUILDS_MODEL:
                continue
            try:
                data[model] = con.sql(report_query(model)).df()
            except duckdb.CatalogException as error:
                raise ReportError(
                    f"{database}: a table the report reads is missing ({error}); "
                    "run `make build` to create every mart and report model"
                ) from error
        check_latest_build(con, database)
        return data
    finally:
        con.close()


def check_latest_build(con: duckdb.DuckDBPyConnection, database: Path) -> None:
    """Refuse the tables unless they come from one complete build that succeeded.

    A build that failed or was killed half way leaves tables of two builds side by side (the
    cleaned lines of a new file, the segments of the old one); so does a partial build
    (``--select``) of another file. build_log tells: the latest complete ``dbt build`` must
    have succeeded, and every run after it must have finished, succeeded and read its file.

    Raises:
        ReportError: naming the build (its start, UTC, and invocation id) and what is wrong.

    """
    # One row per build, oldest first, by column name (models/reports/rpt_builds.sql).
    try:
        relation = con.sql(report_query(BUILDS_MODEL))
        builds = [dict(zip(relation.columns, row, strict=True)) for row in relation.fetchall()]
    except duckdb.Error:
        builds = []
    if not builds:
        raise ReportError(
            f"{database}: has no build_log, so it cannot tell whether its tables come from one "
            "complete build; run `make build`"
        )

    def named(build: dict) -> str:
        return (
            f"dbt {build['command']} started {build['started_at']:%Y-%m-%d %H:%M:%S} UTC "
            f"({build['invocation_id']})"
        )

    latest = builds[-1]
    if latest["status"] is None:
        raise ReportError(
            f"{database}: the latest build, {named(latest)}, did not finish (killed, or still "
            "running), so the tables mix it with an earlier build; run `make build` again"
        )
    if latest["status"] != "success":
        raise ReportError(
            f"{database}: the latest build, {named(latest)}, failed "
            f"({latest['failed_nodes']}), so the tables mix it with an earlier build; fix what "
            "dbt reported and run `make build` again"
        )
    complete = [i for i, b in enumerate(builds) if b["is_full_build"] and b["status"] == "success"]
    if not complete:
        raise ReportError(
            f"{database}: no complete `dbt build` (without --select) has succeeded on it, so "
            "its tables may come from several partial builds; run `make build`"
        )
    full = builds[complete[-1]]
    for later in builds[complete[-1] + 1 :]:
        if later["status"] != "success":
            what = f"failed ({later['failed_nodes']})" if later["status"] else "did not finish"
            raise ReportError(
                f"{database}: {named(later)} after the last complete build {what}, so the "
                "tables mix two builds; run `make build` again"
            )
        if later["raw_transactions_path"] != full["raw_transactions_path"]:
            raise ReportError(
                f"{database}: {named(later)} read {later['raw_transactions_path']}, but the last "
                f"complete build read {full['raw_transactions_path']}, so the tables mix two "
                "files; run `make build` again"
            )


@dataclass(frozen=True)
class Section:
    """A titled group of charts on the page.

    ``wide`` charts take a row each; the others pair up two to a row, in their order.
    """

    key: str
    title: str
    intro: str
    charts: dict[str, alt.TopLevelMixin]
    wide: frozenset[str] = frozenset()


def build_sections(data: dict[str, pd.DataFrame]) -> list[Section]:
    """Every chart of the report, grouped into the page's sections."""
    names = data["rpt_segments"]["segment_name"].tolist()  # in cluster order
    scale = charts.segment_colors(names)
    k = len(names)
    # The correlation chart's features, and the heatmap's order: rpt_customer_features' columns.
    features = [c for c in data["rpt_customer_features"].columns if c != "customer_id"]
    summary = data["rpt_summary"].iloc[0]
    horizon_days = int(summary["clv_horizon_days"])
    currency = str(summary["currency"])
    builders: list[tuple[str, str, str, dict[str, Callable[[], alt.TopLevelMixin]]]] = [
        (
            "data",
            "1. The data",
            "What went in, what was cleaned away and why, and how the business looks over time.",
            {
                "cleaning_audit": lambda: charts.cleaning_audit(
                    data["rpt_cleaning_audit"], currency
                ),
                "order_value_distribution": lambda: charts.order_value_distribution(
                    data["rpt_order_value_distribution"], currency
                ),
                "monthly_activity": lambda: charts.monthly_activity(
                    data["rpt_monthly_activity"], currency
                ),
                "revenue_by_country": lambda: charts.revenue_by_country(
                    data["rpt_revenue_by_country"], currency
                ),
                "cohort_retention": lambda: charts.cohort_retention(
                    data["rpt_cohort_retention"],
                    charts.partial_months(data["rpt_monthly_activity"]),
                ),
                "purchase_timing": lambda: charts.purchase_timing(data["rpt_purchase_timing"]),
            },
        ),
        (
            "features",
            "2. Customer features",
            "Recency, frequency and monetary value per customer, how features relate, and the "
            "classic RFM grid.",
            {
                "feature_distributions": lambda: charts.feature_distributions(
                    data["rpt_customer_features"], currency
                ),
                "feature_correlations": lambda: charts.feature_correlations(
                    data["rpt_customer_features"], features
                ),
                "rfm_grid": lambda: charts.rfm_grid(data["rpt_rfm_cells"], currency),
            },
        ),
        (
            "choosing_k",
            "3. Choosing the number of segments",
            "k-means and Ward clustering were fitted for every number of segments k in the "
            "range; the summary says in words why this k was chosen.",
            {
                "elbow": lambda: charts.elbow(data["rpt_model_selection"]),
                "selection_metrics": lambda: charts.selection_metrics(data["rpt_model_selection"]),
            },
        ),
        (
            "quality",
            "4. Quality of the segments",
            "How well customers sit in their segment, the hierarchy the Ward clusters come "
            "from, how faithfully each segment's rules (the cards above) describe it, and how "
            "reliably bootstrap refits find each segment again.",
            {
                "silhouette_plot": lambda: charts.silhouette_plot(
                    data["rpt_segment_silhouettes"], scale, int(summary["n_customers"])
                ),
                "dendrogram": lambda: charts.dendrogram(
                    data["rpt_ward_dendrogram"], data["rpt_ward_leaves"], k, scale
                ),
                "rule_fidelity": lambda: charts.rule_fidelity(data["rpt_segments"], scale),
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
                "pca_scatter": lambda: charts.pca_scatter(
                    data["rpt_pca_sample"], scale, data["rpt_pca_axes"]
                ),
                "segment_sizes": lambda: charts.segment_sizes(data["rpt_segments"], scale),
                "centroid_heatmap": lambda: charts.centroid_heatmap(
                    data["rpt_segment_z_scores"], scale, features
                ),
                "profile_bars": lambda: charts.profile_bars(data["rpt_segment_lifts"], scale),
                "segment_rfm_heatmap": lambda: charts.segment_rfm_heatmap(
                    data["rpt_segment_rfm_crosstab"], scale
                ),
            },
        ),
        (
            "value",
            "6. Value ahead",
            value_intro(data),
            {
                "segment_value": lambda: charts.segment_value(
                    data["rpt_segment_value"],
                    scale,
                    horizon_days,
                    value_unavailable(summary) or charts.NOT_FITTED,
                    currency,
                ),
                "p_alive_distribution": lambda: charts.p_alive_distribution(
                    data["rpt_p_alive_distribution"],
                    purchases_unavailable(summary) or charts.NOT_FITTED,
                ),
                "clv_validation_purchases": lambda: charts.clv_validation(
                    data["rpt_clv_validation"],
                    "repeat_purchases",
                    validation_unavailable(data["rpt_clv_validation"], "repeat_purchases"),
                ),
                "clv_validation_value": lambda: charts.clv_validation(
                    data["rpt_clv_validation"],
                    "mean_purchase_value",
                    validation_unavailable(data["rpt_clv_validation"], "mean_purchase_value"),
                    currency,
                ),
            },
        ),
        (
            "movement",
            "7. Movement between segments",
            model_line(data["rpt_segment_model"])
            + " Segments as of earlier period ends (equal months, or quarters), scored with "
            "today's model. The days from the last period end to the snapshot date are a "
            "partial period: the migration shows the last full period, and the time axis draws "
            "the partial one as short as it is.",
            {
                "migration_heatmap": lambda: charts.migration_heatmap(
                    data["rpt_segment_migration"], scale
                ),
                "segment_sizes_over_time": lambda: charts.segment_sizes_over_time(
                    data["rpt_segment_sizes_over_time"], scale
                ),
                "segment_drift": lambda: charts.segment_drift(data["rpt_segment_drift"]),
            },
        ),
    ]
    return [
        Section(
            key,
            title,
            intro,
            {name: build() for name, build in chart_builders.items()},
            WIDE_CHARTS & frozenset(chart_builders),
        )
        for key, title, intro, chart_builders in builders
    ]


# The charts that take a whole row; the others pair up two to a row.
WIDE_CHARTS = frozenset(
    {
        "monthly_activity",
        "revenue_by_country",
        "feature_distributions",
        "rule_fidelity",
        "centroid_heatmap",
        "profile_bars",
        "segment_rfm_heatmap",
        "segment_value",
        "p_alive_distribution",
        "segment_drift",
    }
)


def model_line(model: pd.DataFrame) -> str:
    """The model in use, its age, and whether this build refitted (rpt_segment_model)."""
    if model.empty:
        return "No registered model."
    row = model.iloc[0]
    fitted = (
        f"model {row['model_id']} (k = {row['k']}, fitted {row['fitted_at']:%Y-%m-%d %H:%M} UTC"
    )
    if not row["is_refitted"]:
        return (
            f"This build did not refit: it scored every customer with registered {fitted}, "
            f"{row['model_age_days']:.0f} days ago). Segment ids are the model's."
        )
    kept = (
        f"; {row['n_kept']} segment(s) kept their id and name from model "
        f"{row['previous_model_id']}, {row['n_new']} new, {row['n_retired']} retired"
        if pd.notna(row["previous_model_id"])
        else "; no earlier model to match against: every segment is new"
    )
    return f"This build refitted: {fitted}){kept}. Segment ids are stable across refits."


def _reason(text: object) -> str | None:
    return None if text is None or pd.isna(text) else str(text)


def purchases_unavailable(summary: pd.Series) -> str | None:
    """Why no customer has a P(alive) (the purchase model was not fitted); None if some do."""
    if int(summary["n_customers_with_p_alive"]) > 0:
        return None
    reason = _reason(summary["clv_purchases_null_reason"]) or "no customer has a value"
    return f"Not available: the purchase model (BG/NBD) was not fitted ({reason})."


def value_unavailable(summary: pd.Series) -> str | None:
    """Why no customer has a predicted CLV (a model was not fitted); None if some do."""
    if int(summary["n_customers_with_predicted_clv"]) > 0:
        return None
    unfitted = purchases_unavailable(summary)
    if unfitted:
        return unfitted
    reason = _reason(summary["clv_spend_null_reason"]) or "no customer has a value"
    return f"Not available: the spend model (Gamma-Gamma) was not fitted ({reason})."


def validation_unavailable(validation: pd.DataFrame, measure: str) -> str:
    """What a validation chart says when it has no predictions to draw."""
    reasons = validation.loc[validation["measure"] == measure, "null_reason"].dropna()
    if reasons.empty:
        return "Not available: the models fitted before the cut-off gave no predictions."
    return f"Not available: the models fitted before the cut-off are unusable ({reasons.iloc[0]})."


def value_intro(data: dict[str, pd.DataFrame]) -> str:
    """The value section's introduction: what the figures mean and how far to trust them."""
    summary = data["rpt_summary"].iloc[0]
    horizon = int(summary["clv_horizon_days"])
    currency = str(summary["currency"])
    text = (
        f"What the lifetime-value models expect of each customer over the next {horizon} "
        "days. The shop is non-contractual: nobody cancels, a customer who stopped buying is "
        "only silent, so the chance a customer is still buying (P(alive)) is inferred from "
        "how often and how recently they bought. A customer with one purchase so far counts "
        "as still buying: the model only lets customers leave after a repeat purchase. "
        "Predicted value is the net value of the purchases to expect, discounted for time; "
        "value at risk is what a customer has spent so far times the chance they have left."
    )
    unavailable = value_unavailable(summary)
    if unavailable:
        return f"{text} {unavailable} The charts below say so instead of drawing values."
    distribution = data["rpt_p_alive_distribution"]
    total = distribution["n_customers"].sum()
    near_one = distribution.loc[
        distribution["is_one_purchase"] | (distribution["lower_bound"] >= 0.99), "n_customers"
    ].sum()
    if total and near_one / total >= 0.8:
        text += (
            f" On this history the model finds little sign of anyone leaving: "
            f"{near_one / total:.0%} of customers have a chance of 99% or more, or one "
            "purchase so far, so value at risk is small; a longer history would tell more."
        )
    validation = data["rpt_clv_validation"]
    overall = validation[
        (validation["calibration_purchases"] == "all") & validation["predicted_total"].notna()
    ].set_index("measure")
    if "repeat_purchases" in overall.index:
        row = overall.loc["repeat_purchases"]
        start = pd.Timestamp(row["calibration_end"]).date()
        end = pd.Timestamp(row["holdout_end"]).date()
        text += (
            f" How far to trust it: fitted on the orders before {start}, the models predicted "
            f"{row['predicted_total']:,.0f} repeat purchases by the {int(row['customers']):,} "
            f"customers of that period from then to {end}; they made "
            f"{row['actual_total']:,.0f} "
            f"({charts.gap_in_words(row['actual_total'], row['predicted_total'])})"
        )
        if "mean_purchase_value" in overall.index:
            value = overall.loc["mean_purchase_value"]
            text += (
                f", and spent {charts.money(value['actual_mean'], currency)} a purchase against "
                f"{charts.money(value['predicted_mean'], currency)} predicted "
                f"({charts.gap_in_words(value['actual_mean'], value['predicted_mean'])})"
            )
        low = row["actual_total"] > 1.05 * row["predicted_total"]
        text += (
            ". Read predicted value as a ranking and a rough size"
            + (" (on the low side here)" if low else "")
            + " rather than an exact forecast; the models know nothing of seasons, "
            "campaigns or changes in the shop."
        )
    return text


def k_in_words(selection: pd.DataFrame) -> str:
    """Why this many segments, in plain words, from the k-means rows of rpt_model_selection."""
    kmeans = selection[selection["algorithm"] == "kmeans"]
    chosen = kmeans[kmeans["is_selected"]].iloc[0]
    k = int(chosen["k"])
    rule = str(chosen["selection_rule"])
    threshold = float(chosen["stability_threshold"])
    tried = f"{int(kmeans['k'].min())} to {int(kmeans['k'].max())}"
    resampled = "when the split is repeated on random samples of the customers"
    stability = (
        f"stability {float(chosen['stability']):.2f} of 1, {threshold:g} needed"
        if pd.notna(chosen["stability"])
        else ""
    )
    if rule == "fixed":
        return f"{k} segments, the number set for this project (var n_clusters)."
    if rule == "registered_model":
        return (
            f"{k} segments: this build placed customers with the registered model as it is, "
            "without refitting it."
        )
    if rule == "registered_k_if_stable":
        return (
            f"{k} segments, as many as the model in use before this refit: split into {k} "
            f"again, customers still fall into the same groups {resampled} ({stability}), so "
            "the segments carry on."
        )
    if rule == "knee_if_stable":
        return (
            f"Splits into {tried} segments were tried. Up to {k}, each extra segment makes the "
            f"groups markedly tighter; beyond {k} the gain tails off. The {k} groups also come "
            f"back largely the same {resampled} ({stability})."
        )
    if rule == "best_mean_rank_among_stable":
        stable = kmeans.loc[kmeans["stability"] >= threshold, "k"].astype(int).tolist()
        knees = kmeans.loc[kmeans["is_knee"].astype(bool), "k"].astype(int).tolist()
        knee = (
            f" The point where extra segments stop paying off, {knees[0]}, did not come back "
            "reliably, so it was not used."
            if knees
            else ""
        )
        return (
            f"Splits into {tried} segments were tried. Only the splits into "
            f"{charts.and_list([str(s) for s in stable])} come back largely the same {resampled}; "
            f"of those, {k} scores best overall on three measures of how distinct and compact "
            f"the groups are.{knee}"
        )
    if rule == "most_stable":
        return (
            f"No split into {tried} segments came back reliably {resampled}; {k} came back "
            f"most often ({stability}), so read the segments as rough groupings."
        )
    return str(chosen["selection_reason"]).split(": ", 1)[-1] + "."


# var monetary_basis in words.
BASIS_WORDS = {"net": "net of returns", "gross": "before returns (var monetary_basis gross)"}


def summary_html(data: dict[str, pd.DataFrame]) -> str:
    """The opening summary, written from the data, and a card per segment."""
    summary = data["rpt_summary"].iloc[0]
    currency = str(summary["currency"])
    snapshot = pd.Timestamp(summary["snapshot_date"])
    k = int(summary["k"])
    text = (
        f'<p class="lead">{int(summary["n_customers"]):,} customers, as of '
        f"{snapshot.day} {snapshot:%B %Y}, fall into <b>{k} segments</b>. "
        f"Why {k}: {html.escape(k_in_words(data['rpt_model_selection']))}</p>"
        f"<p>The largest segment is <b>{html.escape(summary['largest_segment_name'])}</b> "
        f"({summary['largest_share_of_customers']:.0%} of customers); the most valuable is "
        f"<b>{html.escape(summary['most_valuable_segment_name'])}</b>, with "
        f"{summary['most_valuable_share_of_revenue']:.0%} of revenue from "
        f"{summary['most_valuable_share_of_customers']:.0%} of customers.</p>"
        f"{value_summary_html(summary)}"
        f'<p class="small">From {int(summary["n_transaction_lines"]):,} transaction lines, '
        f"{int(summary['n_kept_lines']):,} kept after cleaning (section 1 counts why the "
        f"others were dropped). Amounts in {html.escape(currency)}; revenue and value "
        f"{BASIS_WORDS.get(str(summary['monetary_basis']), '')}.</p>"
    )
    cards = segment_cards_html(data["rpt_segments"], summary)
    return f'<section id="summary"><h2>Summary</h2>{text}{cards}</section>'


def _share(value: object) -> str:
    """A share as a percent, or "none" when there is none (a rule that covers nobody)."""
    return "none" if value is None or pd.isna(value) else f"{float(value):.0%}"


def churn_in_words(row: object, lapsed_after_days: str = "180") -> str:
    """A segment's churn risk in words, from an rpt_segments row.

    The purchase model (BG/NBD) only lets a customer leave after a repeat purchase, so its
    chance of having stopped is stated for repeat buyers, beside the shares of one-time buyers
    and of customers whose last order is lapsed_after_days or more old: a segment of lapsed
    one-time buyers must not read as low risk.
    """
    risk = row.mean_repeat_churn_risk
    if risk is None or pd.isna(risk):
        model = "no estimate for repeat buyers"
    else:
        chance = "under 1%" if risk < 0.005 else f"{risk:.0%}"
        model = f"repeat buyers {chance} likely to have stopped"
    return (
        f"{row.share_lapsed:.0%} have not ordered for {lapsed_after_days}+ days; {model}; "
        f"{row.share_one_purchase:.0%} have bought once (too soon to tell)"
    )


def segment_cards_html(profiles: pd.DataFrame, summary: pd.Series) -> str:
    """One card per segment: who, size, value, churn risk, stability, rule and action.

    Clicking a card highlights the segment in every chart (PAGE_SCRIPT).
    """
    currency = str(summary["currency"])
    horizon = int(summary["clv_horizon_days"])
    lapsed = f"{int(summary['lapsed_after_days']):,}"
    colors = charts.segment_colors(profiles["segment_name"].tolist()).range
    cards = []
    for row, color in zip(profiles.itertuples(), colors, strict=True):
        caveat = (
            ""
            if row.has_own_rule
            else " <i>(the closest rule: no rule of this depth picks this segment out; "
            f"{_share(row.segment_rule_precision)} of the customers it covers are in it)</i>"
        )
        stability = (
            html.escape(str(row.stability_band))
            if pd.isna(row.jaccard_stability)
            else f"{html.escape(str(row.stability_band))} (Jaccard {row.jaccard_stability:.2f})"
        )
        value = (
            "not estimated"
            if pd.isna(row.predicted_clv)
            else f"{charts.money(row.predicted_clv, currency)} "
            f"({_share(row.share_of_predicted_clv)} of all), "
            f"{charts.money(row.mean_predicted_clv, currency)} a customer"
        )
        name = html.escape(row.segment_name)
        cards.append(
            f'<div class="card" data-segment="{name}" role="button" tabindex="0" '
            f'aria-pressed="false" style="border-top-color:{color}">'
            f'<h3><span class="swatch" style="background:{color}"></span>{name}</h3>'
            f'<p class="who">{html.escape(str(row.segment_description))}</p>'
            "<dl>"
            f"<dt>Customers</dt><dd>{row.n_customers:,} ({row.share_of_customers:.0%})</dd>"
            f"<dt>Revenue</dt><dd>{row.share_of_revenue:.0%} of all</dd>"
            f"<dt>Value, next {horizon} days</dt><dd>{value}</dd>"
            f"<dt>Churn risk</dt><dd>{churn_in_words(row, lapsed)}</dd>"
            f"<dt>Stability</dt><dd>{stability}</dd>"
            "</dl>"
            f"<p><b>Rule:</b> {html.escape(str(row.segment_rule))}{caveat}</p>"
            f'<p class="small">The rule covers {row.segment_rule_recall:.0%} of the segment, '
            f"and {_share(row.segment_rule_precision)} of the customers it picks are in it; all "
            f"the segment's rules: {row.rule_fidelity:.0%} (fidelity).</p>"
            f'<p class="action"><b>Action:</b> {html.escape(str(row.recommended_action))}</p>'
            "</div>"
        )
    return f'<div class="cards">{"".join(cards)}</div>'


def value_summary_html(summary: pd.Series) -> str:
    """The summary's sentence on the value ahead, or why it is unavailable."""
    horizon = int(summary["clv_horizon_days"])
    currency = str(summary["currency"])
    if value_unavailable(summary):
        which = (
            "the purchase model"
            if purchases_unavailable(summary)
            else "the spend model (what a purchase is worth)"
        )
        return (
            f"<p>The value ahead is not available: {which} could not be fitted on this data. "
            "Section 6 says why and shows no predictions.</p>"
        )
    text = (
        f"<p>Over the next {horizon} days the lifetime-value models expect "
        f"{charts.money(summary['predicted_clv'], currency)} of net purchases; the segment "
        f"with the most predicted value is "
        f"<b>{html.escape(summary['top_value_segment_name'])}</b>, "
        f"{summary['top_value_share_of_predicted_clv']:.0%} of it from "
        f"{summary['top_value_share_of_customers']:.0%} of customers. "
    )
    if _reason(summary["most_at_risk_segment_name"]) is None:
        return text + "No value is at risk: the models see every customer as still buying.</p>"
    return text + (
        f"The most value at risk (past spend times the chance the customer has left) is in "
        f"<b>{html.escape(summary['most_at_risk_segment_name'])}</b>: "
        f"{charts.money(summary['most_at_risk_value_at_risk'], currency)}, "
        f"{summary['most_at_risk_share_of_value_at_risk']:.0%} of the "
        f"{charts.money(summary['value_at_risk'], currency)} at risk "
        f"({summary['share_of_revenue_at_risk']:.1%} of past revenue).</p>"
    )


def _cell(value: object, fmt: str) -> str:
    return "" if value is None or pd.isna(value) else format(value, fmt)


def top_customers_html(data: dict[str, pd.DataFrame]) -> str:
    """The searchable table of each segment's top customers (rpt_top_customers)."""
    customers = data["rpt_top_customers"]
    segments = data["rpt_segments"]
    summary = data["rpt_summary"].iloc[0]
    currency = html.escape(str(summary["currency"]))
    per_segment = int(customers.groupby("segment_id").size().max()) if len(customers) else 0
    options = "".join(
        f'<option value="{html.escape(name)}">{html.escape(name)}</option>'
        for name in segments["segment_name"]
    )
    rows = "".join(
        f'<tr data-segment="{html.escape(row.segment_name)}">'
        f"<td>{html.escape(row.segment_name)}</td>"
        f"<td class='num'>{row.rank_in_segment}</td>"
        f"<td>{html.escape(str(row.customer_id))}</td>"
        f"<td>{html.escape(str(row.country))}</td>"
        f"<td class='num'>{_cell(row.recency_days, ',.0f')}</td>"
        f"<td class='num'>{_cell(row.frequency, ',.0f')}</td>"
        f"<td class='num'>{_cell(row.net_monetary, ',.0f')}</td>"
        f"<td class='num'>{_cell(row.p_alive, '.0%')}</td>"
        f"<td class='num'>{_cell(row.predicted_clv, ',.0f')}</td>"
        f"<td>{html.escape((_reason(row.suppression_reason) or '').replace('_', ' '))}</td>"
        "</tr>"
        for row in customers.itertuples()
    )
    return (
        '<section id="customers"><h2>Top customers of each segment'
        '<a class="to-top" href="#top">back to top</a></h2>'
        f"<p>The {per_segment:,} customers of each segment with the most predicted value "
        "(then net spend; every customer of a smaller segment), for a first look before "
        "exporting an audience (<code>make audiences</code> writes every customer). Type to "
        "search any column; pick a segment here, or click one anywhere on the page.</p>"
        '<div class="controls"><input type="search" id="customer-search" '
        'placeholder="Search: customer id, country, ..." aria-label="Search the customers">'
        '<select id="customer-segment" aria-label="Segment"><option value="">Every segment'
        f'</option>{options}</select> <span id="customer-count"></span></div>'
        '<div class="table-wrap"><table id="customer-table"><thead><tr><th>Segment</th>'
        "<th>Rank</th><th>Customer</th><th>Country</th><th>Days since last order</th>"
        f"<th>Orders</th><th>Net spend ({currency})</th><th>Chance still buying</th>"
        f"<th>Predicted value ({currency})</th><th>Left out of audiences</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div></section>"
    )


PAGE_STYLE = """
* { box-sizing: border-box; }
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0 auto;
       max-width: 1400px; color: #222; line-height: 1.45; padding: 0 1.5rem 3rem; }
h1 { margin: 1.2rem 0 0.2rem; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.3rem;
     margin-top: 2.2rem; scroll-margin-top: 4rem; }
section { scroll-margin-top: 4rem; }
nav#toc { position: sticky; top: 0; z-index: 10; background: rgba(255, 255, 255, 0.97);
          border-bottom: 1px solid #ddd; padding: 0.5rem 0; display: flex; flex-wrap: wrap;
          gap: 0.3rem 1rem; align-items: center; font-size: 0.9rem; }
nav#toc a { color: #1f4e79; text-decoration: none; } nav#toc a:hover { text-decoration: underline; }
#highlight-bar { margin-left: auto; color: #444; }
#highlight-bar button { margin-left: 0.5rem; }
.to-top { float: right; font-size: 0.8rem; font-weight: normal; color: #1f4e79; }
.lead { font-size: 1.1rem; } .small { font-size: 0.85rem; color: #555; }
.grid { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 1.5rem 2rem; }
.chart { margin: 0; min-height: 60px; overflow-x: auto; } .chart.wide { grid-column: 1 / -1; }
@media (max-width: 1340px) { .grid { grid-template-columns: minmax(0, 1fr); } }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr));
         gap: 0.9rem; margin: 1rem 0; }
.card { border: 1px solid #ddd; border-top: 5px solid #999; border-radius: 4px;
        padding: 0.2rem 0.9rem 0.4rem; font-size: 0.9rem; cursor: pointer; background: #fff;
        transition: opacity 0.15s; }
.card:focus { outline: 2px solid #1f4e79; }
.card[aria-pressed="true"] { box-shadow: 0 0 0 2px #1f4e79; }
.card.dimmed { opacity: 0.35; }
.card h3 { margin: 0.6rem 0 0.3rem; font-size: 1.05rem; }
.card .who { color: #444; margin-top: 0; }
.card dl { display: grid; grid-template-columns: minmax(5.5rem, auto) 1fr; gap: 0.15rem 0.7rem;
           margin: 0.4rem 0; } .card dt { color: #666; } .card dd { margin: 0; }
.card .action { background: #f4f6f8; padding: 0.4rem 0.5rem; border-radius: 3px; }
.swatch { display: inline-block; width: 0.8rem; height: 0.8rem; margin-right: 0.4rem;
          border-radius: 2px; vertical-align: middle; }
.controls { display: flex; gap: 0.8rem; align-items: center; margin: 0.6rem 0; }
.controls input { width: 22rem; padding: 0.3rem; } .controls select { padding: 0.3rem; }
.table-wrap { max-height: 32rem; overflow: auto; border: 1px solid #eee; }
table { border-collapse: collapse; width: 100%; font-size: 0.85rem; }
th, td { border-bottom: 1px solid #eee; padding: 0.3rem 0.5rem; text-align: left;
         vertical-align: top; }
thead th { position: sticky; top: 0; background: #f4f6f8; }
td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
@media print {
  nav#toc, .controls, .to-top { display: none !important; }
  body { max-width: none; padding: 0; }
  .grid { display: block; } .chart { overflow: visible; margin-bottom: 1rem; }
  .chart canvas, .chart svg { max-width: 100% !important; height: auto !important; }
  .chart, .card, tr { break-inside: avoid; } h2 { break-after: avoid; }
  .card { cursor: auto; } .card.dimmed { opacity: 1; }
  .table-wrap { max-height: none; overflow: visible; border: none; }
  tr[hidden] { display: table-row !important; }
}
"""

# Embeds the charts, then wires the highlight: a click on a segment's card, legend entry or mark
# sets the param HIGHLIGHT (charts.HIGHLIGHT) in every chart that has it (the segment's name, or
# null), dims the other cards and filters the customers' table. Escape or a second click shows
# every segment. SPECS, SEGMENTS, HIGHLIGHT and SEGMENT_PICK are defined before it (page_html).
PAGE_SCRIPT = """
const views = {};
let highlighted = null;
function hasSignal(view, name) {
  try { view.signal(name); return true; } catch (error) { return false; }
}
function applyHighlight() {
  for (const view of Object.values(views)) {
    if (hasSignal(view, HIGHLIGHT)) view.signal(HIGHLIGHT, highlighted).runAsync();
  }
  document.querySelectorAll('.card[data-segment]').forEach((card) => {
    card.classList.toggle('dimmed', highlighted !== null && card.dataset.segment !== highlighted);
    card.setAttribute('aria-pressed', String(card.dataset.segment === highlighted));
  });
  document.getElementById('highlight-status').textContent = highlighted === null
    ? 'Click a segment (card, legend entry or mark) to highlight it in every chart.'
    : 'Highlighted: ' + highlighted + '.';
  document.getElementById('highlight-clear').hidden = highlighted === null;
  const select = document.getElementById('customer-segment');
  if (select) { select.value = highlighted === null ? '' : highlighted; filterCustomers(); }
}
function toggleHighlight(name) {
  highlighted = (name === highlighted || !SEGMENTS.includes(name)) ? null : name;
  applyHighlight();
}
function filterCustomers() {
  if (!document.getElementById('customer-table')) return;
  const query = document.getElementById('customer-search').value.trim().toLowerCase();
  const segment = document.getElementById('customer-segment').value;
  const rows = document.querySelectorAll('#customer-table tbody tr');
  let shown = 0;
  rows.forEach((row) => {
    // Cell by cell: "12415" must not match rank 124 followed by customer 15763.
    const match = (!segment || row.dataset.segment === segment)
      && (!query || [...row.cells].some((cell) => cell.textContent.toLowerCase().includes(query)));
    row.hidden = !match;
    if (match) shown += 1;
  });
  document.getElementById('customer-count').textContent =
    shown.toLocaleString('en') + ' of ' + rows.length.toLocaleString('en') + ' rows shown';
}
document.querySelectorAll('.card[data-segment]').forEach((card) => {
  card.addEventListener('click', () => toggleHighlight(card.dataset.segment));
  card.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' || event.key === ' ') {
      event.preventDefault();
      toggleHighlight(card.dataset.segment);
    }
  });
});
document.addEventListener('keydown', (event) => {
  if (event.key === 'Escape' && highlighted !== null) { highlighted = null; applyHighlight(); }
});
document.getElementById('highlight-clear').addEventListener('click', () => {
  highlighted = null; applyHighlight();
});
if (document.getElementById('customer-table')) {
  document.getElementById('customer-search').addEventListener('input', filterCustomers);
  document.getElementById('customer-segment').addEventListener('change', (event) => {
    const value = event.target.value;
    if (value !== (highlighted || '')) toggleHighlight(value || highlighted);
    else filterCustomers();
  });
}
function wire(name, view) {
  views[name] = view;
  view.addEventListener('click', (event, item) => {
    const datum = item && item.datum;
    if (datum && typeof datum.segment_name === 'string') toggleHighlight(datum.segment_name);
  });
  if (hasSignal(view, SEGMENT_PICK)) {
    view.addSignalListener(SEGMENT_PICK, (signal, value) => {
      if (value && value.segment_name) toggleHighlight(value.segment_name[0]);
    });
  }
}
Promise.allSettled(Object.entries(SPECS).map(([name, spec]) =>
  vegaEmbed('#chart-' + name, spec, {actions: false, renderer: 'canvas'})
    .then((result) => wire(name, result.view))
)).then((results) => {
  const failed = results.filter((result) => result.status === 'rejected');
  failed.forEach((result) => console.error('chart failed to render:', result.reason));
  document.body.dataset.rendered = failed.length ? 'failed' : 'true';
});
applyHighlight();
"""


def chart_spec(chart: alt.TopLevelMixin) -> dict:
    """The chart's Vega-Lite spec, data inline.

    Altair refuses more than 5,000 rows per dataset by default; the report models bound every
    chart's rows in SQL (samples and aggregates: 10,000 silhouettes at most), so that guard is
    off here, for this conversion only.
    """
    with alt.data_transformers.enable("default", max_rows=None):
        return chart.to_dict()


def save_png(chart: alt.TopLevelMixin, path: Path) -> None:
    """The chart as a PNG at twice the size (vl-convert), without Altair's row guard."""
    with alt.data_transformers.enable("default", max_rows=None):
        chart.save(str(path), scale_factor=2)


def page_html(
    sections: list[Section], summary: str, customers: str, title: str, segment_names: list[str]
) -> str:
    """The whole page, which opens offline: Vega's scripts inline, the summary, every chart.

    Then the customers' table and the script that embeds and links the charts.
    """
    import vl_convert
    from altair.utils._importers import vl_version_for_vl_convert

    bundle = vl_convert.javascript_bundle(vl_version=vl_version_for_vl_convert())
    links = [("summary", "Summary")] + [(s.key, s.title) for s in sections]
    links.append(("customers", "Top customers"))
    nav = "".join(f'<a href="#{key}">{html.escape(text)}</a>' for key, text in links)
    status = (
        '<span id="highlight-bar"><span id="highlight-status"></span>'
        '<button id="highlight-clear" type="button" hidden>Show every segment</button></span>'
    )
    body = []
    specs = {}
    for section in sections:
        body.append(
            f'<section id="{section.key}"><h2>{html.escape(section.title)}'
            '<a class="to-top" href="#top">back to top</a></h2>'
            f'<p>{html.escape(section.intro)}</p><div class="grid">'
        )
        for name, chart in section.charts.items():
            wide = " wide" if name in section.wide else ""
            body.append(f'<div class="chart{wide}" id="chart-{name}"></div>')
            specs[name] = chart_spec(chart)
        body.append("</div></section>")
    # "</" inside a spec (a label) would end the script early.
    data = (
        f"const SPECS = {json.dumps(specs)};\nconst SEGMENTS = {json.dumps(segment_names)};\n"
        f"const HIGHLIGHT = {json.dumps(charts.HIGHLIGHT)};\n"
        f"const SEGMENT_PICK = {json.dumps(charts.SEGMENT_PICK)};"
    ).replace("</", "<\\/")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{PAGE_STYLE}</style>"
        f"<script>{bundle}</script></head><body id='top'>"
        f"<h1>{html.escape(title)}</h1><nav id='toc'>{nav}{status}</nav>"
        f"{summary}{''.join(body)}{customers}"
        f"<script>{data}\n{PAGE_SCRIPT}</script></body></html>"
    )


def write_report(database: Path, out_dir: Path, png: bool = True) -> list[Path]:
    """Write ``index.html`` and ``figures/<chart>.png`` under out_dir; return the files."""
    data = load_marts(database)
    sections = build_sections(data)
    out_dir.mkdir(parents=True, exist_ok=True)
    page = out_dir / "index.html"
    page.write_text(
        page_html(
            sections,
            summary_html(data),
            top_customers_html(data),
            "Customer segmentation report",
            data["rpt_segments"]["segment_name"].tolist(),
        ),
        encoding="utf-8",
    )
    written = [page]
    if png:
        figures = out_dir / "figures"
        figures.mkdir(exist_ok=True)
        for section in sections:
            for name, chart in section.charts.items():
                path = figures / f"{name}.png"
                save_png(chart, path)
                written.append(path)
    return written


def add_database_argument(parser: argparse.ArgumentParser) -> None:
    """``--database``: the file dbt built (the report and the audience files read it)."""
    parser.add_argument(
        "--database",
        type=Path,
        default=Path(os.environ.get("DBT_DUCKDB_PATH", "customer_segmentation.duckdb")),
        help="DuckDB file written by dbt build (default: $DBT_DUCKDB_PATH or "
        "customer_segmentation.duckdb)",
    )


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_database_argument(parser)
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
