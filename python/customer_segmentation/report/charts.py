"""One function per report chart: each takes report model rows and returns an Altair chart.

The rows are a report model's (models/reports, as pandas). What to show (which rows, features,
sample) is decided in the models' SQL; these functions only lay the data out and draw it.

Segments always appear by name, in cluster order, with one colour each from a colour-blind-safe
palette (Paul Tol's "muted"), the same in every chart: build the scale once with
``segment_colors`` and pass it in. Charts that are not about segments use neutral greys, so no
colour means a segment by accident.

Every chart that shows segments can highlight one: ``highlightable`` adds the variable param
``highlight`` (a segment name, or null for none) that dims every other segment's marks, and a
selection bound to the segment legend; the page sets ``highlight`` in every chart at once when
a legend entry, a mark or a card is clicked.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

# Paul Tol's "muted" qualitative palette (colour-blind safe), then grey for an 11th+ segment.
SEGMENT_PALETTE = [
    "#332288",
    "#88CCEE",
    "#44AA99",
    "#117733",
    "#999933",
    "#DDCC77",
    "#CC6677",
    "#882255",
    "#AA4499",
    "#DDDDDD",
]
ALGORITHM_COLORS = alt.Scale(domain=["kmeans", "hierarchical"], range=["#222222", "#E69F00"])
NEUTRAL = "#5B6770"  # single-series charts: a slate grey that is no segment's colour
NEUTRAL_LIGHT = "#C4CBD1"
# Plot widths (axes, labels and legends come on top): a chart alone on its row, and one of two.
FULL = 1150
HALF = 430
# The page sets this param in every chart (see the module docstring).
HIGHLIGHT = "highlight"
IS_HIGHLIGHTED = "highlight == null || datum.segment_name == highlight"
SEGMENT_PICK = "segment_pick"
CURRENCY_SYMBOLS = {"GBP": "£", "EUR": "€", "USD": "$", "JPY": "¥", "INR": "₹"}


def segment_colors(segment_names: list[str]) -> alt.Scale:
    """The colour scale for segments, in cluster order (cluster 1 first)."""
    colors = [SEGMENT_PALETTE[min(i, len(SEGMENT_PALETTE) - 1)] for i in range(len(segment_names))]
    return alt.Scale(domain=segment_names, range=colors)


def _segment_color(scale: alt.Scale, title: str = "Segment") -> alt.Color:
    return alt.Color("segment_name:N", scale=scale, sort=scale.domain, title=title)


def highlight_opacity(
    on: float = 1.0, off: float = 0.15, test: str = IS_HIGHLIGHTED
) -> alt.OpacityValue:
    """Opacity ``on`` for the highlighted segment (or every segment when none is), else ``off``."""
    return alt.condition(test, alt.value(on), alt.value(off))


def legend_pick() -> alt.Parameter:
    """A selection bound to the segment legend: clicking an entry highlights that segment."""
    return alt.selection_point(name=SEGMENT_PICK, fields=["segment_name"], bind="legend")


def highlightable(chart: alt.TopLevelMixin) -> alt.TopLevelMixin:
    """``chart`` with the ``highlight`` param its marks' opacity tests (null: none)."""
    return chart.add_params(alt.param(name=HIGHLIGHT, value=None))


def money(amount: float, currency: str) -> str:
    """An amount with thousands separators and its currency: "£8,216,028", "1,234 CHF"."""
    sign = "-" if amount < 0 else ""
    symbol = CURRENCY_SYMBOLS.get(currency)
    if symbol:
        return f"{sign}{symbol}{abs(amount):,.0f}"
    return f"{sign}{abs(amount):,.0f} {currency}"


# 1. Data ---------------------------------------------------------------------------------


def cleaning_audit(audit: pd.DataFrame, currency: str = "GBP") -> alt.LayerChart:
    """Raw lines per cleaning class, in rule order, labelled with count and share."""
    order = audit.sort_values("rule_order")["row_class"].tolist()
    base = alt.Chart(audit).encode(
        y=alt.Y("row_class:N", sort=order, title="Class (rules applied top to bottom)"),
        x=alt.X(
            "n_rows:Q",
            title="Transaction lines",
            axis=alt.Axis(format="~s", tickCount=5),
            scale=alt.Scale(domain=[0, float(audit["n_rows"].max()) * 1.3]),
        ),
        tooltip=[
            alt.Tooltip("row_class:N", title="Class"),
            alt.Tooltip("n_rows:Q", title="Lines", format=","),
            alt.Tooltip("share_of_rows:Q", title="Share", format=".1%"),
            alt.Tooltip("n_customers:Q", title="Customers", format=","),
            alt.Tooltip("amount:Q", title=f"Amount ({currency})", format=",.0f"),
            alt.Tooltip("rule_description:N", title="Rule"),
        ],
    )
    bars = base.mark_bar().encode(
        color=alt.condition(
            alt.datum.row_class == "kept", alt.value(NEUTRAL), alt.value(NEUTRAL_LIGHT)
        )
    )
    labels = (
        base.transform_calculate(
            label=alt.expr.format(alt.datum.n_rows, ",")
            + " ("
            + alt.expr.format(alt.datum.share_of_rows, ".1%")
            + ")"
        )
        .mark_text(align="left", dx=4, fontSize=11)
        .encode(text="label:N")
    )
    return (bars + labels).properties(
        width=HALF,
        height=alt.Step(22),
        title=alt.Title(
            "Every raw line is kept or dropped for a named reason",
            subtitle="Dark: kept; light: dropped. Labels: lines and share of all lines.",
        ),
    )


def partial_months(monthly: pd.DataFrame) -> list[str]:
    """Months the data covers only in part, e.g. ['December 2011']."""
    partial = monthly.loc[~monthly["is_complete_month"].astype(bool), "activity_month"]
    return [pd.Timestamp(m).strftime("%B %Y") for m in partial]


def monthly_activity(monthly: pd.DataFrame, currency: str = "GBP") -> alt.HConcatChart:
    """Revenue, orders and active customers per month side by side; partial months hollow."""
    partial = partial_months(monthly)
    note = (
        f"Hollow points: {', '.join(partial)} only partly covered by the data."
        if partial
        else "Every month is fully covered by the data."
    )
    base = alt.Chart(monthly).encode(
        x=alt.X("yearmonth(activity_month):T", title="Month", axis=alt.Axis(format="%b %y")),
        tooltip=[
            alt.Tooltip("yearmonth(activity_month):T", title="Month"),
            alt.Tooltip("revenue:Q", title=f"Revenue ({currency})", format=",.0f"),
            alt.Tooltip("n_orders:Q", title="Orders", format=","),
            alt.Tooltip("n_active_customers:Q", title="Active customers", format=","),
            alt.Tooltip("n_new_customers:Q", title="New customers", format=","),
        ],
    )
    panels = [
        ("revenue", f"Revenue ({currency})"),
        ("n_orders", "Orders"),
        ("n_active_customers", "Active customers"),
    ]
    charts = [
        (
            base.mark_line(color=NEUTRAL)
            + base.mark_point(size=50, color=NEUTRAL, opacity=1).encode(
                fill=alt.condition(
                    "datum.is_complete_month", alt.value(NEUTRAL), alt.value("white")
                )
            )
        )
        .encode(
            y=alt.Y(
                f"{field}:Q",
                title=title,
                scale=alt.Scale(zero=True),
                axis=alt.Axis(format="~s"),
            )
        )
        .properties(width=FULL // 3 - 40, height=170, title=title)
        for field, title in panels
    ]
    return alt.hconcat(
        *charts,
        title=alt.Title("Monthly revenue, orders and active customers", subtitle=note),
    )


FEW_CUSTOMERS = 10  # a country with fewer customers than this is a handful of buyers


def revenue_by_country(countries: pd.DataFrame, currency: str = "GBP") -> alt.HConcatChart:
    """Revenue and customers of the top countries, largest revenue first.

    When the first country's revenue dwarfs the rest (over 2.5 times the second), the revenue
    axis stops just past the second and the first bar is cut, its value written on it, so the
    other countries can be read. Countries with fewer than FEW_CUSTOMERS customers are light.
    """
    data = countries.assign(
        revenue=countries["revenue"].astype(float),
        is_few=countries["n_customers"] < FEW_CUSTOMERS,
    )
    ordered = data.sort_values("revenue", ascending=False)
    revenues = ordered["revenue"].tolist()
    cap = revenues[1] * 1.35 if len(revenues) > 1 and revenues[0] > 2.5 * revenues[1] else None
    limit = cap or (revenues[0] * 1.25 if revenues else 1.0)
    data = data.assign(
        label_x=data["revenue"].clip(upper=limit),
        is_cut=data["revenue"] > limit,
    )
    order = ordered["country"].tolist()
    y = alt.Y("country:N", sort=order, title=None)
    tooltip = [
        alt.Tooltip("country:N", title="Country"),
        alt.Tooltip("revenue:Q", title=f"Revenue ({currency})", format=",.0f"),
        alt.Tooltip("share_of_revenue:Q", title="Share of revenue", format=".1%"),
        alt.Tooltip("n_customers:Q", title="Customers", format=","),
    ]
    fill = alt.condition("datum.is_few", alt.value(NEUTRAL_LIGHT), alt.value(NEUTRAL))
    base = alt.Chart(data).encode(y=y, tooltip=tooltip)
    revenue = alt.layer(
        base.mark_bar(clip=True).encode(
            x=alt.X(
                "revenue:Q",
                title=f"Revenue ({currency})" + ("; the first bar is cut" if cap else ""),
                scale=alt.Scale(domain=[0, limit]),
                axis=alt.Axis(format="~s", tickCount=6),
            ),
            color=fill,
        ),
        base.transform_filter("!datum.is_cut")
        .transform_calculate(label=alt.expr.format(alt.datum.revenue, ",.0f"))
        .mark_text(align="left", dx=3, fontSize=10)
        .encode(x="label_x:Q", text="label:N"),
        base.transform_filter("datum.is_cut")
        .transform_calculate(
            label="'cut: ' + format(datum.revenue, ',.0f') + ' (' + "
            "format(datum.share_of_revenue, '.0%') + ')'"
        )
        .mark_text(align="right", dx=-4, fontSize=10, color="white", fontWeight="bold")
        .encode(x="label_x:Q", text="label:N"),
    ).properties(width=FULL // 2 - 60, height=alt.Step(20), title="Revenue")
    customers = alt.layer(
        base.mark_bar().encode(
            x=alt.X("n_customers:Q", title="Customers", axis=alt.Axis(format="~s")),
            color=fill,
        ),
        base.mark_text(align="left", dx=3, fontSize=10).encode(
            x="n_customers:Q", text=alt.Text("n_customers:Q", format=",")
        ),
    ).properties(width=FULL // 2 - 160, height=alt.Step(20), title="Customers")
    subtitle = [
        f"Light bars: fewer than {FEW_CUSTOMERS} customers, a handful of buyers rather than "
        "a market."
    ]
    if cap:
        subtitle.insert(
            0,
            f"{order[0]} is cut at the axis end: {revenues[0]:,.0f} {currency}, "
            f"{float(ordered['share_of_revenue'].iloc[0]):.0%} of revenue.",
        )
    return alt.hconcat(
        revenue,
        customers,
        title=alt.Title(
            f"Revenue and customers by country (top {len(countries)})", subtitle=subtitle
        ),
    ).resolve_scale(y="shared")


def cohort_retention(cohorts: pd.DataFrame, partial_months: list[str]) -> alt.Chart:
    """Share of each monthly cohort active N months later (rpt_cohort_retention, month 0 out)."""
    subtitle = (
        f"The last cell of each row is {partial_months[-1]}, a partial month: read it as a "
        "lower bound."
        if partial_months
        else "Month 0 (100% by definition) is left out."
    )
    return (
        alt.Chart(
            cohorts,
            title=alt.Title(
                "Cohort retention: share of each month's new customers ordering again",
                subtitle=subtitle,
            ),
        )
        .mark_rect()
        .encode(
            x=alt.X(
                "months_since_first_purchase:O",
                title="Months since first purchase",
                axis=alt.Axis(labelAngle=0),
            ),
            y=alt.Y("yearmonth(cohort_month):O", title="Cohort (month of first purchase)"),
            color=alt.Color(
                "retention_rate:Q",
                title="Retention",
                scale=alt.Scale(scheme="blues"),
                legend=alt.Legend(format=".0%"),
            ),
            tooltip=[
                alt.Tooltip("yearmonth(cohort_month):T", title="Cohort"),
                alt.Tooltip("months_since_first_purchase:Q", title="Months since"),
                alt.Tooltip("cohort_customers:Q", title="Cohort size", format=","),
                alt.Tooltip("n_active_customers:Q", title="Active", format=","),
                alt.Tooltip("retention_rate:Q", title="Retention", format=".1%"),
            ],
        )
        .properties(width=HALF, height=alt.Step(16))
    )


def order_value_distribution(distribution: pd.DataFrame, currency: str = "GBP") -> alt.Chart:
    """Orders per order-value bucket, buckets in order (rpt_order_value_distribution)."""
    order = distribution.sort_values("bucket_order")["bucket_label"].tolist()
    return (
        alt.Chart(distribution, title="Order value distribution")
        .mark_bar(color=NEUTRAL)
        .encode(
            x=alt.X(
                "bucket_label:N",
                sort=order,
                title=f"Order value ({currency})",
                axis=alt.Axis(labelAngle=-30),
            ),
            y=alt.Y("n_orders:Q", title="Orders", axis=alt.Axis(format="~s")),
            tooltip=[
                alt.Tooltip("bucket_label:N", title=f"Order value ({currency})"),
                alt.Tooltip("n_orders:Q", title="Orders", format=","),
                alt.Tooltip("share_of_orders:Q", title="Share", format=".1%"),
            ],
        )
        .properties(width=HALF, height=220)
    )


WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def purchase_timing(timing: pd.DataFrame) -> alt.Chart:
    """Orders by weekday and hour (rpt_purchase_timing).

    Every weekday, and every hour between the first and the last, has its place; the subtitle
    names the days without an order.
    """
    empty_days = [d for d in WEEKDAYS if d not in set(timing["weekday_name"])]
    hours = (
        list(range(int(timing["hour_of_day"].min()), int(timing["hour_of_day"].max()) + 1))
        if not timing.empty
        else []
    )
    subtitle = (
        f"No orders on {', '.join(empty_days)} in this data: the empty row"
        + ("s." if len(empty_days) > 1 else ".")
        if empty_days
        else "Darker: more orders."
    )
    return (
        alt.Chart(
            timing, title=alt.Title("When customers order: weekday x hour", subtitle=subtitle)
        )
        .mark_rect()
        .encode(
            x=alt.X(
                "hour_of_day:O",
                title="Hour of day",
                scale=alt.Scale(domain=hours),
                axis=alt.Axis(labelAngle=0),
            ),
            y=alt.Y("weekday_name:N", title=None, scale=alt.Scale(domain=WEEKDAYS)),
            color=alt.Color("n_orders:Q", title="Orders", scale=alt.Scale(scheme="greys")),
            tooltip=[
                alt.Tooltip("weekday_name:N", title="Weekday"),
                alt.Tooltip("hour_of_day:Q", title="Hour"),
                alt.Tooltip("n_orders:Q", title="Orders", format=","),
                alt.Tooltip("revenue:Q", title="Revenue", format=",.0f"),
            ],
        )
        .properties(width=HALF, height=alt.Step(22))
    )


# 2. Features -----------------------------------------------------------------------------


def feature_distributions(features: pd.DataFrame, currency: str = "GBP") -> alt.HConcatChart:
    """Histograms of recency (linear) and frequency and monetary (log axes)."""
    panels = []
    for field, title, log in [
        ("recency_days", "Days since the last order", False),
        ("frequency", "Orders (log scale)", True),
        (
            "monetary",
            f"Net spend ({currency}, log scale; below 1 in the first bar)",
            True,
        ),
    ]:
        values = features[field].astype(float)
        if log:
            # Values below 1 (a customer who returned everything is worth 0) go in the first
            # bar rather than off the axis.
            values = values.clip(lower=1)
            edges = np.logspace(0, np.log10(values.max() + 1), 25)
            if field == "frequency":  # whole numbers: integer edges, no empty bins between them
                edges = np.unique(np.round(edges))
        else:
            edges = np.linspace(values.min(), values.max() + 1e-9, 25)
        counts, _ = np.histogram(values, bins=edges)
        bins = pd.DataFrame({"lower": edges[:-1], "upper": edges[1:], "customers": counts})
        scale = alt.Scale(type="log") if log else alt.Scale()
        panels.append(
            alt.Chart(bins)
            .mark_rect(color=NEUTRAL, stroke="white", strokeWidth=0.5)
            .encode(
                x=alt.X("lower:Q", title=title, scale=scale, axis=alt.Axis(format="~s")),
                x2="upper:Q",
                y=alt.Y("customers:Q", title="Customers"),
                y2=alt.Y2(datum=0),
                tooltip=[
                    alt.Tooltip("lower:Q", title="From", format=",.0f"),
                    alt.Tooltip("upper:Q", title="To", format=",.0f"),
                    alt.Tooltip("customers:Q", title="Customers", format=","),
                ],
            )
            .properties(width=FULL // 3 - 50, height=180)
        )
    return alt.hconcat(*panels, title="How recently, how often and how much customers bought")


# One diverging scale for the two heatmaps: blue for positive (above average), red for negative.


DIVERGING = "redblue"


def feature_correlations(features: pd.DataFrame, columns: list[str]) -> alt.LayerChart:
    """Spearman correlation between the columns (rank-based: robust to skew), in that order."""
    matrix = features[columns].astype(float).corr(method="spearman")
    data = matrix.reset_index(names="feature_a").melt(
        id_vars="feature_a", var_name="feature_b", value_name="correlation"
    )
    base = alt.Chart(data).encode(
        x=alt.X("feature_a:N", sort=columns, title=None, axis=alt.Axis(labelAngle=-40)),
        y=alt.Y("feature_b:N", sort=columns, title=None),
        tooltip=[
            alt.Tooltip("feature_a:N", title="Feature"),
            alt.Tooltip("feature_b:N", title="Feature"),
            alt.Tooltip("correlation:Q", title="Spearman rho", format=".2f"),
        ],
    )
    cells = base.mark_rect().encode(
        color=alt.Color(
            "correlation:Q",
            scale=alt.Scale(scheme=DIVERGING, domain=[-1, 1]),
            title="Correlation",
            legend=alt.Legend(orient="top", direction="horizontal", gradientLength=200),
        ),
    )
    labels = base.mark_text(fontSize=10).encode(
        text=alt.Text("correlation:Q", format=".1f"),
        color=alt.condition("abs(datum.correlation) > 0.6", alt.value("white"), alt.value("black")),
    )
    return (cells + labels).properties(
        width=HALF - 80,
        height=HALF - 80,
        title=alt.Title(
            "How customer features move together",
            subtitle="Spearman correlation: blue, rising together; red, one up as the other goes "
            "down.",
        ),
    )


def rfm_grid(cells: pd.DataFrame, currency: str = "GBP") -> alt.HConcatChart:
    """Customers and revenue per R x F cell (rpt_rfm_cells)."""
    panels = []
    for field, title, fmt in [
        ("customers", "Customers", ",.0f"),
        ("revenue", f"Revenue ({currency})", ".2~s"),
    ]:
        base = alt.Chart(cells).encode(
            x=alt.X("f_score:O", title="F score (5 = most orders)", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("r_score:O", sort="descending", title="R score (5 = most recent)"),
            tooltip=[
                alt.Tooltip("r_score:O", title="R"),
                alt.Tooltip("f_score:O", title="F"),
                alt.Tooltip("rfm_segment_label:N", title="RFM segment"),
                alt.Tooltip("customers:Q", title="Customers", format=","),
                alt.Tooltip("revenue:Q", title=f"Revenue ({currency})", format=",.0f"),
            ],
        )
        panels.append(
            (
                base.mark_rect().encode(
                    color=alt.Color(
                        f"{field}:Q",
                        title=title,
                        scale=alt.Scale(scheme="greys"),
                        legend=alt.Legend(orient="bottom", format="~s", gradientLength=150),
                    ),
                )
                + base.mark_text(fontSize=9).encode(
                    text=alt.Text(f"{field}:Q", format=fmt),
                    color=alt.condition(
                        f"datum.{field} > {0.6 * cells[field].max()}",
                        alt.value("white"),
                        alt.value("black"),
                    ),
                )
            ).properties(width=190, height=190, title=title)
        )
    return alt.hconcat(
        *panels, title="RFM grid: customers and revenue per R x F cell"
    ).resolve_scale(color="independent")


# 3. Choosing k ---------------------------------------------------------------------------


def elbow(selection: pd.DataFrame) -> alt.LayerChart:
    """Inertia against k for both algorithms: the chosen k under, the knee markers on top."""
    base = alt.Chart(selection).encode(
        x=alt.X("k:O", title="Number of segments k", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("inertia:Q", title="Spread within segments (inertia)", axis=alt.Axis(format="~s")),
        color=alt.Color("algorithm:N", scale=ALGORITHM_COLORS, title="Algorithm"),
    )
    lines = base.mark_line(point=True).encode(
        tooltip=[
            alt.Tooltip("algorithm:N", title="Algorithm"),
            alt.Tooltip("k:O"),
            alt.Tooltip("inertia:Q", title="Inertia", format=",.0f"),
            alt.Tooltip("is_knee:N", title="Knee"),
        ]
    )
    knees = (
        base.transform_filter(alt.datum.is_knee)
        .mark_point(
            shape="diamond", size=220, filled=True, stroke="white", strokeWidth=1.5, opacity=1
        )
        .encode(
            tooltip=[
                alt.Tooltip("algorithm:N", title="Knee of"),
                alt.Tooltip("k:O"),
                alt.Tooltip("inertia:Q", title="Inertia", format=",.0f"),
            ]
        )
    )
    chosen = (
        alt.Chart(selection[selection["is_selected"]].drop_duplicates("k"))
        .mark_rule(strokeDash=[4, 4], color="#888888", strokeWidth=1.5)
        .encode(x="k:O", tooltip=[alt.Tooltip("k:O", title="Chosen k (the summary says why)")])
    )
    chosen_k = int(selection.loc[selection["is_selected"], "k"].iloc[0])
    # The rule first, so the diamonds are drawn over it.
    return (chosen + lines + knees).properties(
        width=HALF,
        height=260,
        title=alt.Title(
            "Elbow: how much tighter segments get with each extra segment",
            subtitle=f"Diamonds: where each curve bends (the knee). Dashed: the chosen k = "
            f"{chosen_k}.",
        ),
    )


def selection_metrics(selection: pd.DataFrame) -> alt.FacetChart:
    """Silhouette, Calinski-Harabasz, Davies-Bouldin and stability against k."""
    metrics = {
        "silhouette": "Silhouette (higher is better)",
        "calinski_harabasz": "Calinski-Harabasz (higher is better)",
        "davies_bouldin": "Davies-Bouldin (lower is better)",
        "stability": "Stability, mean ARI (higher is better)",
    }
    data = selection.melt(
        id_vars=["algorithm", "k", "is_selected"],
        value_vars=list(metrics),
        var_name="metric",
        value_name="value",
    )
    data["metric"] = data["metric"].map(metrics)
    base = alt.Chart(data)
    lines = base.mark_line(point=True).encode(
        x=alt.X("k:O", title="k", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)),
        color=alt.Color("algorithm:N", scale=ALGORITHM_COLORS, title="Algorithm"),
        tooltip=[
            alt.Tooltip("algorithm:N", title="Algorithm"),
            alt.Tooltip("k:O"),
            alt.Tooltip("metric:N", title="Index"),
            alt.Tooltip("value:Q", title="Value", format=".3f"),
        ],
    )
    chosen = (
        base.transform_filter(alt.datum.is_selected)
        .mark_rule(color="#888888", strokeDash=[4, 4])
        .encode(x="k:O", tooltip=[alt.Tooltip("k:O", title="Chosen k")])
    )
    return (
        alt.layer(chosen, lines)
        .properties(width=HALF // 2 - 30, height=130)
        .facet(facet=alt.Facet("metric:N", title=None, sort=list(metrics.values())), columns=2)
        .resolve_scale(y="independent")
        .properties(
            title=alt.Title(
                "Quality indices for every k, k-means and Ward",
                subtitle="Dashed: the chosen k.",
            )
        )
    )


# 4. Quality ------------------------------------------------------------------------------


def silhouette_plot(
    silhouettes: pd.DataFrame, scale: alt.Scale, n_customers: int
) -> alt.LayerChart:
    """The knife plot: per-customer silhouettes sorted within each segment.

    ``n_customers``: all clustered customers, so the title says whether these are all of them
    or a sample.
    """
    data = silhouettes.sort_values(["cluster_id", "silhouette"], ascending=[True, False])
    # A gap of 2% of the rows between segments, as in the classic plot.
    gap = max(1, len(data) // 50)
    data = data.assign(position=np.arange(len(data)) + gap * (data["cluster_id"].to_numpy() - 1))
    # Only what is drawn, rounded: this chart has a row per customer shown (page size).
    data = data[["customer_id", "segment_name", "silhouette", "position"]].round({"silhouette": 3})
    mean = float(silhouettes["silhouette"].mean())
    low = min(-0.2, float(np.floor(silhouettes["silhouette"].min() * 10) / 10))
    high = min(1.0, float(np.ceil(silhouettes["silhouette"].max() * 10) / 10) + 0.1)
    bars = (
        alt.Chart(data)
        .transform_calculate(position_end="datum.position + 1")
        .mark_rect()
        .encode(
            x=alt.X("silhouette:Q", title="Silhouette value", scale=alt.Scale(domain=[low, high])),
            x2=alt.X2(datum=0),
            y=alt.Y(
                "position:Q",
                title="Customers, sorted within segment",
                axis=None,
                scale=alt.Scale(reverse=True),
            ),
            y2="position_end:Q",
            color=_segment_color(scale),
            opacity=highlight_opacity(),
            tooltip=[
                alt.Tooltip("segment_name:N", title="Segment"),
                alt.Tooltip("customer_id:N", title="Customer"),
                alt.Tooltip("silhouette:Q", title="Silhouette", format=".2f"),
            ],
        )
        .add_params(legend_pick())
    )
    rule = (
        alt.Chart(pd.DataFrame({"mean": [mean]}))
        .mark_rule(color="#d62728", strokeDash=[4, 4])
        .encode(x="mean:Q", tooltip=[alt.Tooltip("mean:Q", title="Mean silhouette", format=".3f")])
    )
    shown = (
        f"every customer ({len(data):,})"
        if len(data) >= n_customers
        else f"a sample of {len(data):,} of {n_customers:,} customers"
    )
    return highlightable(
        (bars + rule).properties(
            width=HALF,
            height=340,
            title=alt.Title(
                "Silhouette plot: how well each customer fits their segment",
                subtitle=[
                    f"One bar per customer, {shown}. Red dashed line: the mean, {mean:.2f}.",
                    "Below 0: the customer sits closer to another segment.",
                ],
            ),
        )
    )


def dendrogram(
    linkage: pd.DataFrame,
    leaves: pd.DataFrame,
    k: int,
    scale: alt.Scale,
    last_merges: int = 30,
) -> alt.VConcatChart | alt.Chart:
    """Top of the Ward hierarchy (the last merges) and the cut at k.

    Under each branch, a bar of the segments its customers are in (``leaves``:
    rpt_ward_leaves), so branches can be mapped to segments.
    """
    from scipy.cluster.hierarchy import dendrogram as scipy_dendrogram

    if linkage.empty:
        return empty_state(
            "Ward hierarchy",
            "This build scored customers with the registered model (var refit false):\n"
            "no Ward tree was fitted.",
        )
    z = linkage.sort_values("merge_order")[
        ["left_child", "right_child", "distance", "n_customers"]
    ].to_numpy(dtype=float)
    n_leaves = int(linkage["n_leaves"].iloc[0])
    z[:, 3] = _leaf_counts(z, n_leaves)
    tree = scipy_dendrogram(z, truncate_mode="lastp", p=last_merges, no_plot=True)
    segments = []
    for xs, ys in zip(tree["icoord"], tree["dcoord"], strict=True):
        for i in range(3):
            segments.append({"x": xs[i], "y": ys[i], "x2": xs[i + 1], "y2": ys[i + 1]})
    width = 10.0 * len(tree["leaves"])
    x_scale = alt.Scale(domain=[0, width], nice=False, zero=False)
    lines = (
        alt.Chart(pd.DataFrame(segments))
        .mark_rule(color=NEUTRAL)
        .encode(
            x=alt.X("x:Q", axis=None, title=None, scale=x_scale),
            y=alt.Y("y:Q", title="Ward merge height"),
            x2="x2:Q",
            y2="y2:Q",
            tooltip=[alt.Tooltip("y:Q", title="Merge height", format=".2f")],
        )
    )
    heights = np.sort(z[:, 2])
    cut = (heights[-k] + heights[-k + 1]) / 2 if k > 1 else heights[-1]
    cut_rule = (
        alt.Chart(pd.DataFrame({"cut": [cut]}))
        .mark_rule(color="#d62728", strokeDash=[4, 4])
        .encode(
            y="cut:Q", tooltip=[alt.Tooltip("cut:Q", title=f"Cut into {k} clusters", format=".1f")]
        )
    )
    top = (lines + cut_rule).properties(width=HALF, height=230)
    title = alt.Title(
        f"Ward hierarchy: the last {last_merges} merges",
        subtitle=[
            f"Red dashed line: the cut into k = {k} clusters.",
            "Bars under each branch: the segments of its customers (click one to highlight it).",
        ],
    )
    composition = branch_segments(z, n_leaves, tree["leaves"], leaves, scale.domain)
    if composition.empty:
        return top.properties(title=title)
    strip = (
        alt.Chart(composition)
        .mark_bar(stroke="white", strokeWidth=0.5)
        .encode(
            x=alt.X("x:Q", axis=None, title=None, scale=x_scale),
            x2="x2:Q",
            y=alt.Y(
                "share_start:Q",
                title="Segments",
                axis=alt.Axis(format="%", tickCount=2),
                scale=alt.Scale(domain=[0, 1]),
            ),
            y2="share_end:Q",
            color=_segment_color(scale),
            opacity=highlight_opacity(),
            tooltip=[
                alt.Tooltip("branch_customers:Q", title="Customers in the branch", format=","),
                alt.Tooltip("segment_name:N", title="Segment"),
                alt.Tooltip("n_customers:Q", title="Of them in the segment", format=","),
                alt.Tooltip("share:Q", title="Share of the branch", format=".0%"),
            ],
        )
        .add_params(legend_pick())
        .properties(width=HALF, height=60)
    )
    return highlightable(alt.vconcat(top, strip, spacing=4, title=title).resolve_scale(x="shared"))


def branch_segments(
    z: np.ndarray, n_leaves: int, shown: list[int], leaves: pd.DataFrame, order: list[str]
) -> pd.DataFrame:
    """Each segment's customers and share under each drawn branch, stacked.

    ``shown``: the truncated tree's leaves, left to right; ``order``: the segments' stacking
    order (cluster order, as in the legend). The counts per leaf come from SQL
    (rpt_ward_leaves); summing them up the tree is a walk of the linkage, like scipy's layout
    of the dendrogram itself. Columns: x, x2 (the branch's slot on the chart), segment_name,
    n_customers, branch_customers, share, share_start/end.
    """
    if leaves.empty:
        return pd.DataFrame()
    present = set(leaves["segment_name"])
    names = [n for n in order if n in present] + sorted(present - set(order))
    column = {name: i for i, name in enumerate(names)}
    counts = np.zeros((n_leaves + len(z), len(names)))
    np.add.at(
        counts,
        (leaves["leaf_id"].to_numpy(dtype=int), leaves["segment_name"].map(column).to_numpy()),
        leaves["n_customers"].to_numpy(dtype=float),
    )
    for step, (left, right) in enumerate(z[:, :2].astype(int)):
        counts[n_leaves + step] = counts[left] + counts[right]
    rows = []
    for slot, node in enumerate(shown):
        total = counts[node].sum()
        start = 0.0
        for name in names:
            n = counts[node, column[name]]
            if n == 0:
                continue
            rows.append(
                {
                    "x": 10.0 * slot + 1,
                    "x2": 10.0 * slot + 9,
                    "segment_name": name,
                    "n_customers": int(n),
                    "branch_customers": int(total),
                    "share": n / total,
                    "share_start": start,
                    "share_end": start + n / total,
                }
            )
            start += n / total
    return pd.DataFrame(rows)


STABILITY_BANDS = pd.DataFrame(
    {
        "threshold": [0.6, 0.75, 0.85],
        "band": ["doubtful from", "stable from", "highly stable above"],
    }
)


def rule_fidelity(segments: pd.DataFrame, scale: alt.Scale) -> alt.HConcatChart:
    """Per segment: the share of it its rules assign to it, and its bootstrap stability."""
    color = alt.Color("segment_name:N", scale=scale, sort=scale.domain, legend=None)
    base = alt.Chart(segments).encode(
        y=alt.Y("segment_name:N", sort=scale.domain, title=None),
        color=color,
        opacity=highlight_opacity(),
        tooltip=[
            alt.Tooltip("segment_name:N", title="Segment"),
            alt.Tooltip("segment_rule:N", title="Rule"),
            alt.Tooltip("rule_fidelity:Q", title="Fidelity", format=".0%"),
            alt.Tooltip("segment_rule_precision:Q", title="Rule precision", format=".0%"),
            alt.Tooltip("jaccard_stability:Q", title="Mean Jaccard", format=".2f"),
            alt.Tooltip("stability_band:N", title="Stability"),
        ],
    )
    unit = alt.Scale(domain=[0, 1])
    height = alt.Step(34)
    fidelity = (
        base.mark_bar()
        .encode(
            x=alt.X(
                "rule_fidelity:Q",
                scale=unit,
                axis=alt.Axis(format="%"),
                title="Share of the segment its rules assign to it",
            ),
        )
        .properties(title="Rule fidelity", width=FULL // 2 - 120, height=height)
    )
    thresholds = (
        alt.Chart(STABILITY_BANDS)
        .mark_rule(strokeDash=[4, 3], color="#666666")
        .encode(x="threshold:Q", tooltip=[alt.Tooltip("band:N", title="Band"), "threshold:Q"])
    )
    stability = alt.layer(
        base.mark_bar().encode(
            x=alt.X(
                "jaccard_stability:Q",
                scale=unit,
                title="Mean Jaccard with its best match in each refit",
            ),
        ),
        thresholds,
    ).properties(
        title="Stability (lines: 0.6 doubtful, 0.75 stable, 0.85 highly stable)",
        width=FULL // 2 - 120,
        height=height,
    )
    return highlightable(
        alt.hconcat(
            fidelity,
            stability,
            title="How well each segment's rules describe it, and how solid the segment is",
        )
    )


def _leaf_counts(z: np.ndarray, n_leaves: int) -> np.ndarray:
    """Leaves under each merge (scipy needs leaf counts, not customer counts)."""
    counts = np.concatenate([np.ones(n_leaves), np.zeros(len(z))])
    for step, (left, right) in enumerate(z[:, :2].astype(int)):
        counts[n_leaves + step] = counts[left] + counts[right]
    return counts[n_leaves:]


# 5. Segments -----------------------------------------------------------------------------


# Plain words for the clustering features, on axes and in sentences; other features by name.


FEATURE_WORDS = {
    "recency_days": "days since the last order",
    "frequency": "orders",
    "monetary": "net spend",
    "tenure_days": "days since the first order",
    "average_order_value": "order value",
    "distinct_products": "distinct products",
    "return_rate": "share returned",
}


def feature_words(feature: str) -> str:
    """A feature in plain words: "days since the last order" for recency_days."""
    return FEATURE_WORDS.get(feature, feature.replace("_", " "))


def axis_in_words(axes: pd.DataFrame, axis: int, strongest: int = 3, floor: float = 0.3) -> str:
    """What rises along a scatter axis: its most correlated features (rpt_pca_axes rows)."""
    rows = axes[(axes["axis"] == axis) & axes["axis_correlation"].notna()]
    rows = rows.reindex(rows["axis_correlation"].abs().sort_values(ascending=False).index)
    rows = rows[rows["axis_correlation"].abs() >= floor].head(strongest)
    if rows.empty:
        return f"Axis {axis} (no feature follows it closely)"
    pairs = list(zip(rows["feature"], rows["axis_correlation"], strict=True))
    rises = [feature_words(f) for f, c in pairs if c > 0]
    falls = [feature_words(f) for f, c in pairs if c < 0]
    parts = []
    if rises:
        parts.append("rises with " + and_list(rises))
    if falls:
        parts.append("falls with " + and_list(falls))
    return f"Axis {axis} " + ", and ".join(parts)


def and_list(words: list[str]) -> str:
    """Words joined for a sentence: "a", "a and b", "a, b and c"."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def pca_scatter(sample: pd.DataFrame, scale: alt.Scale, axes: pd.DataFrame) -> alt.Chart:
    """Customers on the first two principal components, coloured by segment.

    Each axis is named by the features that drive it (``axes``: rpt_pca_axes).

    ``sample``: rpt_pca_sample rows (all customers, or a fixed sample), with ``n_customers``,
    the total, and in the order the points are drawn.
    """
    total = int(sample["n_customers"].iloc[0])
    # Only what is drawn, rounded: a row per customer shown (page size).
    data = sample[["customer_id", "segment_name", "pca_1", "pca_2", "distance_to_centroid"]].round(
        {"pca_1": 3, "pca_2": 3, "distance_to_centroid": 2}
    )
    return highlightable(
        alt.Chart(data)
        .mark_circle(size=14)
        .encode(
            x=alt.X("pca_1:Q", title=axis_in_words(axes, 1)),
            y=alt.Y("pca_2:Q", title=axis_in_words(axes, 2)),
            color=_segment_color(scale),
            opacity=highlight_opacity(on=0.65, off=0.06),
            tooltip=[
                alt.Tooltip("customer_id:N", title="Customer"),
                alt.Tooltip("segment_name:N", title="Segment"),
                alt.Tooltip("distance_to_centroid:Q", title="Distance to centre", format=".2f"),
            ],
        )
        .add_params(legend_pick())
        .properties(
            width=HALF,
            height=360,
            title=alt.Title(
                "Customers on a map of all their features",
                subtitle=f"{len(data):,} of {total:,} customers shown",
            ),
        )
    )


def segment_sizes(profiles: pd.DataFrame, scale: alt.Scale) -> alt.HConcatChart:
    """Share of customers and share of net revenue per segment, side by side, labelled."""
    panels = []
    for field, title in [
        ("share_of_customers", "Share of customers"),
        ("share_of_revenue", "Share of net revenue"),
    ]:
        base = alt.Chart(profiles).encode(
            y=alt.Y("segment_name:N", sort=scale.domain, title=None),
            x=alt.X(
                f"{field}:Q",
                title=None,
                axis=alt.Axis(format="%", tickCount=4),
                scale=alt.Scale(domain=[0, 1]),
            ),
            tooltip=[
                alt.Tooltip("segment_name:N", title="Segment"),
                alt.Tooltip("n_customers:Q", title="Customers", format=","),
                alt.Tooltip("share_of_customers:Q", title="Share of customers", format=".1%"),
                alt.Tooltip("share_of_revenue:Q", title="Share of net revenue", format=".1%"),
            ],
        )
        bars = base.mark_bar().encode(
            color=alt.Color("segment_name:N", scale=scale, sort=scale.domain, legend=None),
            opacity=highlight_opacity(),
        )
        labels = base.mark_text(align="left", dx=3, fontSize=11).encode(
            text=alt.Text(f"{field}:Q", format=".0%")
        )
        panels.append((bars + labels).properties(width=150, height=alt.Step(30), title=title))
    panels[1] = panels[1].encode(y=alt.Y("segment_name:N", sort=scale.domain, axis=None))
    return highlightable(
        alt.hconcat(*panels, spacing=20, title="How big and how valuable each segment is")
    )


def centroid_heatmap(
    z_scores: pd.DataFrame, scale: alt.Scale, features: list[str]
) -> alt.LayerChart:
    """z-score of each segment's mean, per feature, in ``features`` order (rpt_segment_z_scores).

    Colours are clamped at +-1.5: blue above all customers' mean, red below, as in the
    correlation chart.
    """
    base = alt.Chart(z_scores).encode(
        x=alt.X("feature:N", title=None, sort=features, axis=alt.Axis(labelAngle=-30)),
        y=alt.Y("segment_name:N", sort=scale.domain, title=None),
        tooltip=[
            alt.Tooltip("segment_name:N", title="Segment"),
            alt.Tooltip("feature:N", title="Feature"),
            alt.Tooltip("mean_value:Q", title="Segment mean", format=",.2f"),
            alt.Tooltip("population_mean:Q", title="All customers", format=",.2f"),
            alt.Tooltip("z_score:Q", title="z-score", format=".2f"),
        ],
    )
    cells = base.mark_rect().encode(
        color=alt.Color(
            "z_score:Q",
            # Clamped so one extreme segment does not wash out every other difference.
            scale=alt.Scale(scheme=DIVERGING, domain=[-1.5, 1.5], clamp=True),
            title="z-score",
            legend=alt.Legend(
                orient="top",
                direction="horizontal",
                gradientLength=240,
                values=[-1.5, 0, 1.5],
                labelExpr="datum.value <= -1.5 ? '-1.5 or less' : datum.value >= 1.5 ? "
                "'1.5 or more' : datum.label",
            ),
        ),
        opacity=highlight_opacity(off=0.2),
    )
    labels = base.mark_text(fontSize=10).encode(
        text=alt.Text("z_score:Q", format=".1f"),
        color=alt.condition("abs(datum.z_score) > 1", alt.value("white"), alt.value("black")),
    )
    return highlightable(
        (cells + labels).properties(
            width=FULL - 200,
            height=alt.Step(34),
            title=alt.Title(
                "How each segment differs from the average customer",
                subtitle="Blue: above all customers' mean; red: below (in standard deviations; "
                "colours stop deepening at 1.5).",
            ),
        )
    )


LIFT_TICKS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500]


def lift_domain(lifts: pd.Series) -> tuple[list[float], list[float]]:
    """A log axis fitted to the lifts (1 always on it), and the 1-2-5 ticks inside it."""
    values = lifts[lifts > 0].astype(float)
    low = min(float(values.min()) if len(values) else 1.0, 1.0) / 1.25
    high = max(float(values.max()) if len(values) else 1.0, 1.0) * 1.25
    return [low, high], [t for t in LIFT_TICKS if low <= t <= high]


def profile_bars(lifts: pd.DataFrame, scale: alt.Scale) -> alt.FacetChart:
    """Lift (segment mean / everyone's mean) of key features per segment (rpt_segment_lifts).

    One panel per feature, in ``feature_order``; the model leaves out lifts a log axis cannot
    show. The axis spans the lifts, ticks at 1-2-5 steps.
    """
    features = lifts.sort_values("feature_order")["feature"].unique().tolist()
    domain, ticks = lift_domain(lifts["lift"])
    return highlightable(
        alt.Chart(lifts)
        .mark_bar()
        .encode(
            y=alt.Y("segment_name:N", sort=scale.domain, title=None),
            x=alt.X(
                "lift:Q",
                title="Lift (x all customers' mean)",
                scale=alt.Scale(type="log", domain=domain, nice=False),
                axis=alt.Axis(values=ticks, format="~g", labelExpr="datum.label + 'x'"),
            ),
            x2=alt.X2(datum=1),
            color=_segment_color(scale),
            opacity=highlight_opacity(),
            tooltip=[
                alt.Tooltip("segment_name:N", title="Segment"),
                alt.Tooltip("feature:N", title="Feature"),
                alt.Tooltip("mean_value:Q", title="Segment mean", format=",.2f"),
                alt.Tooltip("population_mean:Q", title="All customers", format=",.2f"),
                alt.Tooltip("lift:Q", title="Lift", format=".2f"),
            ],
        )
        .add_params(legend_pick())
        .properties(width=190, height=alt.Step(20))
        .facet(facet=alt.Facet("feature:N", title=None, sort=features), columns=4)
        .properties(
            title=alt.Title(
                "Key features per segment, against all customers",
                subtitle="Segment mean / all customers' mean, log scale: bars grow from 1x "
                "(like everyone) to the right (more) or left (less).",
            )
        )
    )


def segment_rfm_heatmap(crosstab: pd.DataFrame, scale: alt.Scale) -> alt.LayerChart:
    """Customers per (k-means segment, RFM segment), RFM segments in their order.

    ``crosstab``: rpt_segment_rfm_crosstab rows.
    """
    rfm_order = crosstab.sort_values("rfm_segment_order")["rfm_segment_label"].unique().tolist()
    base = alt.Chart(crosstab).encode(
        x=alt.X(
            "rfm_segment_label:N",
            sort=rfm_order,
            title="RFM segment",
            axis=alt.Axis(labelAngle=-30),
        ),
        y=alt.Y("segment_name:N", sort=scale.domain, title="Segment"),
        tooltip=[
            alt.Tooltip("segment_name:N", title="Segment"),
            alt.Tooltip("rfm_segment_label:N", title="RFM segment"),
            alt.Tooltip("n_customers:Q", title="Customers", format=","),
            alt.Tooltip("share_of_cluster:Q", title="Share of segment", format=".1%"),
        ],
    )
    return highlightable(
        (
            base.mark_rect().encode(
                color=alt.Color(
                    "n_customers:Q", title="Customers", scale=alt.Scale(scheme="greys")
                ),
                opacity=highlight_opacity(off=0.2),
            )
            + base.mark_text(fontSize=10).encode(
                text=alt.Text("n_customers:Q", format=","),
                color=alt.condition(
                    f"datum.n_customers > {0.6 * float(crosstab['n_customers'].max() or 1)}",
                    alt.value("white"),
                    alt.value("black"),
                ),
            )
        ).properties(
            width=FULL - 200,
            height=alt.Step(34),
            title=alt.Title(
                "Segments against the classic RFM segments",
                subtitle="Customers in each pair: where the two vocabularies agree and differ.",
            ),
        )
    )


# 6. Value ahead --------------------------------------------------------------------------

# The value tiers of customer_value, best first, then customers whose predicted value is null.
VALUE_TIER_COLORS = alt.Scale(
    domain=["high", "medium", "low", "none", "not computed"],
    # Dark to light slate: an order, and no segment's colour.
    range=["#1B3A4B", "#3F6E86", "#86AEC2", "#D3E4EC", "#EEEEEE"],
)
NOT_FITTED = "The lifetime-value models were not fitted on this data."


def empty_state(title: str, message: str) -> alt.Chart:
    """A chart that only says why there is nothing to draw (models not fitted, no rows)."""
    return (
        alt.Chart(pd.DataFrame({"text": [message]}))
        .mark_text(fontSize=13, align="center", lineBreak="\n")
        .encode(text="text:N")
        .properties(width=HALF, height=60, title=title)
    )


def segment_value(
    value: pd.DataFrame,
    scale: alt.Scale,
    horizon_days: int,
    unavailable: str = NOT_FITTED,
    currency: str = "GBP",
) -> alt.HConcatChart | alt.Chart:
    """Predicted lifetime value and value at risk per segment (rpt_segment_value).

    Two panels on their own axes: value at risk is usually far smaller than the value ahead.
    ``unavailable``: what the chart says when the models gave no predicted value.
    """
    title = "Value ahead and value at risk per segment"
    if value.empty or value["predicted_clv"].isna().all():
        return empty_state(title, unavailable)
    panels = []
    for field, share, panel_title, axis_title in [
        (
            "predicted_clv",
            "share_of_predicted_clv",
            f"Predicted value, next {horizon_days} days",
            f"Predicted net purchases ({currency})",
        ),
        (
            "value_at_risk",
            "share_of_value_at_risk",
            "Value at risk",
            f"Past spend x chance the customer has left ({currency})",
        ),
    ]:
        base = alt.Chart(value).encode(
            y=alt.Y("segment_name:N", sort=scale.domain, title=None),
            x=alt.X(f"{field}:Q", title=axis_title, axis=alt.Axis(format="~s")),
            tooltip=[
                alt.Tooltip("segment_name:N", title="Segment"),
                alt.Tooltip("n_customers:Q", title="Customers", format=","),
                alt.Tooltip(
                    "predicted_clv:Q", title=f"Predicted value ({currency})", format=",.0f"
                ),
                alt.Tooltip("share_of_predicted_clv:Q", title="Share of value", format=".1%"),
                alt.Tooltip(
                    "mean_predicted_clv:Q", title="Predicted value per customer", format=",.0f"
                ),
                alt.Tooltip("mean_p_alive:Q", title="Mean chance still active", format=".1%"),
                alt.Tooltip("value_at_risk:Q", title=f"Value at risk ({currency})", format=",.0f"),
                alt.Tooltip("share_of_value_at_risk:Q", title="Share at risk", format=".1%"),
            ],
        )
        bars = base.mark_bar().encode(
            color=alt.Color("segment_name:N", scale=scale, sort=scale.domain, legend=None),
            opacity=highlight_opacity(),
        )
        labels = base.mark_text(align="left", dx=3, fontSize=10).encode(
            text=alt.Text(f"{share}:Q", format=".0%"),
        )
        panels.append(
            (bars + labels).properties(
                width=FULL // 2 - 140, height=alt.Step(30), title=panel_title
            )
        )
    return highlightable(
        alt.hconcat(
            *panels,
            title=alt.Title(
                title,
                subtitle="Labels: the segment's share of all customers' value (left) and of the "
                "value at risk (right).",
            ),
        ).resolve_scale(x="independent")
    )


# An axis label expression: labels of several words on two lines, split at the middle space.
LABEL_ON_TWO_LINES = (
    "length(split(datum.label, ' ')) > 1 ? "
    "[join(slice(split(datum.label, ' '), 0, ceil(length(split(datum.label, ' ')) / 2)), ' '), "
    "join(slice(split(datum.label, ' '), ceil(length(split(datum.label, ' ')) / 2)), ' ')] "
    ": datum.label"
)


def p_alive_distribution(
    distribution: pd.DataFrame, unavailable: str = NOT_FITTED
) -> alt.LayerChart | alt.Chart:
    """Customers per range of P(alive), stacked by value tier (rpt_p_alive_distribution).

    The ranges are finer near 1, where a short history puts most customers, so a distribution
    bunched there still shows its shape; every range has a bar, empty or not.
    """
    title = "How likely customers are to still be buying"
    total = int(distribution["n_customers"].sum()) if not distribution.empty else 0
    if total == 0:
        return empty_state(title, unavailable)
    order = distribution.sort_values("bucket_order")["bucket_label"].drop_duplicates().tolist()
    tiers = [t for t in VALUE_TIER_COLORS.domain if t in set(distribution["value_tier"])]
    near_one = int(
        distribution.loc[
            distribution["is_one_purchase"] | (distribution["lower_bound"] >= 0.99), "n_customers"
        ].sum()
    )
    bars = (
        alt.Chart(distribution)
        .mark_bar()
        .encode(
            x=alt.X(
                "bucket_label:N",
                sort=order,
                scale=alt.Scale(domain=order),
                title="Chance the customer is still buying (P(alive))",
                # Two lines per label ("99.9% or" / "more"), so that eight fit side by side.
                axis=alt.Axis(labelAngle=0, labelExpr=LABEL_ON_TWO_LINES),
            ),
            y=alt.Y("sum(n_customers):Q", title="Customers"),
            color=alt.Color(
                "value_tier:N",
                scale=VALUE_TIER_COLORS,
                sort=tiers,
                title="Value tier (predicted value)",
            ),
            order=alt.Order("tier_order:Q"),
            tooltip=[
                alt.Tooltip("bucket_label:N", title="Chance still buying"),
                alt.Tooltip("value_tier:N", title="Value tier"),
                alt.Tooltip("sum(n_customers):Q", title="Customers", format=","),
                alt.Tooltip("sum(share_of_customers):Q", title="Share", format=".1%"),
            ],
        )
    )
    totals = (
        alt.Chart(distribution)
        .transform_aggregate(n_customers="sum(n_customers)", groupby=["bucket_label"])
        .mark_text(dy=-6, fontSize=10)
        .encode(
            x=alt.X("bucket_label:N", sort=order, scale=alt.Scale(domain=order)),
            y=alt.Y("n_customers:Q"),
            text=alt.Text("n_customers:Q", format=","),
            tooltip=[
                alt.Tooltip("bucket_label:N", title="Chance still buying"),
                alt.Tooltip("n_customers:Q", title="Customers", format=","),
            ],
        )
    )
    return (bars + totals).properties(
        width=FULL - 250,
        height=260,
        title=alt.Title(
            title,
            subtitle=[
                f"{near_one:,} of {total:,} customers ({near_one / total:.0%}): a chance of "
                "99% or more, or one purchase so far (counted as still buying).",
                "The ranges are finer near 100%. Colours: the customer's value tier.",
            ],
        ),
    )


def gap_in_words(actual: float, predicted: float) -> str:
    """How actual compares with predicted, in words: "16% more than predicted"."""
    if not predicted:
        return "nothing was predicted"
    gap = actual / predicted - 1
    if round(gap, 2) == 0:
        return "as predicted"
    return f"{abs(gap):.0%} {'more' if gap > 0 else 'less'} than predicted"


VALIDATION_MEASURES = {
    "repeat_purchases": ("Repeat purchases per customer", "repeat purchases"),
    "mean_purchase_value": ("Mean value of a purchase", "per purchase"),
}


def clv_validation(
    validation: pd.DataFrame,
    measure: str,
    unavailable: str = NOT_FITTED,
    currency: str = "GBP",
) -> alt.LayerChart | alt.Chart:
    """Predicted against actual holdout means per number of calibration repeat purchases.

    ``validation``: rpt_clv_validation rows; ``measure``: ``repeat_purchases`` or
    ``mean_purchase_value``. The x axis runs 0..6, 7+ in bucket_order; the ``all`` row gives
    the totals in the subtitle.
    """
    axis_title, unit = VALIDATION_MEASURES[measure]
    if measure == "mean_purchase_value":
        axis_title, unit = f"{axis_title} ({currency})", f"{currency} {unit}"
    title = (
        "Check on past data: predicted against actual repeat purchases"
        if measure == "repeat_purchases"
        else "Check on past data: predicted against actual value of a purchase"
    )
    rows = validation[validation["measure"] == measure]
    buckets = rows[rows["calibration_purchases"] != "all"]
    if buckets.empty or buckets["predicted_mean"].isna().all():
        return empty_state(title, unavailable)
    buckets = buckets.sort_values("bucket_order")
    start = pd.Timestamp(rows["calibration_end"].iloc[0]).date()
    end = pd.Timestamp(rows["holdout_end"].iloc[0]).date()
    series = {"predicted_mean": "Predicted", "actual_mean": "Actual"}
    data = buckets.melt(
        id_vars=["calibration_purchases", "bucket_order", "customers", "mean_absolute_error"],
        value_vars=list(series),
        var_name="series",
        value_name="mean",
    )
    data["series"] = data["series"].map(series)
    order = buckets["calibration_purchases"].tolist()
    chart = (
        alt.Chart(data)
        .mark_line(point=alt.OverlayMarkDef(size=50, filled=True))
        .encode(
            x=alt.X(
                "calibration_purchases:O",
                sort=order,
                title=f"Repeat purchases before {start}",
                axis=alt.Axis(labelAngle=0),
            ),
            y=alt.Y("mean:Q", title=f"{axis_title}, {start} to {end}"),
            color=alt.Color(
                "series:N",
                scale=alt.Scale(domain=list(series.values()), range=["#E69F00", "#222222"]),
                title=None,
                legend=alt.Legend(orient="top-left", symbolStrokeWidth=2),
            ),
            # The same legend as the colour (one legend of dashed and solid lines).
            strokeDash=alt.StrokeDash(
                "series:N",
                scale=alt.Scale(domain=list(series.values()), range=[[5, 3], [1, 0]]),
                title=None,
                legend=alt.Legend(orient="top-left", symbolStrokeWidth=2),
            ),
            tooltip=[
                alt.Tooltip("calibration_purchases:O", title="Repeat purchases before cut-off"),
                alt.Tooltip("customers:Q", title="Customers", format=","),
                alt.Tooltip("series:N", title="Line"),
                alt.Tooltip("mean:Q", title="Mean", format=",.2f"),
                alt.Tooltip(
                    "mean_absolute_error:Q", title="Mean error per customer", format=",.2f"
                ),
            ],
        )
    )
    subtitle = [
        f"Predicted: by the models fitted on the orders before {start} only.",
        f"Actual: what the customers did from {start} to {end}.",
    ]
    overall = rows[rows["calibration_purchases"] == "all"]
    if not overall.empty and pd.notna(overall["predicted_total"].iloc[0]):
        row = overall.iloc[0]
        if measure == "repeat_purchases":
            subtitle.append(
                f"All {int(row['customers']):,} customers: {row['predicted_total']:,.0f} {unit} "
                f"predicted, {row['actual_total']:,.0f} made "
                f"({gap_in_words(row['actual_total'], row['predicted_total'])})."
            )
        else:
            subtitle.append(
                f"{int(row['customers']):,} repeat customers who bought again: "
                f"{row['predicted_mean']:,.0f} {unit} predicted, {row['actual_mean']:,.0f} "
                f"spent ({gap_in_words(row['actual_mean'], row['predicted_mean'])})."
            )
    return chart.properties(width=HALF, height=240, title=alt.Title(title, subtitle=subtitle))


# 7. Movement -----------------------------------------------------------------------------


def migration_heatmap(migration: pd.DataFrame, scale: alt.Scale) -> alt.Chart:
    """Customers moving between segments over the last full period (month or quarter).

    ``migration``: rpt_segment_migration, the one period to show: the last full one (the
    partial period to the snapshot date is left out, as a few days would put nearly every
    customer on the diagonal) or, without a full period, the partial one, and the title says
    which. No rows: one snapshot date, nothing to compare.
    """
    if migration.empty:
        return (
            alt.Chart(pd.DataFrame({"text": ["Only one snapshot date: nothing to compare yet."]}))
            .mark_text(fontSize=14)
            .encode(text="text:N")
            .properties(width=360, height=60, title="Segment migration")
        )
    days = int(migration["period_days"].iloc[0])
    kind = str(migration["period_kind"].iloc[0]).replace("_", " ")
    start = pd.Timestamp(migration["from_snapshot_date"].iloc[0]).date()
    end = pd.Timestamp(migration["to_snapshot_date"].iloc[0]).date()
    from_order = ["(new customer)", *scale.domain]
    base = alt.Chart(migration).encode(
        x=alt.X(
            "to_segment_name:N",
            sort=scale.domain,
            title=f"Segment on {end}",
            axis=alt.Axis(labelAngle=-40),
        ),
        y=alt.Y("from_segment_name:N", sort=from_order, title=f"Segment on {start}"),
        tooltip=[
            alt.Tooltip("from_segment_name:N", title="From"),
            alt.Tooltip("from_segment_id:Q", title="From segment id"),
            alt.Tooltip("to_segment_name:N", title="To"),
            alt.Tooltip("to_segment_id:Q", title="To segment id"),
            alt.Tooltip("n_customers:Q", title="Customers", format=","),
            alt.Tooltip("n_ordered_in_period:Q", title="Ordered in between", format=","),
            alt.Tooltip("n_lapsed_in_period:Q", title="Lapsed in between", format=","),
        ],
    )
    moved = (
        "highlight == null || datum.from_segment_name == highlight "
        "|| datum.to_segment_name == highlight"
    )
    return highlightable(
        base.mark_rect().encode(
            color=alt.Color(
                "n_customers:Q", title="Customers", scale=alt.Scale(scheme="greys", type="sqrt")
            ),
            opacity=highlight_opacity(off=0.2, test=moved),
        )
        + base.mark_text(fontSize=10).encode(
            text=alt.Text("n_customers:Q", format=","),
            color=alt.condition(
                f"datum.n_customers > {0.5 * float(migration['n_customers'].max() or 1)}",
                alt.value("white"),
                alt.value("black"),
            ),
        )
    ).properties(
        width=alt.Step(70),
        height=alt.Step(34),
        title=alt.Title(
            f"Segment migration, {start} to {end} ({kind}, {days} days)",
            subtitle="Rows: segment before; columns: segment after; diagonal: stayed.",
        ),
    )


def segment_sizes_over_time(counts: pd.DataFrame, scale: alt.Scale) -> alt.Chart:
    """Customers per segment at each snapshot (rpt_segment_sizes_over_time)."""
    return highlightable(
        alt.Chart(counts, title="Segment sizes over time (scored with today's model)")
        .mark_line(point=True)
        .encode(
            # A time axis: the last, partial period is drawn as short as it is.
            x=alt.X(
                "snapshot_date:T",
                title="As of (orders before this date)",
                axis=alt.Axis(labelAngle=0, format="%Y-%m-%d"),
            ),
            y=alt.Y("customers:Q", title="Customers", axis=alt.Axis(format="~s")),
            color=_segment_color(scale),
            opacity=highlight_opacity(),
            tooltip=[
                alt.Tooltip("snapshot_date:T", title="As of"),
                alt.Tooltip("segment_name:N", title="Segment"),
                alt.Tooltip("customers:Q", title="Customers", format=","),
            ],
        )
        .add_params(legend_pick())
        .properties(width=HALF, height=260)
    )


DRIFT_MEASURES = {
    "population_stability_index": "PSI",
    "segment_share_points": "share moved (points)",
    "mean_distance_growth": "spread growth",
}


def segment_drift(drift: pd.DataFrame) -> alt.LayerChart | alt.Chart:
    """Each drift measure as a share of its threshold (rpt_segment_drift); past 1 warns."""
    if drift.empty:
        return empty_state(
            "Drift since the previous model", "No earlier model to compare with yet."
        )
    reference = int(drift["reference_model_id"].iloc[0])
    shown = drift.assign(
        label=drift["measure"].map(DRIFT_MEASURES) + ": " + drift["subject"].astype(str),
        status=drift["is_drifted"].map({True: "above threshold", False: "within"}),
    )
    bars = (
        alt.Chart(shown)
        .mark_bar()
        .encode(
            x=alt.X("share_of_threshold:Q", title="Drift as a share of its threshold"),
            y=alt.Y("label:N", sort=None, title=None),
            color=alt.Color(
                "status:N",
                scale=alt.Scale(domain=["within", "above threshold"], range=["#9ecae1", "#d62728"]),
                title=None,
            ),
            tooltip=[
                alt.Tooltip("label:N", title="Measure"),
                alt.Tooltip("drift:Q", title="Drift", format=".3f"),
                alt.Tooltip("threshold:Q", title="Threshold", format=".2f"),
                alt.Tooltip("reference_value:Q", title="When fitted", format=",.2f"),
                alt.Tooltip("current_value:Q", title="Today", format=",.2f"),
            ],
        )
    )
    threshold = (
        alt.Chart(pd.DataFrame({"x": [1.0]}))
        .mark_rule(color="#d62728", strokeDash=[4, 3])
        .encode(x="x:Q", tooltip=[alt.Tooltip("x:Q", title="Threshold (warns above)")])
    )
    limits = shown.groupby("measure")["threshold"].first()
    subtitle = "; ".join(f"{DRIFT_MEASURES[m]} warns above {limits[m]:g}" for m in limits.index)
    return (bars + threshold).properties(
        width=FULL - 300,
        height=alt.Step(14),
        title=alt.Title(
            f"Drift against model {reference}'s training data",
            subtitle=f"{subtitle} (the dashed line).",
        ),
    )
