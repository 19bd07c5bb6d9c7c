"""``make test-spark``: the SQL models on a local Spark session, and the Spark MLlib backend.

dbt runs in this process, so dbt-spark's ``method: session`` picks up the SparkSession built
here (one JVM, one Derby metastore in a temporary directory). The steps are the ones the
README's "Scaling out" gives: load the raw table, ``dbt build --selector spark_sql``, write the ml
tables with the Spark backend, ``dbt build --selector spark_after_ml``. Results are compared
with the DuckDB build of the same bundled data.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from sklearn.metrics import adjusted_rand_score

from conftest import PROJECT_ROOT, DbtRun
from customer_segmentation import models
from customer_segmentation.config import parse_clv_config, parse_config
from customer_segmentation.ml.scaling import fit_scaler
from customer_segmentation.models.boundary import is_spark_dataframe
from customer_segmentation.spark import backend as spark_backend
from customer_segmentation.spark import models as spark_models
from customer_segmentation.spark import session as spark_session

pyspark = pytest.importorskip("pyspark", reason="pyspark is installed by make test-spark")

pytestmark = pytest.mark.spark

SCHEMA = "customer_segmentation"


def run_dbt_in_process(args: list[str], workdir: Path) -> dict[str, str]:
    """Run dbt on the spark target in this process; fail with dbt's own messages.

    Returns:
        The status of every node dbt ran (``success``, ``pass``, ...), by unique id.

    """
    from dbt.cli.main import dbtRunner

    result = dbtRunner().invoke(
        [
            *args,
            "--target",
            "spark",
            "--project-dir",
            str(PROJECT_ROOT),
            "--profiles-dir",
            str(PROJECT_ROOT),
            "--target-path",
            str(workdir / "target"),
            "--log-path",
            str(workdir / "logs"),
        ]
    )
    failures = [
        f"{r.node.unique_id}: {r.status}: {r.message}"
        for r in (result.result or [])
        if str(r.status) not in ("success", "pass")
    ]
    assert result.success, "\n".join(failures) or str(result.exception)
    return {r.node.unique_id: str(r.status) for r in result.result or []}


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A local SparkSession configured as the profile's spark target, in a fresh warehouse."""
    home = tmp_path_factory.mktemp("spark")
    previous = os.environ.get("DBT_SPARK_HOME")
    os.environ["DBT_SPARK_HOME"] = str(home)
    session = spark_session.spark_session()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
    if previous is None:
        os.environ.pop("DBT_SPARK_HOME", None)
    else:
        os.environ["DBT_SPARK_HOME"] = previous


@dataclass(frozen=True)
class SparkBuild:
    """What the Spark path did: the ml tables it wrote, and the spark_after_ml build's nodes."""

    written: dict[str, int]  # rows of each ml table
    after_ml: dict[str, str]  # status of each node of `dbt build --selector spark_after_ml`


@pytest.fixture(scope="module")
def spark_build(spark: object, tmp_path_factory: pytest.TempPathFactory) -> SparkBuild:
    """The whole Spark path on the bundled data."""
    workdir = tmp_path_factory.mktemp("spark_dbt")
    lines = spark_session.load_raw_transactions(spark, PROJECT_ROOT / "data/online_retail.parquet")
    assert lines == 541_909
    run_dbt_in_process(["build", "--selector", "spark_sql"], workdir)
    config = parse_config(spark_session.project_clustering_settings())
    written = spark_models.run_ml_stage(
        spark, SCHEMA, config, parse_clv_config(spark_session.project_clv_settings())
    )
    # The registration reads the fit's naming, a SQL model, then the marts read the registry.
    run_dbt_in_process(["build", "--select", "cluster_archetypes"], workdir)
    written |= spark_models.register_stage(spark, SCHEMA, config)
    after_ml = run_dbt_in_process(["build", "--selector", "spark_after_ml"], workdir)
    return SparkBuild(written, after_ml)


def spark_rows(spark: object, sql: str) -> pa.Table:
    """A Spark query's result as Arrow."""
    return spark.sql(sql).toArrow()  # type: ignore[attr-defined]


def test_raw_lines_are_classified_alike(
    spark: object, spark_build: SparkBuild, bundled_build: DbtRun
) -> None:
    query = "select row_class, n_rows, amount from {}.data_quality_audit order by row_class"
    on_spark = spark_rows(spark, query.format(SCHEMA)).to_pylist()
    on_duckdb = [
        {"row_class": c, "n_rows": n, "amount": a}
        for c, n, a in bundled_build.query(query.format("main"))
    ]
    assert on_spark == on_duckdb


def test_customer_features_identical_on_both_engines(
    spark: object, spark_build: SparkBuild, bundled_build: DbtRun
) -> None:
    query = "select * from {}.customer_features order by customer_id"
    on_spark = spark_rows(spark, query.format(SCHEMA)).to_pylist()
    with duckdb.connect(str(bundled_build.database), read_only=True) as con:
        on_duckdb = con.sql(query.format("main")).to_arrow_table().to_pylist()
    assert len(on_spark) == len(on_duckdb) == 4_334
    assert list(on_spark[0]) == list(on_duckdb[0])
    differences = [
        (duck["customer_id"], column, duck[column], sparkrow[column])
        for sparkrow, duck in zip(on_spark, on_duckdb, strict=True)
        for column in duck
        if sparkrow[column] != duck[column]
    ]
    assert differences == []


def test_spark_scaler_equals_numpy(spark: object, spark_build: SparkBuild) -> None:
    settings = spark_session.project_clustering_settings()
    config = parse_config(settings)
    features = spark.table(f"{SCHEMA}.customer_features")  # type: ignore[attr-defined]
    args = (
        config.clustering_features,
        config.log_transformed_features,
        config.winsorize_quantiles,
    )
    for scaler in ("standard", "robust"):
        on_spark = spark_backend.fit_scaler_spark(features, *args, scaler)
        _, matrix = spark_backend.driver_sample(
            features, config.clustering_features, 10**9, config.random_state
        )
        in_numpy = fit_scaler(matrix, *args, scaler)
        for a, b in zip(on_spark, in_numpy, strict=True):
            assert (a.feature, a.transform) == (b.feature, b.transform)
            np.testing.assert_allclose(
                [a.clip_lower, a.clip_upper, a.center, a.scale],
                [b.clip_lower, b.clip_upper, b.center, b.scale],
                rtol=1e-9,
            )


def test_spark_scaler_refuses_missing_values(spark: object) -> None:
    frame = spark.createDataFrame(  # type: ignore[attr-defined]
        [(1, 1.0), (2, None), (3, 3.0)], "customer_id bigint, monetary double"
    )
    with pytest.raises(ValueError, match="feature monetary: 1 customer"):
        spark_backend.fit_scaler_spark(frame, ["monetary"], [], (0.01, 0.99), "standard")


def test_mllib_kmeans_agrees_with_duckdb(
    spark: object, spark_build: SparkBuild, bundled_build: DbtRun
) -> None:
    query = "select customer_id, cluster_id from {}.customer_clusters order by customer_id"
    on_spark = spark_rows(spark, query.format(SCHEMA))
    on_duckdb = bundled_build.query(query.format("main"))
    assert on_spark["customer_id"].to_pylist() == [row[0] for row in on_duckdb]
    k_spark = spark_rows(spark, f"select max(cluster_id) from {SCHEMA}.cluster_centroids")
    assert k_spark.column(0)[0].as_py() == bundled_build.scalar(
        "select max(cluster_id) from main.cluster_centroids"
    )
    ari = adjusted_rand_score([row[1] for row in on_duckdb], on_spark["cluster_id"].to_pylist())
    print(f"ARI MLlib k-means vs DuckDB/scikit-learn k-means: {ari:.3f}")
    assert ari >= 0.9


def test_ml_tables_have_the_duckdb_columns(
    spark: object, spark_build: SparkBuild, bundled_build: DbtRun
) -> None:
    for table in spark_build.written:
        spark_columns = spark.table(f"{SCHEMA}.{table}").columns  # type: ignore[attr-defined]
        duckdb_columns = [
            row[0]
            for row in bundled_build.query(
                "select column_name from information_schema.columns "
                f"where table_name = '{table}' order by ordinal_position"
            )
        ]
        assert spark_columns == duckdb_columns, table


def test_segment_marts_built_on_spark(
    spark: object, spark_build: SparkBuild, bundled_build: DbtRun
) -> None:
    n = spark_rows(spark, f"select count(*) from {SCHEMA}.customer_segments").column(0)[0]
    assert n.as_py() == 4_334
    names = spark_rows(
        spark,
        f"select count(*), count(distinct segment_name), max(cluster_id) "
        f"from {SCHEMA}.segment_names",
    ).to_pylist()[0]
    assert len(set(names.values())) == 1  # one unique name per cluster
    query = "select segment_name from {}.segment_names order by segment_name"
    assert spark_rows(spark, query.format(SCHEMA))["segment_name"].to_pylist() == [
        row[0] for row in bundled_build.query(query.format("main"))
    ]
    # The registry on Spark: model 1, its segments' ids and names as DuckDB's first model's.
    registry = "select model_id, segment_id, status, segment_name from {}.segment_model_segments"
    registry += " order by segment_id"
    on_spark = [tuple(r.values()) for r in spark_rows(spark, registry.format(SCHEMA)).to_pylist()]
    assert on_spark == bundled_build.query(registry.format("main"))


def test_two_stage_ward_on_spark(spark: object, spark_build: SparkBuild) -> None:
    settings = spark_session.project_clustering_settings(
        {"exact_ward_max_customers": 500, "ward_micro_clusters": 200}
    )
    scaled = spark.table(f"{SCHEMA}.customer_features_scaled")  # type: ignore[attr-defined]
    # Through the dbt models' entry points, as on Databricks: the Spark twins answer, each
    # reading the table the one before it wrote.
    leaves = models.hierarchy_leaves(scaled, None, settings).cache()
    linkage = models.hierarchy_linkage(scaled, leaves, settings).cache()
    leaf_table, linkage_table = leaves.toArrow(), linkage.toArrow()
    n_leaves = linkage_table["n_leaves"][0].as_py()
    assert leaf_table.num_rows == 4_334
    assert set(leaf_table["method"].to_pylist()) == {"micro_clusters"}
    assert sorted(set(leaf_table["leaf_id"].to_pylist())) == list(range(n_leaves))
    assert set(linkage_table["method"].to_pylist()) == {"micro_clusters"}
    assert linkage_table.num_rows == n_leaves - 1
    assert linkage_table["n_customers"].to_pylist()[-1] == 4_334
    labels = spark_models.ward_labels(leaves, linkage, 4)
    counts = labels.groupBy("_ward").count().toArrow()
    assert sorted(counts["_ward"].to_pylist()) == [0, 1, 2, 3]
    assert sum(counts["count"].to_pylist()) == 4_334


def both_engines(
    spark: object, bundled_build: DbtRun, query: str, schema: str = SCHEMA
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """A query (``{}`` for the schema) on Spark (in ``schema``) and on the DuckDB build, as rows."""
    on_spark = spark_rows(spark, query.format(schema)).to_pylist()
    with duckdb.connect(str(bundled_build.database), read_only=True) as con:
        on_duckdb = con.sql(query.format("main")).to_arrow_table().to_pylist()
    return on_spark, on_duckdb


def assert_rows_close(
    on_spark: list[dict[str, object]],
    on_duckdb: list[dict[str, object]],
    rtol: float,
    tolerances: dict[str, float] | None = None,
) -> None:
    """Same rows and columns: numbers within rtol (or the column's own), the rest equal."""
    assert len(on_spark) == len(on_duckdb)
    assert on_duckdb, "no rows to compare"
    assert list(on_spark[0]) == list(on_duckdb[0])
    differences = []
    for sparkrow, duck in zip(on_spark, on_duckdb, strict=True):
        for column, expected in duck.items():
            actual = sparkrow[column]
            if isinstance(expected, float) and isinstance(actual, float):
                tolerance = (tolerances or {}).get(column, rtol)
                same = (np.isnan(expected) and np.isnan(actual)) or bool(
                    np.isclose(actual, expected, rtol=tolerance, atol=1e-12)
                )
            else:
                same = actual == expected
            if not same:
                differences.append((duck, column, expected, actual))
    assert differences == [], differences[:5]


def test_clv_parameters_equal_duckdb(
    spark: object, spark_build: SparkBuild, bundled_build: DbtRun
) -> None:
    on_spark, on_duckdb = both_engines(
        spark, bundled_build, "select * from {}.clv_model_parameters order by fit, model, parameter"
    )
    assert len(on_duckdb) == 14  # two fits, 4 + 3 parameters
    assert all(row["null_reason"] is None for row in on_duckdb), "the bundled data fits"
    # Estimates to 1e-6 relative; standard errors come from a numerical Hessian.
    assert_rows_close(on_spark, on_duckdb, 1e-9, {"estimate": 1e-6, "std_error": 1e-4})


def test_customer_values_equal_duckdb(
    spark: object, spark_build: SparkBuild, bundled_build: DbtRun
) -> None:
    query = (
        "select customer_id, p_alive, expected_purchases, discounted_purchases,"
        " expected_order_value, predicted_clv, null_reason"
        " from {}.customer_value order by customer_id"
    )
    on_spark, on_duckdb = both_engines(spark, bundled_build, query)
    assert len(on_duckdb) == 4_334
    assert all(row["predicted_clv"] is not None for row in on_duckdb)
    assert_rows_close(on_spark, on_duckdb, 1e-9)


def test_clv_validation_equal_duckdb(
    spark: object, spark_build: SparkBuild, bundled_build: DbtRun
) -> None:
    query = "select * from {}.clv_validation order by measure, bucket_order"
    on_spark, on_duckdb = both_engines(spark, bundled_build, query)
    assert_rows_close(on_spark, on_duckdb, 1e-9)


@pytest.mark.parametrize("thin", ["no_fit", "no_spend_fit"])
def test_clv_thin_data_gated_alike(spark: object, spark_build: SparkBuild, thin: str) -> None:
    """Through the dbt models' entry points: the same rows, reasons and nulls on both engines."""
    histories = spark.sql(  # type: ignore[attr-defined]
        f"select * from {SCHEMA}.customer_purchase_histories order by customer_id limit 1000"
    ).cache()
    calibration = spark.sql(  # type: ignore[attr-defined]
        f"select calibration.* from {SCHEMA}.clv_calibration_histories as calibration"
        f" inner join (select customer_id from {SCHEMA}.customer_purchase_histories"
        " order by customer_id limit 1000) as first_customers using (customer_id)"
    ).cache()
    table = histories.toArrow()
    repeat = pc.greater(table["x"], 0)
    spend = pc.and_(
        repeat,
        pc.and_(pc.greater(table["repeat_mean_value"], 0), pc.greater(table["net_value"], 0)),
    )
    n_repeat, n_spend = pc.sum(repeat).as_py(), pc.sum(spend).as_py()
    assert 0 < n_spend < n_repeat
    # no_fit: fewer repeat customers than needed; no_spend_fit: enough for BG/NBD only.
    minimum, reason = (
        (n_repeat + 1, "have a repeat purchase, fewer than")
        if thin == "no_fit"
        else (n_spend + 1, "have a repeat purchase of positive net value, fewer than")
    )
    settings = spark_session.project_clv_settings({"clv_min_repeat_customers": minimum})
    con = duckdb.connect()
    relation = con.from_arrow(table)
    duck_parameters = models.clv_model_parameters(
        relation, con.from_arrow(calibration.toArrow()), settings
    )
    duck_predictions = models.clv_predictions(relation, con.from_arrow(duck_parameters), settings)
    spark_parameters = models.clv_model_parameters(histories, calibration, settings).cache()
    spark_predictions = models.clv_predictions(histories, spark_parameters, settings).toArrow()
    spark_parameters = spark_parameters.toArrow()

    def ordered(parameters: pa.Table) -> list[dict[str, object]]:
        return parameters.sort_by([("fit", "ascending"), ("parameter", "ascending")]).to_pylist()

    assert spark_parameters.schema == duck_parameters.schema
    reasons = set(duck_parameters["null_reason"].to_pylist())
    assert any(r is not None and reason in r for r in reasons), reasons
    assert_rows_close(ordered(spark_parameters), ordered(duck_parameters), 1e-6,
                      {"std_error": 1e-4})  # fmt: skip
    assert spark_predictions.num_rows == duck_predictions.num_rows == 1_000
    assert_rows_close(
        spark_predictions.sort_by("customer_id").to_pylist(),
        duck_predictions.sort_by("customer_id").to_pylist(),
        1e-9,
    )


def test_stability_refits_equal_duckdb(
    spark: object, spark_build: SparkBuild, bundled_build: DbtRun
) -> None:
    """Every customer is in the driver sample, so the refits are DuckDB's, and their ARIs."""
    config = parse_config(spark_session.project_clustering_settings())
    assert config.spark_selection_sample_size >= 4_334
    query = "select * from {}.stability_refits order by algorithm, k, run, customer_id"
    on_spark = spark_rows(spark, query.format(SCHEMA))
    with duckdb.connect(str(bundled_build.database), read_only=True) as con:
        on_duckdb = con.sql(query.format("main")).to_arrow_table()
    assert on_duckdb.num_rows == 18 * config.stability_runs * 4_334  # 9 k, two algorithms
    assert on_spark.column_names == on_duckdb.column_names
    assert on_spark.cast(on_duckdb.schema).equals(on_duckdb)
    on_spark, on_duckdb = both_engines(
        spark, bundled_build, "select * from {}.cluster_stability order by algorithm, k"
    )
    assert_rows_close(on_spark, on_duckdb, 1e-9)


def duckdb_relations(con: duckdb.DuckDBPyConnection, spark: object, *tables: str) -> list:
    """Tables of the Spark build as DuckDB relations, for the DuckDB models to read."""
    return [con.from_arrow(spark_rows(spark, f"select * from {SCHEMA}.{t}")) for t in tables]


def test_spark_rules_are_the_duckdb_models_on_the_spark_clusters(
    spark: object, spark_build: SparkBuild
) -> None:
    """The tree fitted on the driver sample (every customer here) and applied in Spark SQL.

    The Spark build's rules are those the DuckDB model learns from the Spark build's features
    and clusters, and each customer meets the rule the DuckDB model finds for it.
    """
    settings = spark_session.project_clustering_settings()
    con = duckdb.connect()
    features, clusters, rules = duckdb_relations(
        con, spark, "customer_features", "customer_clusters", "segment_rule_tree"
    )
    (plan,) = duckdb_relations(con, spark, "segment_model_plan")
    in_duckdb = models.segment_rule_tree(features, clusters, plan, settings)
    on_spark = spark_rows(spark, f"select * from {SCHEMA}.segment_rule_tree order by rule_id")
    assert set(on_spark["fit_customers"].to_pylist()) == {4_334}
    assert_rows_close(on_spark.to_pylist(), in_duckdb.sort_by("rule_id").to_pylist(), 1e-9)
    assigned = models.customer_rule_segments(features, rules, settings).sort_by("customer_id")
    query = f"select * from {SCHEMA}.customer_rule_segments order by customer_id"
    on_spark = spark_rows(spark, query)
    assert on_spark.num_rows == 4_334
    assert on_spark["rule_id"].null_count == 0
    assert on_spark.to_pylist() == assigned.to_pylist()


def test_sql_checks_against_python_ran_on_spark(spark_build: SparkBuild) -> None:
    """spark_after_ml runs the tests that compare a Python model with SQL, and they pass.

    assert_sql_rules_match_python: the macro segment_by_rules (the rules in Spark SQL, read
    from segment_rules) gives every customer the rule and segment of customer_rule_segments.
    """
    for test in (
        "assert_sql_rules_match_python",
        "assert_sql_scoring_matches_python",
        "assert_sql_p_alive_matches_python",
    ):
        assert spark_build.after_ml.get(f"test.customer_segmentation.{test}") == "pass", test


# MLlib's k-means (customer_clusters) differs from scikit-learn's on a few customers, and every
# segment figure with it. To compare the rules and the segment marts with DuckDB's, they are
# built again on Spark in a second schema from DuckDB's clustering: the Spark twins learn and
# apply the rules there, and dbt builds the segment marts on them.
SAME_CLUSTERS = "same_clusters"
DUCKDB_CLUSTERING = (
    "cluster_model_selection", "cluster_centroids", "customer_clusters", "customer_silhouettes",
    "segment_model_plan", "segment_models",
)  # fmt: skip
# Tables of the Spark build equal to DuckDB's, read through views (customer_features,
# customer_value and stability_refits are compared above; customer_segments shows the RFM ones).
SPARK_INPUTS = ("customer_features", "customer_rfm_segments", "customer_value", "stability_refits")
SEGMENT_MARTS = (
    "cluster_archetypes", "segment_model_segments", "segment_names", "segment_feature_profiles",
    "selected_cluster_model", "customer_segments", "segment_rules", "segment_stability",
    "segment_profiles", "cluster_evaluation",
)  # fmt: skip


@pytest.fixture(scope="module")
def same_clusters_build(
    spark: object,
    spark_build: SparkBuild,
    bundled_build: DbtRun,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    """The rules and segment marts on Spark, on DuckDB's clustering; the status of each node."""
    session = spark

    def write(name: str, frame: object) -> object:
        frame.write.mode("overwrite").saveAsTable(f"{SAME_CLUSTERS}.{name}")  # type: ignore[attr-defined]
        return session.table(f"{SAME_CLUSTERS}.{name}")  # type: ignore[attr-defined]

    session.sql(f"create schema if not exists {SAME_CLUSTERS}")  # type: ignore[attr-defined]
    for name in SPARK_INPUTS:
        session.sql(  # type: ignore[attr-defined]
            f"create or replace view {SAME_CLUSTERS}.{name} as select * from {SCHEMA}.{name}"
        )
    with duckdb.connect(str(bundled_build.database), read_only=True) as con:
        for name in DUCKDB_CLUSTERING:
            table = con.sql(f"select * from main.{name}").to_arrow_table()
            write(name, session.createDataFrame(table))  # type: ignore[attr-defined]
    config = parse_config(spark_session.project_clustering_settings())
    features = session.table(f"{SAME_CLUSTERS}.customer_features")  # type: ignore[attr-defined]
    clusters = session.table(f"{SAME_CLUSTERS}.customer_clusters")  # type: ignore[attr-defined]
    rules = write(
        "segment_rule_tree", spark_models.segment_rule_tree(features, clusters, None, config)
    )
    write("customer_rule_segments", spark_models.customer_rule_segments(features, rules, config))
    previous = os.environ.get("DBT_SPARK_SCHEMA")
    os.environ["DBT_SPARK_SCHEMA"] = SAME_CLUSTERS
    try:
        return run_dbt_in_process(
            ["build", "--select", *SEGMENT_MARTS, "assert_sql_rules_match_python",
             "--indirect-selection", "empty"],
            tmp_path_factory.mktemp("same_clusters_dbt"),
        )  # fmt: skip
    finally:
        if previous is None:
            os.environ.pop("DBT_SPARK_SCHEMA", None)
        else:
            os.environ["DBT_SPARK_SCHEMA"] = previous


@pytest.mark.parametrize(
    ("table", "order"),
    [
        ("segment_rule_tree", "rule_id"),
        ("customer_rule_segments", "customer_id"),
        ("segment_rules", "cluster_id, rule_id"),
        ("segment_stability", "cluster_id"),
        ("segment_profiles", "cluster_id"),
        ("cluster_evaluation", "metric, cluster_id nulls first"),
        ("customer_segments", "customer_id"),
    ],
)
def test_segment_marts_equal_duckdb_on_its_clusters(
    spark: object, same_clusters_build: dict[str, str], bundled_build: DbtRun, table: str,
    order: str,
) -> None:  # fmt: skip
    """On DuckDB's clusters the Spark twins' rules, and the SQL marts on them, are DuckDB's."""
    assert same_clusters_build["test.customer_segmentation.assert_sql_rules_match_python"] == "pass"
    query = f"select * from {{}}.{table} order by {order}"
    on_spark, on_duckdb = both_engines(spark, bundled_build, query, SAME_CLUSTERS)
    assert_rows_close(on_spark, on_duckdb, 1e-9)


def test_spark_frames_are_recognised(spark: object) -> None:
    assert is_spark_dataframe(spark.range(1))  # type: ignore[attr-defined]
    assert not is_spark_dataframe(pa.table({"a": [1]}))
