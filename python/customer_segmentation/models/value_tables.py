"""Layouts of the lifetime-value tables, written and read back by the DuckDB and Spark models.

``clv_model_parameters`` is written by ``parameters_rows`` and read back by
``fitted_parameters``; the per-customer histories are read by ``histories_from_table`` from
``customer_purchase_histories`` and ``clv_calibration_histories`` (SQL).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from customer_segmentation.config import ClvConfig
from customer_segmentation.errors import SegmentationError
from customer_segmentation.ml.clv import BgNbdParameters, ClvFit, GammaGammaParameters
from customer_segmentation.ml.lifetime_value import Histories, LifetimeValueFit

PARAMETER_NAMES = {"bg_nbd": ("r", "alpha", "a", "b"), "gamma_gamma": ("p", "q", "v")}

# clv_model_parameters' columns and types: written the same on DuckDB and Spark, and a table
# of null estimates (thin data) keeps its types.
PARAMETERS_SCHEMA = pa.schema(
    [
        ("fit", pa.string()),
        ("model", pa.string()),
        ("parameter", pa.string()),
        ("estimate", pa.float64()),
        ("std_error", pa.float64()),
        ("log_likelihood", pa.float64()),
        ("customers", pa.int64()),
        ("distinct_rows", pa.int64()),
        ("converged", pa.bool_()),
        ("null_reason", pa.string()),
        ("frequency_value_correlation", pa.float64()),
        ("time_unit", pa.string()),
        ("fitted_at", pa.date32()),
    ]
)


class HistoryError(SegmentationError, ValueError):
    """A purchase-history table cannot be read as the lifetime-value models need it."""


def histories_from_table(table: pa.Table) -> Histories:
    """The per-customer histories of a table with x, t_x, t, repeat_mean_value, net_value.

    Raises:
        HistoryError: the table mixes several as-of dates or time units.

    """
    for column in ("as_of_date", "time_unit"):
        if pc.count_distinct(table[column]).as_py() > 1:
            raise HistoryError(f"the purchase histories hold several values of {column}")

    def floats(name: str) -> np.ndarray:
        column = table[name].cast(pa.float64()).fill_null(np.nan)
        return column.to_numpy(zero_copy_only=False)

    history_days = 0.0
    if table.num_rows:
        first = pc.min(table["first_purchase_date"]).as_py()
        as_of = table["as_of_date"][0].as_py()
        history_days = float((as_of - first).days)
    return Histories(
        x=floats("x"),
        t_x=floats("t_x"),
        t=floats("t"),
        repeat_mean_value=floats("repeat_mean_value"),
        net_value=floats("net_value"),
        history_days=history_days,
    )


def as_of_date(table: pa.Table) -> dt.date | None:
    """The date a history table is as of (None for an empty table)."""
    return table["as_of_date"][0].as_py() if table.num_rows else None


def no_holdout_reason(calibration: pa.Table) -> str | None:
    """Why a calibration table leaves no holdout period to validate on (None when it does)."""
    if calibration.num_rows and calibration["holdout_length"][0].as_py() <= 0:
        cutoff = calibration["as_of_date"][0].as_py()
        end = calibration["holdout_end"][0].as_py()
        return (
            f"the calibration cut-off {cutoff} (var clv_calibration_end) is not before the "
            f"snapshot date {end}: no holdout period to validate on"
        )
    return None


def _fit_rows(
    fit: ClvFit | None, model: str, reason: str | None, correlation: float | None
) -> list[dict[str, object]]:
    names = PARAMETER_NAMES[model]
    usable = fit is not None and fit.estimates is not None
    rows = []
    for i, name in enumerate(names):
        rows.append(
            {
                "model": model,
                "parameter": name,
                "estimate": fit.estimates[i] if usable else None,  # type: ignore[union-attr,index]
                "std_error": (
                    fit.standard_errors[i]  # type: ignore[union-attr,index]
                    if usable and fit.standard_errors is not None  # type: ignore[union-attr]
                    else None
                ),
                "log_likelihood": fit.log_likelihood if fit is not None else None,
                "customers": fit.n_customers if fit is not None else None,
                "distinct_rows": fit.n_distinct if fit is not None else None,
                "converged": fit.converged if fit is not None else False,
                "null_reason": reason,
                "frequency_value_correlation": correlation,
            }
        )
    return rows


def parameters_rows(
    label: str, fitted: LifetimeValueFit, fitted_at: dt.date | None, config: ClvConfig
) -> list[dict[str, object]]:
    """The rows of one fit (``snapshot`` or ``calibration``): both models' parameters."""
    correlation = fitted.frequency_value_correlation
    correlation = None if correlation is None or np.isnan(correlation) else float(correlation)
    rows = _fit_rows(fitted.purchases, "bg_nbd", fitted.purchases_reason, None)
    rows += _fit_rows(fitted.spend, "gamma_gamma", fitted.spend_reason, correlation)
    for row in rows:
        row.update(fit=label, time_unit=config.time_unit, fitted_at=fitted_at)
    return rows


def parameters_table(rows: list[dict[str, object]]) -> pa.Table:
    """``clv_model_parameters`` from the rows of its fits."""
    return pa.Table.from_pylist(rows, schema=PARAMETERS_SCHEMA)


def fitted_parameters(
    table: pa.Table, label: str
) -> tuple[BgNbdParameters | None, GammaGammaParameters | None]:
    """The usable parameters of one fit in ``clv_model_parameters`` (None: no usable fit).

    A model's parameters are usable when every estimate is there and it has no null_reason.
    """
    found: dict[str, dict[str, float]] = {"bg_nbd": {}, "gamma_gamma": {}}
    unusable = set()
    for row in table.to_pylist():
        if row["fit"] != label:
            continue
        if row["null_reason"] is not None or row["estimate"] is None:
            unusable.add(row["model"])
        else:
            found[row["model"]][row["parameter"]] = float(row["estimate"])

    def complete(model: str) -> bool:
        return model not in unusable and set(found[model]) == set(PARAMETER_NAMES[model])

    purchases = BgNbdParameters(**found["bg_nbd"]) if complete("bg_nbd") else None
    spend = GammaGammaParameters(**found["gamma_gamma"]) if complete("gamma_gamma") else None
    return purchases, spend
