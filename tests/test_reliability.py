"""Bad input, accounting, determinism and recovery, each through real dbt builds.

The reader's messages for bad files are checked where dbt gets them, the plugin's load
(test_ingest.py); the messages here come from SQL, the vars or the models, with the audit beside.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from conftest import DBT, ONLINE_RETAIL_COLUMNS, PROJECT_ROOT, DbtRun, background_build, run_dbt
from customer_segmentation.report import page as report

pytestmark = pytest.mark.dbt

SUBSET_FILTER = "CustomerID < 12700 or (CustomerID is null and InvoiceNo < '537000')"
# A build that fails in the first ml model: only it and the audit, without data tests.
UP_TO_SCALING = ["build", "--select", "+scaler_parameters", "+data_quality_audit"]
UP_TO_SCALING += ["--exclude-resource-type", "test"]


def write_subset(path: Path) -> Path:
    """About 330 customers of the bundled data (every cleaning class occurs)."""
    with duckdb.connect() as con:
        con.execute(
            f"copy (select * from '{PROJECT_ROOT / 'data' / 'online_retail.parquet'}' "
            f"where {SUBSET_FILTER}) to '{path}' (format parquet)"
        )
    return path


def subset_vars(path: Path) -> dict:
    """The vars of the subset's builds: migration by quarter (the bundled build's is monthly)."""
    return {"raw_transactions_path": str(path), "migration_period": "quarter",
            "migration_months": 9}  # fmt: skip


@background_build
def subset_build(workdir: Path) -> DbtRun:
    """One full build on the subset (read-only), the reference the other builds are compared to."""
    return run_dbt(["build"], workdir, subset_vars(write_subset(workdir / "subset.parquet")))


@pytest.fixture(scope="module")
def subset(subset_build: DbtRun) -> Path:
    """The subset's file (that subset_build read)."""
    return subset_build.workdir / "subset.parquet"


@background_build
def shuffled_build(workdir: Path) -> DbtRun:
    """The subset with its rows in another order, built as subset_build."""
    subset = write_subset(workdir / "subset.parquet")
    shuffled = workdir / "shuffled.parquet"
    with duckdb.connect() as con:
        con.execute(
            f"copy (select * from '{subset}' "
            "order by hash(InvoiceNo, StockCode, Quantity, UnitPrice)) "
            f"to '{shuffled}' (format parquet)"
        )
    return run_dbt(["build"], workdir, subset_vars(shuffled))


@background_build
def doubled_build(workdir: Path) -> DbtRun:
    """Every line of the subset twice, built up to customer_features."""
    subset = write_subset(workdir / "subset.parquet")
    doubled = workdir / "doubled.parquet"
    with duckdb.connect() as con:
        con.execute(
            f"copy (select * from '{subset}' union all select * from '{subset}') to '{doubled}'"
            " (format parquet)"
        )
    return run_dbt(["build", "--select", "+customer_features", "--indirect-selection",
                    "cautious"], workdir, {"raw_transactions_path": str(doubled)})  # fmt: skip


@background_build
def snapshot_build(workdir: Path) -> DbtRun:
    """The subset built with snapshot_date 2011-09-01 (orders to 2011-12-09)."""
    subset = write_subset(workdir / "subset.parquet")
    variables = {"raw_transactions_path": str(subset), "snapshot_date": "2011-09-01"}
    return run_dbt(["build"], workdir, variables)


def csv_lines(path: Path, rows: list[tuple], header: list[str] = ONLINE_RETAIL_COLUMNS) -> Path:
    text = "\n".join([",".join(header), *(",".join(str(v) for v in row) for row in rows)])
    path.write_text(text + "\n", encoding="utf-8")
    return path


def customer_orders(customer: int, n_orders: int, start: dt.date, amount: float) -> list[tuple]:
    """Lines of one customer: n orders, 15 days apart, each one line worth `amount`."""
    return [
        (
            f"{customer}{i:03d}",
            "85123A",
            "HEART",
            2,
            f"{start + dt.timedelta(days=15 * i)} 10:00",
            amount / 2,
            customer,
            "United Kingdom",
        )
        for i in range(n_orders)
    ]


def audit_total(run: DbtRun) -> int:
    return run.scalar("select sum(n_rows) from data_quality_audit")


def table_hash(run: DbtRun, table: str, key: str) -> str:
    return run.scalar(
        f"select md5(string_agg(cast(t as varchar), '|' order by {key})) from {table} as t"
    )


# Bad input ---------------------------------------------------------------------------------


def test_invalid_vars_are_named_before_any_work(dbt_runner: Callable[..., DbtRun]) -> None:
    variables = {"snapshot_date": "2011-02-30", "outlier_percentile": 99, "refit": "sometimes",
                 "drift_max_psi": 0, "refit_after_days": -1, "currency": "pounds",
                 "report_top_customers": 0}  # fmt: skip
    run = dbt_runner(["build"], variables)
    assert run.returncode != 0
    assert "snapshot_date: 2011-02-30 is not a date" in run.output
    assert "outlier_percentile: expected a number between 0 and 1 (exclusive), got 99" in run.output
    assert "refit: expected true or false, got sometimes" in run.output
    assert "refit_after_days: expected a number of days >= 0 or null, got -1" in run.output
    assert "drift_max_psi: expected a number > 0, got 0" in run.output
    assert "currency: expected a three-letter ISO 4217 code in capitals" in run.output
    assert "report_top_customers: expected a whole number >= 1, got 0" in run.output


def test_every_price_non_positive_fails_clearly_after_counting(
    tmp_path: Path, dbt_runner: Callable[..., DbtRun]
) -> None:
    rows = [
        (*row[:5], 0.0, *row[6:])
        for c in range(1, 6)
        for row in customer_orders(c, 3, dt.date(2011, 1, 1), 10)
    ]
    path = csv_lines(tmp_path / "free.csv", rows)
    run = dbt_runner(UP_TO_SCALING, {"raw_transactions_path": str(path)})
    assert run.returncode != 0
    assert "0 customer(s) are too few to evaluate k=2" in run.output
    # The build got as far as the audit, and it accounts for every line.
    assert audit_total(run) == len(rows)
    assert (
        run.scalar("select n_rows from data_quality_audit where row_class = 'non_positive_price'")
        == 15
    )


@pytest.mark.parametrize(
    ("n_customers", "variables", "expected"),
    [
        # One customer (k=2): the build that test_messages.py reads for the first line and
        # the summary.
        (4, {"n_clusters": 5}, "4 customer(s) are too few to evaluate k=5 (need at least 6)"),
    ],
    ids=["fewer_customers_than_k"],
)
def test_too_few_customers_fail_clearly(
    tmp_path: Path,
    dbt_runner: Callable[..., DbtRun],
    n_customers: int,
    variables: dict,
    expected: str,
) -> None:
    rows = [
        row
        for c in range(1, n_customers + 1)
        for row in customer_orders(c, c, dt.date(2011, 1, 1), 10.0 * c)
    ]
    path = csv_lines(tmp_path / "few.csv", rows)
    run = dbt_runner(UP_TO_SCALING, {"raw_transactions_path": str(path), **variables})
    assert run.returncode != 0
    assert expected in run.output
    assert audit_total(run) == len(rows)


# Documented results ------------------------------------------------------------------------


def test_orders_after_a_set_snapshot_date_are_left_out_and_counted(
    snapshot_build: DbtRun,
) -> None:
    run = snapshot_build
    assert run.returncode == 0, run.output[-5000:]
    assert run.scalar("select max(last_order_date) from customer_features") < dt.date(2011, 9, 1)
    later = run.scalar(
        "select count(*) from int_orders_aggregated where order_date >= '2011-09-01'"
    )
    assert later > 0
    assert run.scalar("select n_orders_after_snapshot from clustering_runs") == later
    assert "warn_orders_after_snapshot_date" in run.output
    assert audit_total(run) == run.scalar("select count(*) from raw.transactions")


def test_the_same_content_twice_gives_the_same_features(
    subset_build: DbtRun, doubled_build: DbtRun
) -> None:
    once, twice = subset_build, doubled_build
    assert once.returncode == 0 and twice.returncode == 0, twice.output[-3000:]
    assert table_hash(once, "customer_features", "customer_id") == table_hash(
        twice, "customer_features", "customer_id"
    )
    n_lines = once.scalar("select count(*) from raw.transactions")
    assert twice.scalar("select count(*) from int_transaction_lines_classified") == 2 * n_lines
    # Every second copy is an exact duplicate (or keeps the class an earlier rule gave it).
    assert (
        twice.scalar(
            "select count(*) from int_transaction_lines_classified where is_exact_duplicate"
        )
        >= n_lines
    )


# Determinism and recovery ------------------------------------------------------------------


COMPARED_TABLES = [
    ("customer_segments", "customer_id"),
    ("cluster_centroids", "cluster_id, feature"),
    ("cluster_model_selection", "algorithm, k"),
]


def test_builds_are_identical_also_with_shuffled_rows(
    subset_build: DbtRun, shuffled_build: DbtRun
) -> None:
    # The same file built again gives the same tables too: the build that completes a killed
    # one (next test) is compared to the same reference.
    first, third = subset_build, shuffled_build
    for run in (first, third):
        assert run.returncode == 0, run.output[-5000:]
    for table, key in COMPARED_TABLES:
        expected = table_hash(first, table, key)
        assert table_hash(third, table, key) == expected, table


def test_a_killed_build_is_completed_by_the_next_one(
    subset: Path, subset_build: DbtRun, tmp_path: Path
) -> None:
    database = tmp_path / "interrupted.duckdb"
    env = {**os.environ, "DBT_DUCKDB_PATH": str(database), "DBT_PROFILES_DIR": str(PROJECT_ROOT)}
    command = [
        str(DBT),
        "build",
        "--target-path",
        str(tmp_path / "target"),
        "--log-path",
        str(tmp_path / "logs"),
        "--exclude-resource-type",  # as run_dbt: the bundled build runs the unit tests
        "unit_test",
        "--vars",
        json.dumps(subset_vars(subset)),
    ]
    process = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    # Kill it once the first Python model has started: the features are built, the models
    # and the marts are not.
    deadline = time.monotonic() + 120
    for line in process.stdout:
        if "[scaler_parameters]" in line or time.monotonic() > deadline:
            break
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode != 0
    # The build log says the build never finished, and the report refuses its tables.
    with (
        duckdb.connect(str(database), read_only=True) as con,
        pytest.raises(report.ReportError, match=r"did not finish \(killed, or still running\)"),
    ):
        report.check_latest_build(con, database)

    # Same target directory, database and vars: dbt reuses the killed build's parse.
    again = run_dbt(["build"], tmp_path, subset_vars(subset), database)
    assert again.returncode == 0, again.output[-5000:]
    assert again.scalar("select count(*) from customer_segments") == again.scalar(
        "select count(*) from customer_features"
    )
    # And its tables are those of a build from scratch on the same file.
    assert subset_build.returncode == 0, subset_build.output[-5000:]
    for table, key in COMPARED_TABLES:
        assert table_hash(again, table, key) == table_hash(subset_build, table, key), table


def test_migration_by_quarter_pairs_equal_quarters_and_a_quarter_to_date(
    subset_build: DbtRun,
) -> None:
    run = subset_build  # built with migration_period quarter, migration_months 9
    assert run.returncode == 0, run.output[-5000:]
    periods = run.query(
        "select distinct from_snapshot_date, to_snapshot_date, period_kind, period_days"
        " from segment_migration order by 1"
    )
    # Quarter ends in the last 9 months of data ending 2011-12-09, then the quarter to date.
    assert periods == [
        (dt.date(2011, 4, 1), dt.date(2011, 7, 1), "quarter", 91),
        (dt.date(2011, 7, 1), dt.date(2011, 10, 1), "quarter", 92),
        (dt.date(2011, 10, 1), dt.date(2011, 12, 10), "quarter_to_date", 70),
    ]
