"""Hostile but real-world files through real builds, checked against what the file was made of.

Each file is made here from a known list of customers and orders, so the expected customer
count, order count and money per customer come from that list, not from the pipeline.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import ONLINE_RETAIL_COLUMNS, DbtRun, background_build, run_dbt
from customer_segmentation.report import page as report

pytestmark = pytest.mark.dbt

FEATURES_ONLY = ["build", "--select", "+customer_features", "--indirect-selection", "cautious"]
NO_DATA_TESTS = ["--exclude-resource-type", "test"]
START = dt.datetime(2011, 1, 3, 10, 0)


@dataclass(frozen=True)
class Order:
    """One order of the made-up file: its invoice number, customer, time and lines."""

    invoice: str
    customer: int | str
    at: dt.datetime
    quantity: int
    price: str

    @property
    def value(self) -> Decimal:
        return self.quantity * Decimal(self.price)


def made_up_orders(ids: list[int | str]) -> list[Order]:
    """Customer i orders 1 + i % 5 times, 15 days apart; invoice numbers restart per customer.

    Invoice numbers are reused across customers (every customer's first order is invoice 1),
    as when two stores number their invoices from 1.
    """
    orders = []
    for i, customer in enumerate(ids):
        for n in range(1 + i % 5):
            price = "0.00004" if i == 3 else f"{1 + i % 7}.25"
            quantity = 1_000_000 if i == 3 else 2 + n
            at = START + dt.timedelta(days=i + 15 * n, hours=i % 8)
            orders.append(Order(str(n + 1), customer, at, quantity, price))
    return orders


def hostile_ids(n: int) -> list[int]:
    """Ids at and beyond 2^53 (distinct there, merged by a double) and up to 2^63 - 1."""
    big = [2**53 + 1, 2**53 + 2, 2**63 - 1, 2**63 - 2, 10**16 + 1, 10**16 + 3]
    return big + [12346 + i for i in range(n - len(big))]


def write_hostile_csv(path: Path, orders: list[Order]) -> int:
    """The orders as a CSV with offsets after the times, guests, and two stray dates."""
    rows = [
        # Every line the same product: distinct_products has no spread (a single-product shop).
        f"{o.invoice},85123A,HEART,{o.quantity},{o.at:%Y-%m-%d %H:%M:%S}+01:00,{o.price},"
        f"{o.customer},United Kingdom"
        for o in orders
    ]
    first = orders[0]
    rows += [
        f"900001,85123A,HEART,1,2099-06-01 10:00:00,2.50,{first.customer},United Kingdom",
        f"900002,85123A,HEART,1,1970-01-01 00:00:00,2.50,{first.customer},United Kingdom",
        "900003,85123A,HEART,1,2011-02-01 10:00:00,2.50, ,United Kingdom",
        "900004,85123A,HEART,1,2011-02-01 10:00:00,2.50,,United Kingdom",
    ]
    path.write_text("\n".join([",".join(ONLINE_RETAIL_COLUMNS), *rows]) + "\n")
    return len(rows)


def expected_money(orders: list[Order]) -> dict[object, Decimal]:
    money: dict[object, Decimal] = {}
    for order in orders:
        money[order.customer] = money.get(order.customer, Decimal(0)) + order.value
    return money


# Every hazard of a legal database file name at once: a leading digit, a space, an SQL keyword,
# a hyphen, accents and a second dot.
HOSTILE_FILE_NAME = "2024 select-kundenübersicht.v2.duckdb"


@background_build
def hostile(workdir: Path) -> tuple[DbtRun, list[Order], int]:
    """One full build on 40 customers with 64-bit ids, reused invoices, tiny prices, offsets,
    into a database file named HOSTILE_FILE_NAME (read-only: copy it to build into it).
    """
    orders = made_up_orders(hostile_ids(40))
    n_lines = write_hostile_csv(workdir / "hostile.csv", orders)
    run = run_dbt(["build"], workdir, {"raw_transactions_path": str(workdir / "hostile.csv")},
                  database=workdir / HOSTILE_FILE_NAME)  # fmt: skip
    assert run.returncode == 0, run.output[-5000:]
    return run, orders, n_lines


def test_any_database_file_name_builds(hostile: tuple[DbtRun, list[Order], int]) -> None:
    run, _, n_lines = hostile  # the fixture's build succeeded
    assert run.database.name == HOSTILE_FILE_NAME
    csv = run.database.parent / "hostile.csv"
    with duckdb.connect() as con:
        counted = con.sql(f"select count(*) from read_csv('{csv}', all_varchar = true)")
        assert counted.fetchall() == [(n_lines,)]
    assert run.scalar("select count(*) from raw.transactions") == n_lines
    assert run.scalar("select count(*) from customer_features") > 0


def test_64_bit_ids_survive_every_table(hostile: tuple[DbtRun, list[Order], int]) -> None:
    run, orders, _ = hostile
    ids = sorted({o.customer for o in orders})
    tables = ["customer_features", "customer_clusters", "customer_segments", "customer_value"]
    for table in [*tables, "customer_purchase_histories"]:
        assert [r[0] for r in run.query(f"select customer_id from {table} order by 1")] == ids
    assert run.scalar("select typeof(customer_id) from customer_segments limit 1") == "BIGINT"


def test_reused_invoice_numbers_stay_separate_orders(
    hostile: tuple[DbtRun, list[Order], int],
) -> None:
    run, orders, _ = hostile
    assert run.scalar("select count(*) from int_orders_aggregated") == len(orders)
    assert run.scalar("select sum(frequency) from customer_features") == len(orders)
    shared = {o.invoice for o in orders} - {
        o.invoice for o in orders if sum(p.invoice == o.invoice for p in orders) == 1
    }
    assert run.scalar("select n_shared_invoices from clustering_runs") == len(shared)
    assert "warn_invoices_shared_by_customers" in run.output
    assert (
        run.scalar("select count(*) from product_sales where n_orders = " + str(len(orders))) == 1
    )


def test_money_per_customer_is_exact_also_for_tiny_prices(
    hostile: tuple[DbtRun, list[Order], int],
) -> None:
    run, orders, _ = hostile
    got = {
        customer: Decimal(str(value))
        for customer, value in run.query(
            "select customer_id, cast(sum(order_value) as varchar) from int_orders_aggregated "
            "group by 1"
        )
    }
    assert got == expected_money(orders)
    assert expected_money(orders)[orders[0].customer] > 0
    tiny = hostile_ids(40)[3]
    assert got[tiny] == 4 * Decimal("40")  # 4 orders of 1,000,000 units at 0.00004


def test_stray_dates_are_counted_and_do_not_move_the_snapshot(
    hostile: tuple[DbtRun, list[Order], int],
) -> None:
    run, orders, n_lines = hostile
    audit = dict(run.query("select row_class, n_rows from data_quality_audit"))
    assert sum(audit.values()) == n_lines
    assert audit["implausible_date"] == 2
    assert audit["missing_customer"] == 2  # a blank and a whitespace id: guests
    assert audit["kept"] == len(orders)
    last = max(o.at for o in orders).date()
    assert run.scalar("select max(snapshot_date) from customer_features") == last + dt.timedelta(1)


def test_offsets_after_the_time_keep_the_written_hour(
    hostile: tuple[DbtRun, list[Order], int],
) -> None:
    run, orders, _ = hostile
    hours = {o.customer: o.at.hour for o in orders}  # each customer orders at one hour
    assert dict(run.query("select customer_id, mean_order_hour from customer_features")) == hours


def test_a_feature_without_spread_is_left_out_and_recorded(
    hostile: tuple[DbtRun, list[Order], int],
) -> None:
    run, _, _ = hostile
    # One product, and no returns: neither feature can tell two customers apart.
    assert run.query("select feature from scaler_parameters where not is_used order by 1") == [
        ("distinct_products",),
        ("return_rate",),
    ]
    unused = run.scalar("select unused_features from clustering_runs")
    assert unused.startswith("feature distinct_products: standard deviation is 0")
    assert "distinct_products" not in run.scalar("select clustering_features from clustering_runs")
    assert "[scaler_parameters] WARNING: feature distinct_products" in run.output


def test_too_few_repeat_customers_leave_lifetime_values_null_with_the_reason(
    hostile: tuple[DbtRun, list[Order], int],
) -> None:
    run, _, _ = hostile
    n_repeat = sum(1 for i in range(40) if i % 5 > 0)  # made_up_orders: 1 + i % 5 orders
    reasons = run.query("select distinct fit, null_reason from clv_model_parameters order by 1")
    assert reasons == [
        ("calibration", reasons[0][1]),
        ("snapshot", f"{n_repeat} customers have a repeat purchase, fewer than "
                     "clv_min_repeat_customers (50)"),
    ]  # fmt: skip
    assert run.scalar("select count(*) from clv_model_parameters where estimate is not null") == 0
    assert run.query(
        "select count(*), count(p_alive), count(predicted_clv), min(null_reason)"
        " from customer_value"
    ) == [(40, 0, 0, reasons[1][1])]
    # The segmentation builds all the same, and the build says why the values are missing.
    assert run.scalar("select count(distinct cluster_id) from customer_segments") >= 2
    assert "[clv_model_parameters] WARNING: snapshot fit: 32 customers" in run.output
    assert "warn_clv_models_not_fitted" in run.output


def test_a_failed_build_on_the_same_database_is_refused_by_the_report(
    hostile: tuple[DbtRun, list[Order], int], tmp_path: Path
) -> None:
    run, _, _ = hostile
    # A copy of the good database, then a file whose clustering fails (every customer alike)
    # built into it: the audit and features are rebuilt, the segments are not.
    database = tmp_path / "copied.duckdb"
    database.write_bytes(run.database.read_bytes())
    report.load_marts(database)  # the good build is accepted
    alike = [Order(str(c), c, START, 2, "1.25") for c in range(1, 13)]
    other = {"raw_transactions_path": str(tmp_path / "alike.csv")}
    write_hostile_csv(tmp_path / "alike.csv", alike)
    # A partial build of another file succeeds, and still leaves two files' tables. (Both
    # builds without data tests: the build log records models; the failed build runs in the
    # same directory, and dbt reuses this one's parse.)
    partial = run_dbt([*FEATURES_ONLY, *NO_DATA_TESTS], tmp_path, other, database)
    assert partial.returncode == 0, partial.output[-3000:]
    with pytest.raises(report.ReportError, match=r"dbt build started .* UTC \(.*\) read .*alike"
                       r"\.csv, but the last complete build read .*hostile\.csv"):  # fmt: skip
        report.load_marts(database)
    failed = run_dbt(["build", *NO_DATA_TESTS], tmp_path, other, database)
    assert failed.returncode != 0
    with pytest.raises(report.ReportError, match=r"the latest build, dbt build started .* UTC "
                       r"\(.*\), failed \(scaler_parameters \(error\)"):  # fmt: skip
        report.load_marts(database)


@background_build
def text_ids_build(workdir: Path) -> tuple[DbtRun, list[Order], list[str]]:
    """A full build on customers with text ids (customer_id_type string), from Parquet."""
    ids = [f"C-{1000 + i}" for i in range(30)] + ["alice@example.com", "0042", "42"]
    orders = made_up_orders(ids)
    table = pa.table(
        {
            "InvoiceNo": [o.invoice for o in orders],
            "StockCode": [f"P{i % 4}" for i in range(len(orders))],
            "Description": ["THING"] * len(orders),
            "Quantity": [o.quantity for o in orders],
            "InvoiceDate": [o.at for o in orders],
            "UnitPrice": [float(o.price) for o in orders],
            "CustomerID": [o.customer for o in orders],
            "Country": ["France"] * len(orders),
        }
    )
    pq.write_table(table, workdir / "text_ids.parquet")
    run = run_dbt(
        ["build"],
        workdir,
        {"raw_transactions_path": str(workdir / "text_ids.parquet"), "customer_id_type": "string"},
    )
    return run, orders, ids


def test_text_customer_ids_through_every_table(
    text_ids_build: tuple[DbtRun, list[Order], list[str]],
) -> None:
    run, orders, ids = text_ids_build
    assert run.returncode == 0, run.output[-5000:]
    assert sorted(r[0] for r in run.query("select customer_id from customer_segments")) == sorted(
        ids
    )
    assert run.scalar("select typeof(customer_id) from customer_segments limit 1") == "VARCHAR"
    money = dict(run.query("select customer_id, monetary from customer_features"))
    assert {k: Decimal(str(v)) for k, v in money.items()} == expected_money(orders)


TIME_ZONES = ["UTC", "Asia/Tokyo"]


@background_build
def instants_builds(workdir: Path) -> tuple[list[DbtRun], list[Order]]:
    """Instants (a time-zone-aware column) built up to customer_features once per TZ."""
    orders = made_up_orders([12346 + i for i in range(20)])
    at = pa.array(
        [o.at.replace(tzinfo=dt.UTC) for o in orders], pa.timestamp("us", "Europe/London")
    )
    table = pa.table(
        {
            "InvoiceNo": [o.invoice for o in orders],
            "StockCode": ["85123A"] * len(orders),
            "Description": ["HEART"] * len(orders),
            "Quantity": [o.quantity for o in orders],
            "InvoiceDate": at,
            "UnitPrice": [float(o.price) for o in orders],
            "CustomerID": [o.customer for o in orders],
            "Country": ["France"] * len(orders),
        }
    )
    path = workdir / "instants.parquet"
    pq.write_table(table, path)
    runs = [
        run_dbt(
            FEATURES_ONLY,
            workdir / zone.replace("/", "_"),
            {"raw_transactions_path": str(path)},
            environment={"TZ": zone},
        )
        for zone in TIME_ZONES
    ]
    return runs, orders


def test_instants_give_the_same_features_under_any_tz(
    instants_builds: tuple[list[DbtRun], list[Order]],
) -> None:
    runs, orders = instants_builds
    hashes = []
    for run in runs:  # TZ=UTC, then TZ=Asia/Tokyo
        assert run.returncode == 0, run.output[-3000:]
        hashes.append(
            run.scalar(
                "select md5(string_agg(cast(t as varchar), '|' order by customer_id)) "
                "from customer_features as t"
            )
        )
        hours = {o.customer: o.at.hour for o in orders}  # the instants shown in UTC
        assert dict(run.query("select customer_id, mean_order_hour from customer_features")) == (
            hours
        )
    assert hashes[0] == hashes[1]


@pytest.mark.parametrize(
    ("snapshot", "expected"),
    [
        (
            "2010-06-01",
            "snapshot_date 2010-06-01 is on or before the first kept order (2011-01-03)",
        ),
        ("2013-01-01", "snapshot_date 2013-01-01 is 660 days after the last kept order (2011-03"),
    ],
    ids=["before_the_data", "far_after_the_data"],
)
def test_a_snapshot_date_outside_the_data_is_named(
    tmp_path: Path, snapshot: str, expected: str
) -> None:
    path = tmp_path / "orders.csv"
    write_hostile_csv(path, made_up_orders([12346 + i for i in range(12)]))
    run = run_dbt(FEATURES_ONLY, tmp_path,
                  {"raw_transactions_path": str(path), "snapshot_date": snapshot})  # fmt: skip
    assert expected in run.output
    assert (run.returncode != 0) == (snapshot < "2011")
