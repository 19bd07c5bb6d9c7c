"""Lifetime value on the bundled data: the SQL inputs against an independent count from the
cleaned lines, the per-customer values against the models on the stored parameters, the
validation against a direct count of holdout purchases, and thin data.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from tests.clv_simulation import simulate_bgnbd, simulate_gamma_gamma
from threadpoolctl import threadpool_limits

from conftest import DbtRun
from customer_segmentation import models
from customer_segmentation.ml.clv import (
    BgNbdParameters,
    GammaGammaParameters,
    bgnbd_expected_purchases,
    bgnbd_p_alive,
    discounted_expected_purchases,
    fit_bgnbd,
    gamma_gamma_expected_value,
)
from customer_segmentation.spark.session import project_clv_settings

DAYS_PER_WEEK = 7


def frame(run: DbtRun, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(run.database), read_only=True) as con:
        return con.sql(sql).df()


def independent_histories(run: DbtRun, as_of: dt.date) -> pd.DataFrame:
    """x, t_x, T and the repeat mean value from the kept and returned lines, in pandas."""
    lines = frame(
        run,
        "select customer_id, cast(invoiced_at as date) as day, line_amount, is_kept,"
        " is_product_return from int_transaction_lines_classified"
        " where is_kept or is_product_return",
    )
    lines["day"] = pd.to_datetime(lines["day"])
    before = lines[lines["day"] < pd.Timestamp(as_of)]
    kept = before[before["is_kept"]]
    days = kept.groupby(["customer_id", "day"], as_index=False)["line_amount"].sum()
    days = days.sort_values(["customer_id", "day"])
    grouped = days.groupby("customer_id")
    first = grouped["day"].min()
    out = pd.DataFrame(
        {
            "x": grouped.size() - 1,
            "t_x": (grouped["day"].max() - first).dt.days / DAYS_PER_WEEK,
            "t": (pd.Timestamp(as_of) - first).dt.days / DAYS_PER_WEEK,
            "gross": grouped["line_amount"].sum(),
            "first_value": grouped["line_amount"].first(),
        }
    )
    returned = -before[before["is_product_return"]].groupby("customer_id")["line_amount"].sum()
    out["returned"] = returned.reindex(out.index).fillna(0.0)
    net = (out["gross"] - out["returned"]).clip(lower=0)
    keep = net / out["gross"]
    out["repeat_mean_value"] = np.where(
        out["x"] > 0, (out["gross"] - out["first_value"]) * keep / out["x"].clip(lower=1), np.nan
    )
    out["net_value"] = net.round(2)
    return out


@pytest.fixture(scope="module")
def histories(bundled_build: DbtRun) -> pd.DataFrame:
    return frame(bundled_build, "select * from customer_purchase_histories").set_index(
        "customer_id"
    )


def test_purchase_histories_equal_an_independent_count(
    bundled_build: DbtRun, histories: pd.DataFrame
) -> None:
    snapshot = bundled_build.scalar("select max(snapshot_date) from customer_features")
    expected = independent_histories(bundled_build, snapshot)
    assert set(histories.index) == set(expected.index)
    got = histories.loc[expected.index]
    assert (got["x"].to_numpy() == expected["x"].to_numpy()).all()
    for column in ("t_x", "t", "net_value"):
        np.testing.assert_allclose(got[column], expected[column], rtol=0, atol=1e-9)
    np.testing.assert_allclose(
        got["repeat_mean_value"].astype(float), expected["repeat_mean_value"], rtol=1e-9
    )
    # Same-day invoices are one purchase: fewer purchases than orders for some customers.
    frequency = frame(bundled_build, "select customer_id, frequency from customer_features")
    frequency = frequency.set_index("customer_id")["frequency"].loc[expected.index]
    assert (got["n_purchases"] <= frequency).all()
    assert (got["n_purchases"] < frequency).sum() > 100
    # The value is customer_features.monetary.
    monetary = frame(bundled_build, "select customer_id, monetary from customer_features")
    monetary = monetary.set_index("customer_id")["monetary"].loc[expected.index]
    np.testing.assert_allclose(got["net_value"], monetary, atol=1e-9)


def stored_parameters(
    run: DbtRun, fit: str
) -> tuple[BgNbdParameters, GammaGammaParameters, pd.DataFrame]:
    table = frame(run, f"select * from clv_model_parameters where fit = '{fit}'")
    assert table["null_reason"].isna().all(), table
    values = dict(zip(table["parameter"], table["estimate"], strict=True))
    return (
        BgNbdParameters(values["r"], values["alpha"], values["a"], values["b"]),
        GammaGammaParameters(values["p"], values["q"], values["v"]),
        table,
    )


def test_customer_values_are_the_models_on_the_stored_parameters(
    bundled_build: DbtRun, histories: pd.DataFrame
) -> None:
    purchases, spend, table = stored_parameters(bundled_build, "snapshot")
    assert (table["time_unit"] == "week").all()
    assert (table["customers"][table["model"] == "bg_nbd"] == len(histories)).all()
    values = frame(bundled_build, "select * from customer_value").set_index("customer_id")
    values = values.loc[histories.index]
    x, t_x, t = (histories[c].to_numpy(float) for c in ("x", "t_x", "t"))
    np.testing.assert_allclose(values["p_alive"], bgnbd_p_alive(purchases, x, t_x, t), rtol=1e-12)
    np.testing.assert_allclose(
        values["expected_purchases"],
        bgnbd_expected_purchases(purchases, 365 / DAYS_PER_WEEK, x, t_x, t),
        rtol=1e-10,
    )
    repeat = (x > 0) & (histories["net_value"].to_numpy() > 0)
    m = histories["repeat_mean_value"].to_numpy(float)
    order_value = np.where(
        histories["net_value"].to_numpy() > 0,
        gamma_gamma_expected_value(spend, np.where(repeat, x, 0), np.where(repeat, m, 0)),
        0.0,
    )
    np.testing.assert_allclose(values["expected_order_value"], order_value, rtol=1e-10)
    discounted = discounted_expected_purchases(purchases, DAYS_PER_WEEK, 365, 0.10, x, t_x, t)
    np.testing.assert_allclose(values["discounted_purchases"], discounted, rtol=1e-10)
    np.testing.assert_allclose(values["predicted_clv"], order_value * discounted, rtol=1e-10)
    # Discounting at 10% a year takes a few percent off a year's purchases.
    ratio = discounted.sum() / values["expected_purchases"].sum()
    assert 0.93 < ratio < 0.99
    assert (values.loc[x == 0, "p_alive"] == 1).all()
    assert (values.loc[histories["net_value"] == 0, "predicted_clv"] == 0).all()
    np.testing.assert_allclose(values["churn_risk"], 1 - values["p_alive"])
    tiers = values["value_tier"].value_counts(normalize=True)
    assert tiers["high"] == pytest.approx(0.2, abs=0.01)
    assert tiers["medium"] == pytest.approx(0.3, abs=0.01)
    assert values["null_reason"].isna().all()


def test_segment_value_adds_up_to_the_customers(bundled_build: DbtRun) -> None:
    run = bundled_build
    total = run.scalar("select sum(predicted_clv) from customer_value")
    # Each segment's total is rounded to cents: their sum is within half a cent a segment of
    # the customers' total, and to the cent the sum of the customers' totals per segment.
    n_segments = run.scalar("select count(*) from segment_profiles")
    profiles_total = run.scalar("select sum(predicted_clv) from segment_profiles")
    assert profiles_total == pytest.approx(total, abs=0.005 * n_segments)
    per_segment = run.scalar(
        "select sum(round(segment_total, 2)) from ("
        " select segments.cluster_id, sum(value.predicted_clv) as segment_total"
        " from customer_value as value"
        " inner join customer_segments as segments using (customer_id)"
        " group by segments.cluster_id)"
    )
    assert profiles_total == pytest.approx(per_segment, abs=1e-6)
    assert run.scalar("select sum(share_of_predicted_clv) from segment_profiles") == (
        pytest.approx(1.0)
    )
    assert (
        run.scalar(
            "select count(*) from customer_segments where p_alive is null or value_tier is null"
        )
        == 0
    )


def test_validation_counts_the_holdout_purchases(bundled_build: DbtRun) -> None:
    run = bundled_build
    snapshot, first = run.query(
        "select max(as_of_date), min(first_purchase_date) from customer_purchase_histories"
    )[0]
    history = (snapshot - first).days
    cutoff = snapshot - dt.timedelta(days=min(365, history // 2))
    assert run.scalar("select max(calibration_end) from clv_validation") == cutoff
    days = frame(
        run,
        "select distinct customer_id, order_date as purchase_date from int_orders_aggregated",
    )
    days["purchase_date"] = pd.to_datetime(days["purchase_date"])
    starts = days.groupby("customer_id")["purchase_date"].min()
    calibration_customers = starts[starts < pd.Timestamp(cutoff)].index
    holdout = days[
        (days["purchase_date"] >= pd.Timestamp(cutoff))
        & days["customer_id"].isin(calibration_customers)
    ]
    overall = frame(
        run, "select * from clv_validation where calibration_purchases = 'all'"
    ).set_index("measure")
    assert overall.loc["repeat_purchases", "customers"] == len(calibration_customers)
    assert overall.loc["repeat_purchases", "actual_total"] == len(holdout)
    buckets = frame(
        run,
        "select bucket_order, customers from clv_validation"
        " where measure = 'repeat_purchases' and bucket_order < 8 order by 1",
    )
    assert buckets["bucket_order"].tolist() == list(range(8))
    assert buckets["customers"].sum() == len(calibration_customers)
    # The calibration fit predicts the holdout's purchases within a quarter (the holdout holds
    # the Christmas peak the first half of the year cannot show), and ranks customers well.
    predicted = overall.loc["repeat_purchases", "predicted_total"]
    assert 0.75 < predicted / len(holdout) < 1.1
    assert overall.loc["repeat_purchases", "correlation"] > 0.6
    assert overall.loc["mean_purchase_value", "correlation"] > 0.6


def simulated_histories(n: int, as_of: dt.date, seed: int) -> pa.Table:
    """A table of n simulated customers with the columns clv_model_parameters reads."""
    rng = np.random.default_rng(seed)
    ages = rng.uniform(8, 52, n)
    customers = simulate_bgnbd(n, r=0.8, alpha=6.0, a=0.6, b=2.5, T=ages, seed=seed)
    repeat = customers.x > 0
    mean_value = np.full(n, np.nan)
    mean_value[repeat] = simulate_gamma_gamma(customers.x[repeat], p=6.0, q=4.0, v=15.0, seed=seed)
    return pa.table(
        {
            "customer_id": np.arange(1, n + 1),
            "x": customers.x.astype(float),
            "t_x": customers.t_x,
            "t": customers.T,
            "repeat_mean_value": pa.array(mean_value, from_pandas=True),
            "net_value": np.where(repeat, mean_value * (customers.x + 1), 20.0),
            "first_purchase_date": [as_of - dt.timedelta(days=int(7 * a)) for a in ages],
            "as_of_date": [as_of] * n,
            "time_unit": ["week"] * n,
            "holdout_length": [26.0] * n,
            "holdout_end": [as_of + dt.timedelta(days=182)] * n,
        }
    )


def test_the_fits_do_not_depend_on_the_row_order_or_the_threads() -> None:
    """The same customers in another order, or with one BLAS thread, give the same parameters.

    DuckDB hands a model its rows in no fixed order, and a likelihood summed in another order
    differs in its last bits: before the fits ordered their rows, two builds of the
    200,000-customer synthetic set differed in whether the spend model converged.
    """
    histories = simulated_histories(20_000, dt.date(2011, 12, 10), seed=3)
    calibration = simulated_histories(15_000, dt.date(2011, 6, 10), seed=4)
    settings = project_clv_settings()
    rng = np.random.default_rng(7)
    con = duckdb.connect()

    def parameters(shuffle: bool) -> list[dict[str, object]]:
        def rows(table: pa.Table) -> duckdb.DuckDBPyRelation:
            order = rng.permutation(table.num_rows) if shuffle else np.arange(table.num_rows)
            return con.from_arrow(table.take(order))

        fitted = models.clv_model_parameters(rows(histories), rows(calibration), settings)
        return fitted.sort_by([("fit", "ascending"), ("parameter", "ascending")]).to_pylist()

    unshuffled = parameters(shuffle=False)
    assert all(row["estimate"] is not None for row in unshuffled)
    assert parameters(shuffle=True) == unshuffled
    # Nor on BLAS's thread count, which models running beside the fit change for the whole
    # process (parallel.map_single_threaded): BLAS's dot products differ in their last bits.
    with threadpool_limits(limits=1, user_api="blas"):
        assert parameters(shuffle=False) == unshuffled


def test_units_do_not_change_the_predictions(histories: pd.DataFrame) -> None:
    x, t_x, t = (histories[c].to_numpy(float) for c in ("x", "t_x", "t"))
    weeks = fit_bgnbd(x, t_x, t)
    days = fit_bgnbd(x, t_x * DAYS_PER_WEEK, t * DAYS_PER_WEEK)
    in_weeks, in_days = weeks.bg_nbd, days.bg_nbd
    assert in_days.alpha == pytest.approx(in_weeks.alpha * DAYS_PER_WEEK, rel=1e-3)
    np.testing.assert_allclose(
        bgnbd_expected_purchases(in_days, 365, x, t_x * 7, t * 7),
        bgnbd_expected_purchases(in_weeks, 365 / 7, x, t_x, t),
        rtol=1e-3,
    )


def test_the_readme_states_the_validation_as_built(bundled_build: DbtRun) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    predicted, actual, correlation = bundled_build.query(
        "select predicted_total, actual_total, correlation from clv_validation"
        " where measure = 'repeat_purchases' and calibration_purchases = 'all'"
    )[0]
    assert f"predicts {predicted:,.0f} repeat purchases in the holdout against {actual:,.0f}" in (
        " ".join(readme.split())
    )
    assert f"correlation of {correlation:.2f}" in " ".join(readme.split())


def test_the_readme_states_the_segment_values_as_built(bundled_build: DbtRun) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    rows = bundled_build.query(
        "select segment_name, n_customers, mean_p_alive, predicted_clv, share_of_predicted_clv,"
        " share_of_revenue from segment_profiles order by cluster_id"
    )
    for name, n, p_alive, clv, share, revenue in rows:
        line = f"| {name} | {n:,} | {p_alive:.3f} | {clv:,.0f} | {share:.0%} | {revenue:.0%} |"
        assert line in readme, line
