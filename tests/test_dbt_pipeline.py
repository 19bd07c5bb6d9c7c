"""End-to-end: dbt builds on small files made here, and on the bundled data."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import (
    ONLINE_RETAIL_COLUMNS,
    PROJECT_ROOT,
    DbtRun,
    background_build,
    copy_database,
    run_dbt,
    show_rows,
)

pytestmark = pytest.mark.dbt

# One or more lines per cleaning class; the comment names the class each line must get.
FIXTURE_LINES = [
    ("536365", "85123A", "HEART", 6, "2010-12-01 08:26", 2.55, 17850, "United Kingdom"),  # kept
    ("536365", "71053", "LANTERN", 6, "2010-12-01 08:26", 3.39, 17850, "United Kingdom"),  # kept
    ("536365", "71053", "LANTERN", 6, "2010-12-01 08:26", 3.39, 17850, "United Kingdom"),  # dup
    ("536366", "22633", "MUG", 6, "2010-12-01 08:28", 1.85, None, "United Kingdom"),  # missing
    ("C536379", "22633", "MUG", -2, "2010-12-01 09:41", 1.85, None, "United Kingdom"),  # missing
    ("A563185", "B", "Adjust bad debt", 1, "2011-08-12 14:50", 11062.06, 17850, "UK"),  # adjust
    ("C536380", "71053", "LANTERN", -1, "2010-12-02 10:00", 3.39, 17850, "United Kingdom"),  # canc
    ("536370", "POST", "POSTAGE", 3, "2010-12-01 08:45", 18.0, 12583, "France"),  # non_product
    ("536370", "22728", "ALARM CLOCK", 24, "2010-12-01 08:45", 3.75, 12583, "France"),  # kept
    ("536371", "22139", "DAMAGED", -12, "2010-12-03 09:00", 1.25, 12583, "France"),  # non_pos qty
    ("536372", "22140", "FREE", 2, "2010-12-04 09:00", 0.0, 12583, "France"),  # non_pos price
    ("536373", "21730", "LANTERN", 6, "2011-01-04 09:09", 4.25, 12583, "France"),  # kept
    ("536374", "21730", "LANTERN", 6, "2099-01-04 09:09", 4.25, 12583, "France"),  # stray date
]
# Three customers cannot be clustered (that is tested on its own); these builds stop before ml.
WITHOUT_CLUSTERING = ["build", "--exclude", "models/ml+"]

EXPECTED_CLASSES = {
    "missing_customer": 2,
    "implausible_date": 1,
    "adjustment": 1,
    "cancellation": 1,
    "non_product": 1,
    "non_positive_quantity": 1,
    "non_positive_price": 1,
    "duplicate": 1,
    "kept": 4,
}


def write_fixture(path: Path, columns: list[str], lines: list[tuple]) -> Path:
    """Write lines as Parquet or CSV (by suffix)."""
    table = pa.table({c: [line[i] for line in lines] for i, c in enumerate(columns)})
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    else:
        header = ",".join(f'"{c}"' for c in columns)
        body = [",".join("" if v is None else str(v) for v in line) for line in lines]
        path.write_bytes(("\n".join([header, *body]) + "\n").encode("latin-1"))
    return path


def audit(run: DbtRun) -> dict[str, int]:
    return dict(run.query("select row_class, n_rows from data_quality_audit"))


@background_build
def fixture_build(workdir: Path) -> DbtRun:
    """The fixture lines as Parquet, built up to the marts that need no clustering (read-only)."""
    path = write_fixture(workdir / "lines.parquet", ONLINE_RETAIL_COLUMNS, FIXTURE_LINES)
    return run_dbt(WITHOUT_CLUSTERING, workdir, {"raw_transactions_path": str(path)})


@background_build
def csv_build(workdir: Path) -> tuple[DbtRun, Path]:
    """The fixture lines as a latin-1 CSV in the Online Retail II spelling, with customer
    attributes from a file whose path has a quote in it; built as `fixture_build` (read-only).
    """
    columns = ["Invoice", "StockCode", "Description", "Quantity", "InvoiceDate", "Price"]
    columns += ["Customer ID", "Country"]
    lines = [(*line[:2], "CAFÉ " + line[2], *line[3:]) for line in FIXTURE_LINES]
    path = write_fixture(workdir / "lines ii.csv", columns, lines)
    attributes = workdir / "it's attributes.csv"  # a quote in the path must not break the SQL
    attributes.write_text("customer_id,age,gender\n12583,34,f\n99999,50,m\n")
    variables = {"raw_transactions_path": str(path), "customer_attributes_path": str(attributes)}
    return run_dbt(WITHOUT_CLUSTERING, workdir, variables), path


def test_every_line_is_classified_and_counted(fixture_build: DbtRun) -> None:
    run = fixture_build
    assert run.returncode == 0, run.output[-5000:]
    assert audit(run) == EXPECTED_CLASSES
    assert sum(audit(run).values()) == len(FIXTURE_LINES)
    orders = run.query("select invoice_id, n_items from int_orders_aggregated order by 1")
    assert orders == [("536365", 12), ("536370", 24), ("536373", 6)]
    # Two customers with kept orders: features and exactly one RFM segment each.
    features = run.query(
        "select customer_id, snapshot_date, recency_days, frequency, monetary"
        " from customer_features order by 1"
    )
    assert features == [
        (12583, dt.date(2011, 1, 5), 1, 2, 115.5),
        # Net of the cancelled lantern (C536380, 3.39): 35.64 - 3.39.
        (17850, dt.date(2011, 1, 5), 35, 1, 32.25),
    ]
    assert run.scalar("select count(distinct customer_id) from customer_rfm_segments") == 2
    # Too few customers and too short a history: warnings, not failures.
    assert "warn_too_few_customers_for_segmentation" in run.output
    assert "warn_short_history_for_segmentation" in run.output


def test_a_repeated_line_id_fails_the_dense_key_test(fixture_build: DbtRun, tmp_path: Path) -> None:
    import duckdb

    assert fixture_build.returncode == 0, fixture_build.output[-5000:]
    # A copy of the fixture's database (its data_quality_audit and parents), one line repeated.
    database = copy_database(fixture_build, tmp_path / "test.duckdb")
    with duckdb.connect(str(database)) as con:
        con.execute(
            "insert into int_transaction_lines_classified "
            "select * from int_transaction_lines_classified where transaction_line_id = 1"
        )
    path = fixture_build.database.parent / "lines.parquet"
    checked = run_dbt(
        ["test", "--select", "int_transaction_lines_classified"],
        tmp_path,
        {"raw_transactions_path": str(path)},
        database,
    )
    assert checked.returncode != 0
    assert "FAIL 1 unique_dense_key_int_transaction_lines_classified_transaction_line_id" in (
        checked.output
    )
    assert "PASS not_null_int_transaction_lines_classified_transaction_line_id" in checked.output


def test_online_retail_ii_spelling_in_latin1_csv(csv_build: tuple[DbtRun, Path]) -> None:
    run, _ = csv_build
    assert run.returncode == 0, run.output[-5000:]
    assert audit(run) == EXPECTED_CLASSES
    descriptions = run.query("select distinct product_description from product_sales")
    assert ("CAFÉ HEART",) in descriptions


def test_file_without_required_columns_fails_with_their_names(tmp_path: Path, dbt_runner) -> None:
    # The one build that shows a reader error reaching dbt's output; every message of the
    # reader is checked where dbt gets it, the plugin's load (test_ingest.py).
    columns = ["Bill", "SKU", "Description", "Qty", "When", "UnitPrice", "Cust"]
    lines = [line[:7] for line in FIXTURE_LINES]
    path = write_fixture(tmp_path / "odd.csv", columns, lines)
    run = dbt_runner(["build"], {"raw_transactions_path": str(path)})
    assert run.returncode != 0
    assert f"{path}: missing required column(s)" in run.output
    for name in ("InvoiceDate", "CustomerID", "Country"):
        assert name in run.output
    assert (
        "missing required column(s): InvoiceNo (accepted: InvoiceNo / Invoice); StockCode"
        in run.output
    )
    assert "Quantity" in run.output
    # dbt's summary: the staging model (the first to read the source) failed with the
    # reader's message, naming the file; nothing else failed, and no traceback.
    output = run.output.splitlines()
    summary = output[next(i for i, line in enumerate(output) if "Completed with" in line) :]
    assert "Completed with 1 error" in summary[0]
    entry = [line.strip() for line in summary if line.strip().startswith(f"{path}: ")]
    assert len(entry) == 1 and entry[0].startswith(f"{path}: missing required column(s): ")
    assert any("Failure in model stg_online_retail__transaction_lines" in line for line in summary)
    assert "Traceback" not in run.output


def test_customer_attributes_join_the_features(csv_build: tuple[DbtRun, Path]) -> None:
    run, _ = csv_build
    assert run.returncode == 0, run.output[-5000:]
    rows = run.query("select customer_id, age, gender from customer_features order by 1")
    assert rows == [(12583, 34, "f"), (17850, None, None)]


def test_customer_attributes_without_key_fail_clearly(tmp_path: Path, dbt_runner) -> None:
    lines = write_fixture(tmp_path / "lines.parquet", ONLINE_RETAIL_COLUMNS, FIXTURE_LINES)
    attributes = tmp_path / "attributes.csv"
    attributes.write_text("client,age\n12583,34\n")
    # The file is checked when customer_features compiles: no model before it needs to run.
    run = dbt_runner(
        ["build", "--select", "customer_features"],
        {"raw_transactions_path": str(lines), "customer_attributes_path": str(attributes)},
    )
    assert run.returncode != 0
    assert f"customer_attributes_path {attributes}: no customer_id column" in run.output


def test_bundled_data_reproduces_published_figures(bundled_build: DbtRun) -> None:
    run = bundled_build
    assert run.scalar("select count(*) from raw.transactions") == 541_909
    assert run.scalar("select sum(n_rows) from data_quality_audit") == 541_909
    assert run.scalar(
        "select count(distinct customer_id) from int_transaction_lines_classified"
    ) == (4_372)
    total = run.scalar("select round(sum(line_amount), 2) from int_transaction_lines_classified")
    assert total == Decimal("9747747.93")  # money is exact decimal arithmetic
    cancellation_lines = run.scalar(
        "select count(*) from int_transaction_lines_classified where invoice_id like 'C%'"
    )
    assert cancellation_lines == 9_288
    assert (
        run.scalar("select count(*) from int_transaction_lines_classified where is_exact_duplicate")
        == 5_268
    )


def test_bundled_data_audit_classes(bundled_build: DbtRun) -> None:
    counts = audit(bundled_build)
    assert counts["missing_customer"] == 135_080
    assert counts["kept"] > 380_000
    assert counts["implausible_date"] == 0  # every line of the bundled data is dated 2010-2011
    assert set(counts) == set(EXPECTED_CLASSES)


def test_exploration_marts_are_consistent(bundled_build: DbtRun) -> None:
    run = bundled_build
    kept_revenue = run.scalar("select sum(order_value) from int_orders_aggregated")
    monthly = run.scalar("select sum(revenue) from monthly_activity")
    by_country = run.scalar("select sum(revenue) from country_summary")
    assert monthly == pytest.approx(kept_revenue, abs=1.0)
    assert by_country == pytest.approx(kept_revenue, abs=1.0)
    n_orders = run.scalar("select count(*) from int_orders_aggregated")
    for measure in ("order_value", "items_per_order"):
        binned = run.scalar(
            f"select sum(n_orders) from order_size_distribution where measure = '{measure}'"
        )
        assert binned == n_orders
    assert run.scalar("select sum(n_orders) from purchase_timing") == n_orders
    first_month = run.query(
        "select min(retention_rate), max(retention_rate) from cohort_retention"
        " where months_since_first_purchase = 0"
    )
    assert first_month == [(1.0, 1.0)]


def test_bundled_data_customer_features_and_rfm(bundled_build: DbtRun) -> None:
    run = bundled_build
    n_customers = run.scalar("select count(*) from customer_features")
    assert n_customers == run.scalar(
        "select count(distinct customer_id) from int_orders_aggregated"
    )
    assert n_customers == 4_334
    assert run.scalar("select count(*) from customer_rfm_segments") == n_customers
    assert run.scalar("select min(snapshot_date) = max(snapshot_date) from customer_features")
    assert run.scalar("select min(snapshot_date) from customer_features") == dt.date(2011, 12, 10)
    one_order = run.query(
        "select count(*), count(mean_days_between_orders) from customer_features"
        " where frequency = 1"
    )
    assert one_order[0][0] > 1_000
    assert one_order[0][1] == 0
    # Ties: customers with equal frequency share one f_score.
    assert (
        run.scalar(
            "select max(n) from (select frequency, count(distinct f_score) as n"
            " from customer_rfm_segments group by frequency)"
        )
        == 1
    )
    segments = dict(run.query("select rfm_segment, count(*) from customer_rfm_segments group by 1"))
    assert len(segments) == 10
    assert sum(segments.values()) == n_customers


def test_bundled_data_clustering(bundled_build: DbtRun) -> None:
    run = bundled_build
    n_customers = run.scalar("select count(*) from customer_features")
    assert run.scalar("select count(*) from customer_clusters") == n_customers
    assert run.scalar("select count(*) from customer_features_scaled") == n_customers
    k = run.scalar(
        "select k from cluster_model_selection where is_selected and algorithm = 'kmeans'"
    )
    assert 2 <= k <= 10
    assert run.scalar("select count(distinct cluster_id) from customer_clusters") == k
    assert run.scalar("select count(distinct hierarchical_cluster_id) from customer_clusters") == k
    assert run.scalar("select count(*) from cluster_model_selection") == 18
    reason = run.scalar("select any_value(selection_reason) from cluster_model_selection")
    assert reason.startswith(f"k={k}")
    # Cluster 1 has the highest monetary centroid.
    monetary = run.query(
        "select center_scaled from cluster_centroids where feature = 'monetary' order by cluster_id"
    )
    assert [m[0] for m in monetary] == sorted((m[0] for m in monetary), reverse=True)
    assert run.scalar("select count(*) from hierarchy_linkage") == n_customers - 1
    assert run.scalar("select count(*) from customer_silhouettes") == n_customers
    # Progress lines from the Python models reach the dbt log.
    assert "[kmeans_candidates] k-means for k=2..10" in run.output


def test_too_few_customers_to_cluster_fail_with_a_clear_message(
    fixture_build: DbtRun, capsys: pytest.CaptureFixture[str]
) -> None:
    import duckdb

    from customer_segmentation import models
    from customer_segmentation.models import ModelError

    # What the first ml model does on the fixture's two customers: models/ml/scaler_parameters.py
    # with its `clustering` config as dbt parsed it. A model error reaching dbt's output (first
    # line and summary) is test_messages.py's.
    manifest = json.loads((fixture_build.workdir / "target" / "manifest.json").read_text())
    config = manifest["nodes"]["model.customer_segmentation.scaler_parameters"]["config"]
    message = "2 customer(s) are too few to evaluate k=2 (need at least 3)"
    with (
        duckdb.connect(str(fixture_build.database), read_only=True) as con,
        pytest.raises(ModelError, match=re.escape(f"scaler_parameters: {message}")),
    ):
        con.register("plan", models.segment_model_plan(None, config["clustering"]))
        models.scaler_parameters(
            con.table("customer_features"), con.table("plan"), config["clustering"]
        )
    assert f"[scaler_parameters] ERROR: {message}" in capsys.readouterr().out


def test_bundled_data_segment_marts(bundled_build: DbtRun) -> None:
    run = bundled_build
    n_customers = run.scalar("select count(*) from customer_features")
    k = run.scalar("select count(*) from segment_profiles")
    assert run.scalar("select count(*) from customer_segments") == n_customers
    assert run.scalar("select count(distinct segment_name) from segment_profiles") == k
    names = dict(run.query("select cluster_id, segment_name from segment_names"))
    assert names[1] == "Loyal regulars"  # cluster 1 has the highest monetary centroid
    assert run.scalar("select sum(n_customers) from segment_profiles") == n_customers
    assert run.scalar("select sum(share_of_revenue) from segment_profiles") == pytest.approx(1)
    assert run.scalar("select sum(n_customers) from segment_rfm_crosstab") == n_customers
    outliers = run.scalar("select avg(cast(is_outlier as double)) from customer_segments")
    assert 0.005 < outliers < 0.02  # about 1% above each cluster's 99th percentile


def test_bundled_data_agreement_in_sql_equals_sklearn(bundled_build: DbtRun) -> None:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    run = bundled_build
    rows = run.query(
        "select cluster_id, hierarchical_cluster_id, rfm_segment from customer_segments"
    )
    kmeans, ward, rfm = zip(*rows, strict=True)
    metrics = dict(
        run.query("select metric, metric_value from cluster_evaluation where cluster_id is null")
    )
    assert metrics["ari_kmeans_vs_hierarchical"] == pytest.approx(adjusted_rand_score(kmeans, ward))
    assert metrics["nmi_kmeans_vs_hierarchical"] == pytest.approx(
        normalized_mutual_info_score(kmeans, ward)
    )
    assert metrics["ari_kmeans_vs_rfm_segment"] == pytest.approx(adjusted_rand_score(kmeans, rfm))
    assert metrics["nmi_kmeans_vs_rfm_segment"] == pytest.approx(
        normalized_mutual_info_score(kmeans, rfm)
    )


def test_bundled_data_migration(bundled_build: DbtRun) -> None:
    run = bundled_build
    dates = [
        r[0]
        for r in run.query("select distinct snapshot_date from customer_segment_history order by 1")
    ]
    assert dates[0] == dt.date(2011, 7, 1)
    assert dates[-2:] == [dt.date(2011, 12, 1), dt.date(2011, 12, 10)]
    assert len(dates) == 7
    assert run.scalar(
        "select count(*) from customer_segment_history where snapshot_date = '2011-12-10'"
    ) == (run.scalar("select count(*) from customer_features"))
    entered = run.scalar(
        "select sum(n_entered) from segment_migration where from_snapshot_date = '2011-11-01'"
    )
    first_orders_in_november = run.scalar(
        "select count(*) from customer_features"
        " where first_order_date between '2011-11-01' and '2011-11-30'"
    )
    assert entered == first_orders_in_november > 0
    # Full months are months; the 9 days to the snapshot are their own, partial period.
    periods = run.query(
        "select distinct from_snapshot_date, to_snapshot_date, period_kind, period_days"
        " from segment_migration order by 1"
    )
    assert [p[2] for p in periods] == ["month"] * 5 + ["month_to_date"]
    assert [p[3] for p in periods] == [31, 31, 30, 31, 30, 9]
    assert run.query(
        "select distinct snapshot_date from customer_segment_history where not is_period_end"
    ) == [(dt.date(2011, 12, 10),)]


def test_clustering_runs_keeps_one_row_per_build(bundled_build: DbtRun, tmp_path: Path) -> None:
    run = bundled_build
    first = run.query("select invocation_id, n_raw_lines, k, dbt_version from clustering_runs")
    assert len(first) == 1
    assert first[0][1] == 541_909
    # Another run of the model, on a copy of the shared database.
    database = copy_database(run, tmp_path / "test.duckdb")
    again = run_dbt(["run", "--select", "clustering_runs"], tmp_path, database=database)
    assert again.returncode == 0, again.output[-3000:]
    assert again.scalar("select count(distinct invocation_id) from clustering_runs") == 2


def test_every_model_and_column_is_described(bundled_build: DbtRun, tmp_path: Path) -> None:
    # The catalog of the shared database (--no-compile: nothing is compiled, so the source is
    # not loaded again and the database is only read), against the build's manifest.
    docs = run_dbt(
        ["docs", "generate", "--no-compile"],
        tmp_path,
        database=bundled_build.database,
        parsed_by=bundled_build,
    )
    assert docs.returncode == 0, docs.output[-3000:]
    manifest = json.loads((bundled_build.workdir / "target" / "manifest.json").read_text())
    catalog = json.loads((tmp_path / "target" / "catalog.json").read_text())
    undescribed = []
    for unique_id, node in catalog["nodes"].items():
        documented = manifest["nodes"][unique_id]
        if not documented.get("description"):
            undescribed.append(unique_id)
        for column in node["columns"]:
            if not (documented["columns"].get(column) or {}).get("description"):
                undescribed.append(f"{unique_id}.{column}")
    assert undescribed == []
    assert len(catalog["nodes"]) > 30


def test_audiences_leave_out_customers_who_returned_their_value(
    bundled_build: DbtRun, tmp_path: Path
) -> None:
    run = bundled_build
    # 12346 spent 77,183.60 and returned all of it: worth nothing, and out of every audience.
    assert run.query(
        "select gross_monetary, returned_value, net_monetary, monetary from customer_features"
        " where customer_id = 12346"
    ) == [(77183.6, 77183.6, 0.0, 0.0)]
    assert (
        run.scalar("select suppression_reason from customer_segments where customer_id = 12346")
        == "returned_everything"
    )
    reasons = dict(
        run.query("select suppression_reason, count(*) from customer_segments group by all")
    )
    assert reasons["returned_everything"] == run.scalar(
        "select count(*) from customer_features where net_monetary <= 0"
    )
    assert (
        run.scalar(
            "select count(*) from customer_segments where suppression_reason is null"
            " and (net_monetary <= 0 or is_outlier)"
        )
        == 0
    )
    rows = show_rows(run, "customers_to_win_back", tmp_path, limit=1000)
    assert rows, "no customer to win back"
    assert all(row["net_monetary"] > 0 for row in rows)
    assert 12346 not in {row["customer_id"] for row in rows}


def test_products_are_ranked_net_of_returns(bundled_build: DbtRun) -> None:
    run = bundled_build
    # PAPER CRAFT, LITTLE BIRDIE: one 80,995-unit order, cancelled.
    birdie = run.query(
        "select revenue, returned_value, net_revenue, revenue_rank, net_revenue_rank"
        " from product_sales where stock_code = '23843'"
    )
    assert [float(v) for v in birdie[0][:3]] == [168469.6, 168469.6, 0.0]
    assert birdie[0][3] == 1 and birdie[0][4] > 100
    assert (
        run.scalar(
            "select abs(sum(net_revenue) - (sum(revenue) - sum(returned_value))) from product_sales"
        )
        < 0.01
    )
    # Product returns are the customers' returned value, plus returns of customers with no
    # kept order (who are in no customer table).
    by_product = run.scalar("select cast(sum(returned_value) as double) from product_sales")
    by_customer = run.scalar("select sum(returned_value) from customer_features")
    only_returned = run.scalar(
        "select cast(-sum(line_amount) as double) from int_transaction_lines_classified"
        " where row_class = 'cancellation' and not is_non_product and not is_exact_duplicate"
        " and customer_id not in (select customer_id from customer_features)"
    )
    assert by_product == pytest.approx(by_customer + (only_returned or 0), abs=0.05)


def test_every_python_snippet_in_the_readme_runs_on_its_own(bundled_build: DbtRun) -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    snippets = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert len(snippets) >= 3
    for snippet in snippets:
        code = snippet.replace("customer_segmentation.duckdb", str(bundled_build.database))
        exec(compile(code, "README.md", "exec"), {})  # a fresh namespace: nothing carried over


def test_dbt_docs_open_on_the_project_overview(bundled_build: DbtRun) -> None:
    manifest = json.loads((bundled_build.database.parent / "target" / "manifest.json").read_text())
    overview = manifest["docs"]["doc.customer_segmentation.__overview__"]["block_contents"]
    assert overview.startswith("# customer-segmentation")
    assert "customer_segments" in overview and "suppression_reason" in overview
