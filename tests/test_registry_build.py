"""The model registry through real dbt builds: ids and names kept across refits, a segment
retired when its customers are gone (the pure functions: test_identity.py)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from conftest import PROJECT_ROOT, DbtRun, background_build, copy_database, run_dbt
from customer_segmentation.ml.identity import bin_shares
from customer_segmentation.report.page import write_report
from helpers import population_stability_index
from test_reliability import csv_lines, customer_orders
from test_rules_build import frame

pytestmark = pytest.mark.dbt

BUNDLED = PROJECT_ROOT / "data" / "online_retail.parquet"
# A rebuild of what the ids and the drift depend on (the ml models, the registry, the names),
# with the drift warnings the only tests.
WARNINGS = ["warn_feature_distribution_shifted", "warn_segment_share_moved",
            "warn_segment_spread_grew"]  # fmt: skip
REFIT = ["build", "--select", "+segment_drift", *WARNINGS, "--indirect-selection", "empty"]


def rewrite(path: Path, select: str) -> Path:
    """The bundled lines through ``select`` (from ``lines``) into a Parquet file."""
    with duckdb.connect() as con:
        con.execute(f"create view lines as select * from '{BUNDLED}'")
        con.execute(f"copy ({select}) to '{path}' (format parquet)")
    return path


def segments(run: DbtRun, model_id: int) -> dict[int, tuple[str, str]]:
    """segment_id -> (status, name) of one registered model."""
    rows = run.query(
        "select segment_id, status, segment_name from segment_model_segments "
        f"where model_id = {model_id}"
    )
    return {segment_id: (status, name) for segment_id, status, name in rows}


@background_build
def refits_of_the_bundled_data(workdir: Path) -> dict[str, DbtRun]:
    """The bundled data built, then rebuilt on its database: rows shuffled, 5% fewer customers."""
    bundled = run_dbt(REFIT, workdir / "first")
    assert bundled.returncode == 0, bundled.output[-3000:]
    order = "select * from lines order by hash(InvoiceNo, StockCode, Quantity)"
    shuffled = rewrite(workdir / "shuffled.parquet", order)
    fewer_customers = "select * from lines where CustomerID is null or hash(CustomerID) % 20 != 0"
    fewer = rewrite(workdir / "fewer.parquet", fewer_customers)
    runs = {"first": bundled}
    for name, path in (("shuffled", shuffled), ("fewer", fewer)):
        runs[name] = run_dbt(REFIT, workdir / name, {"raw_transactions_path": str(path)},
                             database=bundled.database)  # fmt: skip
        assert runs[name].returncode == 0, runs[name].output[-3000:]
        copy_database(runs[name], workdir / f"{name}.duckdb")
        runs[name] = DbtRun(0, runs[name].output, workdir / f"{name}.duckdb", workdir / name)
    return runs


def test_a_refit_on_shuffled_rows_or_without_5_percent_of_customers_keeps_every_id_and_name(
    refits_of_the_bundled_data: dict[str, DbtRun],
) -> None:
    runs = refits_of_the_bundled_data
    first = segments(runs["shuffled"], 1)
    assert {status for status, _ in first.values()} == {"new"} and len(first) == 4
    names = {segment_id: name for segment_id, (_, name) in first.items()}
    shuffled = segments(runs["shuffled"], 2)
    assert shuffled == {segment_id: ("kept", name) for segment_id, name in names.items()}
    fewer = segments(runs["fewer"], 3)
    assert fewer == {segment_id: ("kept", name) for segment_id, name in names.items()}
    assert "kept from model 1: 1 " in runs["shuffled"].output
    # The same data in another order is the same input.
    fingerprints = runs["fewer"].query(
        "select model_id, input_fingerprint, n_customers from segment_models order by 1"
    )
    assert fingerprints[0][1] == fingerprints[1][1]
    assert fingerprints[2][2] < fingerprints[0][2] * 0.97
    # Each customer's stable segment follows their cluster under the new numbering.
    moved = runs["fewer"].scalar(
        "select count(*) from customer_clusters inner join segment_names using (cluster_id)"
    )
    assert moved == fingerprints[2][2]


def planted_groups(path: Path, groups: list[str]) -> Path:
    """Customers in up to four clearly separate groups (orders, spend and recency differ)."""
    recipes = {
        "loyal": (12, dt.date(2011, 1, 3), 400.0),
        "recent": (1, dt.date(2011, 11, 25), 25.0),
        "lapsed": (1, dt.date(2010, 12, 6), 30.0),
        "middle": (4, dt.date(2011, 6, 1), 120.0),
    }
    rows = []
    for g, group in enumerate(groups):
        n_orders, start, amount = recipes[group]
        for i in range(45):
            customer = 20_000 + 100 * list(recipes).index(group) + i
            rows += customer_orders(customer, n_orders, start + dt.timedelta(days=i % 5),
                                    amount * (1 + 0.01 * (i % 7)))  # fmt: skip
        del g
    return csv_lines(path, rows)


@background_build
def planted_refits(workdir: Path) -> dict[str, DbtRun]:
    """Four planted groups built, then the same customers without the `middle` group."""
    every = planted_groups(workdir / "every.csv", ["loyal", "recent", "lapsed", "middle"])
    three = planted_groups(workdir / "three.csv", ["loyal", "recent", "lapsed"])
    first = run_dbt(REFIT, workdir / "first", {"raw_transactions_path": str(every),
                                               "n_clusters": 4})  # fmt: skip
    assert first.returncode == 0, first.output[-3000:]
    copy_database(first, workdir / "first.duckdb")
    second = run_dbt(REFIT, workdir / "second", {"raw_transactions_path": str(three),
                     "n_clusters": 3}, database=first.database)  # fmt: skip
    assert second.returncode == 0, second.output[-3000:]
    return {"first": DbtRun(0, first.output, workdir / "first.duckdb", workdir / "first"),
            "second": second}  # fmt: skip


def test_removing_a_planted_group_retires_exactly_its_segment(
    planted_refits: dict[str, DbtRun],
) -> None:
    runs = planted_refits
    # Which segment the middle group was: its customers' segment in the first build.
    middle = runs["first"].query(
        "select distinct segment_id from customer_clusters inner join segment_names "
        "using (cluster_id) where customer_id between 20300 and 20399"
    )
    assert len(middle) == 1
    middle_id = middle[0][0]
    before = segments(runs["second"], 1)
    after = segments(runs["second"], 2)
    assert after[middle_id] == ("retired", before[middle_id][1])
    assert {i: s for i, s in after.items() if i != middle_id} == {
        i: ("kept", name) for i, (_, name) in before.items() if i != middle_id
    }
    # Every remaining customer keeps the segment id they had.
    ids = {
        run: dict(runs[run].query(
            "select customer_id, segment_id from customer_clusters "
            "inner join segment_names using (cluster_id)"
        ))
        for run in ("first", "second")
    }  # fmt: skip
    assert ids["second"] == {c: s for c, s in ids["first"].items() if c in ids["second"]}
    assert f"retired: {middle_id} " in runs["second"].output


def test_drift_figures_equal_a_direct_computation(
    refits_of_the_bundled_data: dict[str, DbtRun],
) -> None:
    run = refits_of_the_bundled_data["fewer"]
    drift = {
        (measure, subject): (value, reference, current)
        for measure, subject, value, reference, current in run.query(
            "select measure, subject, drift, reference_value, current_value from segment_drift"
        )
    }
    bins = json.loads(run.scalar("select feature_bins_json from segment_models where model_id = 2"))
    features = frame(run, "select * from customer_features")
    for feature in {b["feature"] for b in bins}:
        rows = sorted((b for b in bins if b["feature"] == feature), key=lambda b: b["bin"])
        edges = np.array([b["upper"] for b in rows[:-1]])
        expected = np.array([b["share"] for b in rows])
        actual = bin_shares(features[feature].to_numpy(dtype=float), edges)
        psi = population_stability_index(expected, actual)
        assert drift["population_stability_index", feature][0] == pytest.approx(psi, abs=1e-12)
        assert psi < 0.2  # 5% of customers left out at random moves no feature
    shares = dict(run.query(
        "select segment_name, 100 * count(*) / (select count(*) from customer_clusters) "
        "from customer_clusters inner join segment_names using (cluster_id) group by 1"
    ))  # fmt: skip
    trained = dict(run.query(
        "select segment_name, 100 * customer_share from segment_model_segments "
        "where model_id = 2"
    ))  # fmt: skip
    for name, share in shares.items():
        value, reference, current = drift["segment_share_points", name]
        assert (current, reference) == (pytest.approx(share), pytest.approx(trained[name]))
        assert value == pytest.approx(abs(share - trained[name])) and value < 5
    assert "warn_segment_share_moved" not in warnings(run.output)


def warnings(output: str) -> str:
    """The lines of a dbt build's output that report a warning."""
    return "\n".join(line for line in output.splitlines() if "Warning in test" in line)


def test_a_removed_group_is_a_drift_warning_with_its_figures(
    planted_refits: dict[str, DbtRun],
) -> None:
    run = planted_refits["second"]
    rows = run.query(
        "select subject, reference_value, current_value, is_drifted from segment_drift "
        "where measure = 'segment_share_points' order by subject"
    )
    assert len(rows) == 4 and all(drifted for *_, drifted in rows)
    gone = [row for row in rows if row[2] == 0]
    assert len(gone) == 1 and gone[0][1] == pytest.approx(25)
    assert all(current == pytest.approx(100 / 3) for _, _, current, _ in rows if current)
    assert "warn_segment_share_moved" in warnings(run.output)


# Scoring with the registered model (var refit false) -------------------------------------

FIT_STAGES = ["fit scaling", "k-means for k=", "Ward leaves", "Ward tree", "decision tree"]


@pytest.fixture(scope="module")
def scored_without_refit(bundled_build: DbtRun, tmp_path_factory: pytest.TempPathFactory) -> DbtRun:
    """A copy of the bundled build's database built again with refit false (models and tests)."""
    workdir = tmp_path_factory.mktemp("scored")
    database = copy_database(bundled_build, workdir / "scored.duckdb")
    return run_dbt(["build"], workdir, {"refit": False}, database=database)


def test_refit_false_scores_with_the_registered_model_and_fits_nothing(
    bundled_build: DbtRun, scored_without_refit: DbtRun
) -> None:
    run = scored_without_refit
    assert run.returncode == 0, run.output[-3000:]
    assert "[segment_model_plan] var refit is false: scoring with model 1" in run.output
    for model in ("scaler_parameters", "kmeans_candidates", "hierarchy_leaves",
                  "stability_refits", "cluster_model_selection", "segment_rule_tree"):  # fmt: skip
        assert f"[{model}] registered model 1: nothing fitted" in run.output
    assert not [stage for stage in FIT_STAGES if stage in run.output]
    assert run.scalar("select count(*) from segment_models") == 1
    columns = ("customer_id, cluster_id, segment_id, segment_name, distance_to_centroid, "
               "is_outlier, rule_id, rule_cluster_id, suppression_reason")  # fmt: skip
    sql = f"select {columns} from customer_segments order by customer_id"
    scored, fitted = frame(run, sql), frame(bundled_build, sql)
    pd.testing.assert_frame_equal(scored, fitted, check_exact=False, rtol=1e-9)
    projection = "select customer_id, pca_1, pca_2 from customer_clusters order by 1"
    pd.testing.assert_frame_equal(frame(run, projection), frame(bundled_build, projection),
                                  check_exact=False, atol=1e-9)  # fmt: skip
    assert run.scalar("select count(hierarchical_cluster_id) from customer_segments") == 0
    selection = run.query("select selection_rule, k from cluster_model_selection")
    assert selection == [("registered_model", 4)]
    assert run.scalar("select max(drift) from segment_drift") < 1e-9  # its own training data


@pytest.fixture
def registered(planted_refits: dict[str, DbtRun], tmp_path: Path) -> Path:
    """A copy of the planted groups' first build (model 1 registered), to write to."""
    return copy_database(planted_refits["first"], tmp_path / "registered.duckdb")


def plan_run(database: Path, workdir: Path, variables: dict) -> DbtRun:
    """segment_model_plan alone, on ``database``."""
    return run_dbt(["build", "--select", "segment_model_plan"], workdir, variables,
                   database=database)  # fmt: skip


def test_refit_false_without_a_model_stops_saying_to_refit_first(tmp_path: Path) -> None:
    run = plan_run(tmp_path / "empty.duckdb", tmp_path, {"refit": False})
    assert run.returncode != 0
    assert ("var refit is false but segment_models holds no model to score with: run a build "
            "with refit: true first") in run.output  # fmt: skip


def test_an_old_model_or_other_features_are_reported_and_refitted(
    planted_refits: dict[str, DbtRun], registered: Path, tmp_path: Path
) -> None:
    old = plan_run(registered, tmp_path / "old", {"refit": False, "refit_after_days": 0})
    assert old.returncode == 0, old.output[-3000:]
    assert "more than var refit_after_days (0): refitting" in old.output
    other = plan_run(registered, tmp_path / "other", {"refit": False,
                     "clustering_features": ["recency_days", "frequency", "monetary"],
                     "log_transformed_features": ["frequency", "monetary"]})  # fmt: skip
    assert other.returncode == 0, other.output[-3000:]
    assert "[segment_model_plan] WARNING: model 1 in segment_models was fitted on the features" in (
        other.output
    )
    older = tmp_path / "older.duckdb"
    copy_database(DbtRun(0, "", registered), older)
    with duckdb.connect(str(older)) as con:
        con.execute("update segment_models set registry_version = 0")
    every = planted_refits["first"].workdir.parent / "every.csv"
    variables = {"raw_transactions_path": str(every), "n_clusters": 4}
    refit = run_dbt(REFIT, tmp_path / "refit", variables, database=older)
    assert refit.returncode == 0, refit.output[-3000:]
    assert "written by an older version of the project" in refit.output
    rows = DbtRun(0, "", older).query(
        "select status, min(segment_id) from segment_model_segments where model_id = 2 group by 1"
    )
    assert rows == [("new", 5)]  # nothing matched against it; ids go on after model 1's


def test_refit_false_on_changed_data_warns_of_the_drift(
    planted_refits: dict[str, DbtRun], tmp_path: Path
) -> None:
    database = copy_database(planted_refits["first"], tmp_path / "scored.duckdb")
    three = planted_groups(tmp_path / "three.csv", ["loyal", "recent", "lapsed"])
    run = run_dbt(REFIT, tmp_path, {"raw_transactions_path": str(three), "refit": False,
                                    "n_clusters": 4}, database=database)  # fmt: skip
    assert run.returncode == 0, run.output[-3000:]
    assert "scoring with model 1" in run.output
    assert "warn_segment_share_moved" in warnings(run.output)
    shares = dict(run.query(
        "select subject, current_value from segment_drift where measure = 'segment_share_points'"
    ))  # fmt: skip
    assert sorted(round(v, 1) for v in shares.values()) == [0.0, 33.3, 33.3, 33.3]
    assert run.scalar("select count(*) from segment_models") == 1


def test_the_report_says_which_model_scored_and_whether_it_refitted(
    bundled_build: DbtRun, scored_without_refit: DbtRun, tmp_path: Path
) -> None:
    fitted = write_report(bundled_build.database, tmp_path / "fitted", png=False)[0].read_text()
    assert "This build refitted: model 1 (k = 4, fitted" in fitted
    assert "no earlier model to match against: every segment is new" in fitted
    assert "No earlier model to compare with yet." in fitted
    scored = write_report(scored_without_refit.database, tmp_path / "scored", png=False)
    html = scored[0].read_text()
    assert "This build did not refit: it scored every customer with registered model 1" in html
    assert "no Ward tree was fitted" in html
    assert "Drift against model 1" in html and "PSI warns above 0.2" in html


def test_a_full_refresh_leaves_the_registry_alone(registered: Path, tmp_path: Path) -> None:
    run = run_dbt(["build", "--select", "segment_model_plan", "segment_models", "--full-refresh",
                   "--exclude-resource-type", "test"], tmp_path, {"refit": False},
                  database=registered)  # fmt: skip
    assert run.returncode == 0, run.output[-3000:]
    assert DbtRun(0, "", registered).scalar("select count(*) from segment_models") == 1
