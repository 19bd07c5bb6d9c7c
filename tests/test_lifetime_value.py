"""When the lifetime-value models are fitted, why not, and the per-customer values."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest
from tests.clv_simulation import simulate_bgnbd, simulate_gamma_gamma

from customer_segmentation.config import ConfigError, parse_clv_config
from customer_segmentation.ml.clv import BgNbdParameters, GammaGammaParameters
from customer_segmentation.ml.lifetime_value import (
    Histories,
    customer_values,
    fit_lifetime_value,
    holdout_predictions,
)
from customer_segmentation.models.value_tables import (
    fitted_parameters,
    no_holdout_reason,
    parameters_rows,
    parameters_table,
)

CONFIG = parse_clv_config(
    {
        "clv_time_unit": "week",
        "clv_horizon_days": 365,
        "clv_annual_discount_rate": 0.1,
        "clv_min_repeat_customers": 50,
        "clv_min_history_days": 60,
    }
)


def simulated_histories(n: int, seed: int = 3, history_days: float = 365.0) -> Histories:
    simulated = simulate_bgnbd(n, 0.5, 6.0, 0.7, 3.0, history_days / 7, seed)
    x, t_x, t = (np.asarray(c, dtype=float) for c in (simulated.x, simulated.t_x, simulated.T))
    m = np.full(n, np.nan)
    repeat = x > 0
    m[repeat] = simulate_gamma_gamma(x[repeat].astype(int), 5.0, 3.0, 40.0, seed)
    net = np.where(repeat, m * (x + 1), 25.0)
    return Histories(x, t_x, t, m, net, history_days)


def test_a_normal_history_is_fitted_and_valued() -> None:
    histories = simulated_histories(3_000)
    fitted = fit_lifetime_value(histories, 50, 60)
    assert fitted.purchases_reason is None and fitted.spend_reason is None
    assert fitted.purchases is not None and fitted.spend is not None
    values = customer_values(
        fitted.purchases.bg_nbd, fitted.spend.gamma_gamma, histories, 7, 365, 0.1
    )
    assert np.all((values.p_alive >= 0) & (values.p_alive <= 1))
    assert np.all(values.p_alive[histories.x == 0] == 1)
    assert np.all(values.predicted_clv >= 0)
    # Discounting takes something off, never more than a year's 10%.
    undiscounted = values.expected_order_value * values.expected_purchases
    assert 0.9 * undiscounted.sum() < values.predicted_clv.sum() < undiscounted.sum()


@pytest.mark.parametrize(
    ("n", "history_days", "reason"),
    [
        (3_000, 30.0, "the history spans 30 days, fewer than clv_min_history_days (60)"),
        (40, 365.0, "customers have a repeat purchase, fewer than clv_min_repeat_customers (50)"),
    ],
)
def test_thin_data_is_not_fitted_and_says_why(n: int, history_days: float, reason: str) -> None:
    histories = simulated_histories(n, history_days=history_days)
    fitted = fit_lifetime_value(histories, 50, 60)
    assert fitted.purchases is None and fitted.spend is None
    assert reason in (fitted.purchases_reason or "")
    values = customer_values(None, None, histories, 7, 365, 0.1)
    assert np.isnan(values.p_alive).all() and np.isnan(values.predicted_clv).all()


def test_no_customers_is_a_reason_not_a_crash() -> None:
    empty = np.array([], dtype=float)
    fitted = fit_lifetime_value(Histories(empty, empty, empty, empty, empty, 0.0), 50, 60)
    assert fitted.purchases_reason == "no customer has a purchase before the date"


def test_customers_who_returned_everything_are_worth_nothing() -> None:
    histories = simulated_histories(3_000)
    net = histories.net_value.copy()
    net[:100] = 0.0
    returned = Histories(histories.x, histories.t_x, histories.t, histories.repeat_mean_value,
                         net, histories.history_days)  # fmt: skip
    fitted = fit_lifetime_value(returned, 50, 60)
    values = customer_values(
        fitted.purchases.bg_nbd, fitted.spend.gamma_gamma, returned, 7, 365, 0.1
    )
    assert (values.expected_order_value[:100] == 0).all()
    assert (values.predicted_clv[:100] == 0).all()
    assert (values.expected_order_value[100:] > 0).all()
    # They are left out of the spend fit.
    assert fitted.spend.n_customers == int(np.count_nonzero(returned.spend_rows))


def test_parameters_table_round_trip_and_reasons() -> None:
    histories = simulated_histories(3_000)
    fitted = fit_lifetime_value(histories, 50, 60)
    thin = fit_lifetime_value(simulated_histories(40), 50, 60)
    rows = parameters_rows("snapshot", fitted, dt.date(2011, 12, 10), CONFIG)
    rows += parameters_rows("calibration", thin, dt.date(2011, 6, 6), CONFIG)
    table = parameters_table(rows)
    assert table.num_rows == 14
    purchases, spend = fitted_parameters(table, "snapshot")
    assert purchases == fitted.purchases.bg_nbd and spend == fitted.spend.gamma_gamma
    assert fitted_parameters(table, "calibration") == (None, None)
    calibration = table.filter(pa.compute.equal(table["fit"], "calibration")).to_pylist()
    assert {r["estimate"] for r in calibration} == {None}
    assert all("clv_min_repeat_customers" in r["null_reason"] for r in calibration)
    assert {r["time_unit"] for r in table.to_pylist()} == {"week"}


def test_a_cutoff_after_the_snapshot_leaves_no_holdout() -> None:
    table = pa.table(
        {
            "holdout_length": [-2.0],
            "as_of_date": [dt.date(2012, 1, 1)],
            "holdout_end": [dt.date(2011, 12, 10)],
        }
    )
    assert "not before the snapshot date 2011-12-10" in no_holdout_reason(table)
    assert no_holdout_reason(table.slice(0, 0)) is None


def test_holdout_predictions_need_a_repeat_purchase_for_spend() -> None:
    histories = simulated_histories(500)
    purchases = BgNbdParameters(0.5, 6.0, 0.7, 3.0)
    spend = GammaGammaParameters(5.0, 3.0, 40.0)
    expected, value = holdout_predictions(purchases, spend, histories, 26.0)
    assert np.all(expected >= 0)
    assert np.isnan(value[histories.x == 0]).all()
    assert np.isfinite(value[histories.spend_rows]).all()


def test_clv_vars_are_validated() -> None:
    with pytest.raises(ConfigError, match="clv_time_unit"):
        parse_clv_config({**CONFIG.__dict__, "clv_time_unit": "month"})
    good = {
        "clv_time_unit": "day",
        "clv_horizon_days": 90,
        "clv_annual_discount_rate": 0.0,
        "clv_min_repeat_customers": 1,
        "clv_min_history_days": 1,
    }
    assert parse_clv_config(good).horizon == 90
    with pytest.raises(ConfigError, match="clv_annual_discount_rate"):
        parse_clv_config({**good, "clv_annual_discount_rate": 2})


def test_a_fit_that_does_not_converge_leaves_null_values_with_the_reason() -> None:
    # Everyone bought at the snapshot: nobody is seen to drop out, no interior maximum.
    x = np.tile([1.0, 2.0, 3.0, 4.0], 50)
    loyal = Histories(x, np.full(200, 20.0), np.full(200, 20.0), np.full(200, 30.0),
                      np.full(200, 90.0), 140.0)  # fmt: skip
    fitted = fit_lifetime_value(loyal, 50, 60)
    assert fitted.purchases is not None and not fitted.purchases.converged
    assert fitted.purchases_reason.startswith("the BG/NBD fit did not converge: no interior")
    rows = parameters_rows("snapshot", fitted, dt.date(2011, 12, 10), CONFIG)
    purchases, _ = fitted_parameters(parameters_table(rows), "snapshot")
    assert purchases is None  # the stopping point is stored, but not used
    bg_rows = [r for r in rows if r["model"] == "bg_nbd"]
    assert all(r["estimate"] is not None and r["null_reason"] for r in bg_rows)


def test_a_spend_fit_running_along_the_ridge_says_what_it_means() -> None:
    from customer_segmentation.ml.clv import ClvFit
    from customer_segmentation.ml.lifetime_value import _fit_reason

    ridge = ClvFit("gamma_gamma", ("p", "q", "v"), (0.2, 2.2e5, 2.0e8), None, -1.0, 100, 90,
                   False, "ABNORMAL: ")  # fmt: skip
    reason = _fit_reason(ridge, "Gamma-Gamma")
    assert reason.startswith("the Gamma-Gamma fit did not converge: the likelihood keeps rising")
    assert "q = 2.2e+05, v = 2e+08" in reason
