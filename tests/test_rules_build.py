"""Segment rules and per-segment stability on the bundled build, against independent counts."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from sklearn.tree import DecisionTreeClassifier

from conftest import DbtRun, show_rows
from customer_segmentation.spark.session import project_clustering_settings
from helpers import mean_cluster_jaccard


def frame(run: DbtRun, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(run.database), read_only=True) as con:
        return con.sql(sql).df()


def test_rule_coverage_precision_and_recall_are_counted_right(bundled_build: DbtRun) -> None:
    customers = frame(bundled_build, "select cluster_id, rule_id from customer_segments")
    rules = frame(bundled_build, "select * from segment_rules").set_index(["rule_id", "cluster_id"])
    sizes = customers.groupby("cluster_id").size()
    for (rule_id, cluster_id), row in rules.iterrows():
        covered = customers[customers["rule_id"] == rule_id]
        in_segment = int((covered["cluster_id"] == cluster_id).sum())
        assert row["n_customers"] == len(covered)
        assert row["n_in_segment"] == in_segment
        assert np.isclose(row["rule_precision"], in_segment / len(covered))
        assert np.isclose(row["rule_recall"], in_segment / sizes[cluster_id])
    # Every segment has a row, and so a rule in segment_profiles; the rules that assign
    # segments cover every customer once.
    assert set(rules.index.get_level_values("cluster_id")) == set(sizes.index)
    assigning = rules[rules["assigns_segment"]]
    assert assigning.index.get_level_values("rule_id").is_unique
    assert assigning["n_customers"].sum() == len(customers)
    profiles = frame(bundled_build, "select * from segment_profiles")
    assert profiles["segment_rule"].notna().all() and profiles["segment_rule_sql"].notna().all()
    unassigned = profiles[~profiles["has_own_rule"]]
    assert (unassigned["rule_fidelity"] == 0).all()


def test_fidelity_is_the_share_the_rules_put_in_their_own_segment(bundled_build: DbtRun) -> None:
    customers = frame(
        bundled_build, "select customer_id, cluster_id, rule_cluster_id from customer_segments"
    )
    evaluation = frame(bundled_build, "select * from cluster_evaluation")
    metric = evaluation.set_index(["metric", evaluation["cluster_id"].fillna(0)])["metric_value"]
    agree = customers["cluster_id"] == customers["rule_cluster_id"]
    assert np.isclose(metric["rule_fidelity", 0], agree.mean())
    for cluster_id, share in agree.groupby(customers["cluster_id"]).mean().items():
        assert np.isclose(metric["rule_fidelity", cluster_id], share)
    # Before rounding: scikit-learn's tree fitted here on customer_features, independently.
    settings = project_clustering_settings()
    names = settings["clustering_features"]
    features = frame(bundled_build, "select * from customer_features order by customer_id")
    clusters = customers.set_index("customer_id").loc[features["customer_id"], "cluster_id"]
    tree = DecisionTreeClassifier(
        max_depth=int(settings["rule_max_depth"]),
        min_samples_leaf=int(np.ceil(float(settings["rule_min_leaf_size"]) * len(features))),
        random_state=int(settings["random_state"]),
        class_weight=None if settings["rule_class_weight"] == "none" else "balanced",
    ).fit(features[names].to_numpy(float), clusters.to_numpy())
    unrounded = np.mean(tree.predict(features[names].to_numpy(float)) == clusters.to_numpy())
    assert np.isclose(metric["rule_fidelity_unrounded", 0], unrounded)
    # Rounding to typed values costs little here.
    assert metric["rule_fidelity", 0] > unrounded - 0.02


def test_segment_stability_is_hennigs_jaccard_of_the_stored_refits(bundled_build: DbtRun) -> None:
    k = bundled_build.scalar("select k from selected_cluster_model")
    refits = frame(
        bundled_build,
        f"select run, customer_id, refit_cluster_id from stability_refits "
        f"where algorithm = 'kmeans' and k = {k} order by run, customer_id",
    )
    clusters = frame(bundled_build, "select customer_id, cluster_id from customer_clusters")
    labelled = refits.merge(clusters, on="customer_id")
    reference = labelled[labelled["run"] == 1]["cluster_id"].to_numpy()
    runs = [group["refit_cluster_id"].to_numpy() for _, group in labelled.groupby("run")]
    expected = mean_cluster_jaccard(reference, runs)
    stored = frame(bundled_build, "select * from segment_stability").set_index("cluster_id")
    assert sorted(stored.index) == sorted(expected)
    for cluster_id, value in expected.items():
        assert np.isclose(stored.loc[cluster_id, "mean_jaccard"], value, rtol=1e-12)
    assert (stored["n_refits"] == int(project_clustering_settings()["stability_runs"])).all()
    bands = frame(bundled_build, "select cluster_id, stability_band from segment_profiles")
    assert bands.set_index("cluster_id")["stability_band"].to_dict() == (
        stored["stability_band"].to_dict()
    )


def test_the_analysis_pastes_a_segments_rule_into_a_query(
    bundled_build: DbtRun, tmp_path: Path
) -> None:
    run = bundled_build
    predicate = run.scalar(
        "select segment_all_rules_sql from segment_profiles where cluster_id = 1"
    )
    rows = show_rows(run, "segment_rule_where_clause", tmp_path, limit=100_000)
    expected = run.scalar(f"select count(*) from customer_features where {predicate}")
    # Every rule of the segment: exactly the customers the rules put in it.
    by_rule = run.scalar("select count(*) from customer_segments where rule_cluster_id = 1")
    assert len(rows) == expected == by_rule > 0
    compiled = next((tmp_path / "target").rglob("segment_rule_where_clause.sql")).read_text()
    assert f"where ({predicate})" in compiled


def test_the_readme_states_the_rules_as_built(bundled_build: DbtRun) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    rows = bundled_build.query(
        "select segment_name, segment_rule, segment_rule_recall, segment_rule_precision,"
        " rule_fidelity, stability_band, jaccard_stability from segment_profiles"
        " order by cluster_id"
    )
    for name, rule, recall, precision, fidelity, band, jaccard in rows:
        assert (
            f"| {name} | {rule} | {recall:.0%} | {precision:.0%} | {fidelity:.0%} "
            f"| {band} ({jaccard:.2f}) |" in readme
        ), name
    fidelity, unrounded, count = (
        bundled_build.scalar(
            f"select metric_value from cluster_evaluation where metric = '{metric}'"
            " and cluster_id is null"
        )
        for metric in ("rule_fidelity", "rule_fidelity_unrounded", "rule_count")
    )
    assert (
        f"The {int(count)} rules put {fidelity:.1%} of customers in their own segment "
        f"({unrounded:.1%} before rounding"
    ) in readme.replace("\n", " ")
