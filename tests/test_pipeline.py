"""The functions behind the dbt Python models, on DuckDB relations built here."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from customer_segmentation import models as pipeline
from customer_segmentation.ml.scaling import apply_scaling
from customer_segmentation.models.tables import parameters_from_table
from helpers import DEFAULT_SETTINGS, blobs

FEATURES = DEFAULT_SETTINGS["clustering_features"]


def customer_features(seed: int = 0) -> pa.Table:
    """Four planted groups in recency, frequency and monetary."""
    points, _ = blobs(n_per_cluster=60, n_clusters=4, seed=seed)
    return pa.table(
        {
            "customer_id": np.arange(1000, 1000 + len(points)),
            "recency_days": 1 + np.abs(points[:, 0]) * 10,
            "frequency": np.exp(np.abs(points[:, 1]) / 5).round() + 1,
            "monetary": np.exp(3 + np.abs(points[:, 2]) / 5),
        }
    )


def run_models(features: pa.Table) -> dict[str, pa.Table]:
    """Run the models in dbt's order; customer_features_scaled stands in for the SQL model."""
    con = duckdb.connect()
    con.register("customer_features", features)
    outputs: dict[str, pa.Table] = {}
    # The first build: no registry yet.
    outputs["segment_model_plan"] = pipeline.segment_model_plan(None, DEFAULT_SETTINGS)
    con.register("segment_model_plan", outputs["segment_model_plan"])
    outputs["scaler_parameters"] = pipeline.scaler_parameters(
        con.table("customer_features"), con.table("segment_model_plan"), DEFAULT_SETTINGS
    )
    parameters = parameters_from_table(outputs["scaler_parameters"])
    ids, raw = pipeline.read_matrix(con.table("customer_features"), FEATURES)
    scaled = pa.table(
        {"customer_id": ids} | dict(zip(FEATURES, apply_scaling(raw, parameters).T, strict=True))
    )
    for name, table in [*outputs.items(), ("customer_features_scaled", scaled)]:
        con.register(name, table)

    def run(name: str, *inputs: str) -> None:
        function = getattr(pipeline, name)
        outputs[name] = function(*[con.table(i) for i in inputs], DEFAULT_SETTINGS)
        con.register(name, outputs[name])

    run("kmeans_candidates", "customer_features_scaled", "segment_model_plan")
    run("hierarchy_leaves", "customer_features_scaled", "segment_model_plan")
    run("hierarchy_linkage", "customer_features_scaled", "hierarchy_leaves")
    ward = ("hierarchy_leaves", "hierarchy_linkage")
    run("candidate_silhouettes", "customer_features_scaled", "kmeans_candidates", *ward)
    run("stability_refits", "customer_features_scaled", "segment_model_plan")
    run("cluster_stability", "stability_refits")
    run(
        "cluster_model_selection",
        "customer_features_scaled",
        "kmeans_candidates",
        *ward,
        "candidate_silhouettes",
        "cluster_stability",
        "segment_model_plan",
    )
    run(
        "cluster_centroids",
        "customer_features_scaled",
        "kmeans_candidates",
        "cluster_model_selection",
        "scaler_parameters",
    )
    run(
        "customer_clusters",
        "customer_features_scaled",
        "cluster_centroids",
        "cluster_model_selection",
        *ward,
        "segment_model_plan",
    )
    run(
        "customer_silhouettes",
        "customer_features_scaled",
        "candidate_silhouettes",
        "customer_clusters",
        "cluster_model_selection",
    )
    run("segment_rule_tree", "customer_features", "customer_clusters", "segment_model_plan")
    run("customer_rule_segments", "customer_features", "segment_rule_tree")
    return outputs


@pytest.fixture(scope="module")
def outputs() -> dict[str, pa.Table]:
    return run_models(customer_features())


def test_planted_groups_give_k_4_numbered_by_monetary(outputs: dict[str, pa.Table]) -> None:
    selection = outputs["cluster_model_selection"].to_pylist()
    assert {r["k"] for r in selection if r["is_selected"]} == {4}
    centroids = outputs["cluster_centroids"].to_pylist()
    monetary = {
        r["cluster_id"]: r["center_original"] for r in centroids if r["feature"] == "monetary"
    }
    assert sorted(monetary) == [1, 2, 3, 4]
    assert [monetary[i] for i in (1, 2, 3, 4)] == sorted(monetary.values(), reverse=True)
    sizes = {r["cluster_id"]: r["n_customers"] for r in centroids}
    assert sum(sizes.values()) == 240


def test_customer_clusters_cover_every_customer(outputs: dict[str, pa.Table]) -> None:
    clusters = outputs["customer_clusters"]
    assert clusters.num_rows == 240
    assert clusters["customer_id"].to_pylist() == list(range(1000, 1240))
    assert set(clusters["cluster_id"].to_pylist()) == {1, 2, 3, 4}
    assert set(clusters["hierarchical_cluster_id"].to_pylist()) == {1, 2, 3, 4}
    assert min(clusters["distance_to_centroid"].to_pylist()) >= 0


def test_linkage_is_a_complete_monotone_tree(outputs: dict[str, pa.Table]) -> None:
    linkage = outputs["hierarchy_linkage"]
    assert linkage.num_rows == 239
    distances = linkage["distance"].to_numpy()
    assert np.all(np.diff(distances) >= -1e-12)
    assert linkage["n_customers"].to_pylist()[-1] == 240


def test_silhouettes_are_within_bounds(outputs: dict[str, pa.Table]) -> None:
    values = outputs["customer_silhouettes"]["silhouette"].to_numpy()
    assert len(values) == 240
    assert values.min() >= -1 and values.max() <= 1


def test_shuffled_input_rows_give_identical_tables(outputs: dict[str, pa.Table]) -> None:
    features = customer_features()
    shuffled = features.take(np.random.default_rng(4).permutation(features.num_rows))
    again = run_models(shuffled)
    for name in ("scaler_parameters", "cluster_model_selection", "cluster_centroids",
                 "stability_refits", "segment_rule_tree", "customer_rule_segments"):  # fmt: skip
        assert again[name].equals(outputs[name]), name
    assert again["customer_clusters"].equals(outputs["customer_clusters"])


def test_a_missing_feature_column_is_named() -> None:
    con = duckdb.connect()
    con.register("f", pa.table({"customer_id": [1], "recency_days": [3.0]}))
    with pytest.raises(ValueError, match=r"clustering_features \['frequency', 'monetary'\]"):
        pipeline.read_matrix(con.table("f"), FEATURES)


def test_identical_customers_fail_naming_the_feature(capsys: pytest.CaptureFixture[str]) -> None:
    from customer_segmentation.spark.session import project_clustering_settings

    # Seven customers alike in every clustering feature (as seven customers with the same two
    # orders are), through the first ml model with the project's clustering settings.
    settings = project_clustering_settings()
    alike = {"recency_days": 30, "frequency": 2, "monetary": 40.0, "tenure_days": 15}
    alike |= {"average_order_value": 20.0, "distinct_products": 1, "return_rate": 0.0}
    assert sorted(alike) == sorted(settings["clustering_features"])
    con = duckdb.connect()
    con.register("features", pa.table({"customer_id": range(1, 8)} | {
        name: [value] * 7 for name, value in alike.items()}))  # fmt: skip
    con.register("plan", pipeline.segment_model_plan(None, settings))
    with pytest.raises(pipeline.ModelError) as error:
        pipeline.scaler_parameters(con.table("features"), con.table("plan"), settings)
    shown = capsys.readouterr().out
    assert "[scaler_parameters] ERROR: 0 of 7 clustering features have any spread (none)" in shown
    for text in (shown, str(error.value)):
        assert "feature recency_days: standard deviation is 0 after winsorising" in text
        assert "every customer has log1p(recency_days) =" in text
