from __future__ import annotations

import sys
from pathlib import Path

import duckdb
from bench.run import SizeResult, markdown, measure, median_round, targets


def fake(customers: int, project_wall: float, best_wall: float) -> SizeResult:
    result = SizeResult(customers=customers, lines=40 * customers, generate_s=1.0)
    result.runs = {
        "project": {
            "wall_s": project_wall,
            "cpu_s": 1.0,
            "peak_mb": 900.0,
            "returncode": 0,
            "stages": {
                "features": 2.0,
                "kmeans_sweep": 10.0,
                "final_fits": 1.0,
                "clv": 0.5,
                "clv_nodes": 0.3,
            },
            "k": 4,
            "ari": 0.8,
            "model_seconds": {
                "cluster_model_selection": 3.0,
                "customer_features": 2.0,
                "segment_rule_tree": 0.4,
                "segment_rules": 0.3,
                "segment_drift": 0.6,
            },
            "node_seconds": 6.0,
            "outside_nodes_s": 1.5,
        },
        "project_k5": {
            "wall_s": project_wall,
            "cpu_s": 1.0,
            "peak_mb": 900.0,
            "returncode": 0,
            "k": 5,
            "ari": 0.9,
        },
        "reference_a_notebook": {
            "wall_s": 4 * project_wall,
            "cpu_s": 1.0,
            "peak_mb": 3000.0,
            "returncode": 0,
            "stages": {"features": 1.0, "kmeans_sweep": 20.0, "final_fits": 5.0},
        },
        "reference_b_best": {
            "wall_s": best_wall,
            "cpu_s": 1.0,
            "peak_mb": 1000.0,
            "returncode": 0,
            "stages": {"features": 1.0, "kmeans_sweep": 10.0, "final_fits": 1.0},
        },
        "bare_scan": {"wall_s": 1.0},
    }
    return result


def test_targets_are_checked_as_ratios() -> None:
    checks = {
        name: (value, met)
        for name, value, met in targets(
            [fake(20_000, 10.0, 6.0), fake(200_000, 30.0, 20.0), fake(2_000_000, 300.0, 200.0)]
        )
    }
    assert checks["20,000: >= 3x faster than reference A"] == ("4.00x", True)
    assert checks["200,000: features <= 1.3x reference B"] == ("2.00x", False)
    assert checks["200,000: kmeans_sweep <= 1.3x reference B"] == ("1.00x", True)
    assert checks["2M takes <= 10x the time of 200k"] == ("10.00x", True)
    assert checks["2,000,000: ARI k=5 vs planted groups >= 0.75"] == ("0.90", True)
    # Each added stage's models against the build's node time (6 s): rules 0.7 s, drift 0.6 s.
    assert checks["2,000,000: segment rules models <= 10% of the build's node time"] == (
        "11.67%",
        False,
    )
    assert checks["2,000,000: drift models <= 10% of the build's node time"] == ("10.00%", True)
    assert "200,000: drift models <= 10% of the build's node time" not in checks


def test_markdown_has_a_row_per_run_and_the_targets() -> None:
    text = markdown([fake(20_000, 10.0, 6.0)])
    assert text.count("| 20,000 | 800,000 |") == 5
    assert (
        "| 20,000 | 800,000 | project | 10.0 | 1.0 | 900 | 2.0 | 10.0 | 1.0 | 0.5 | 4 | 0.800 |"
        in text
    )
    assert (
        "| 20,000 | cluster_model_selection 3.0 s, customer_features 2.0 s, segment_drift 0.6 s, "
        "segment_rule_tree 0.4 s, segment_rules 0.3 s, all nodes 6.0 s, outside any node 1.5 s |"
    ) in text
    assert "| 20,000: whole build <= 1.5x reference B | 1.67x | no |" in text
    assert (
        "| 20,000: CLV stage (its models and tests) < 10% of the build's node time | 5.00% | yes |"
    ) in text
    assert "| 20,000: CLV models' seconds < 10% of the build's wall time | 5.00% | yes |" in text


def test_measure_reports_time_cpu_and_peak_memory() -> None:
    measured = measure([sys.executable, "-c", "x = bytearray(50 * 2**20); print('ok')"])
    assert measured.returncode == 0
    assert measured.output.strip() == "ok"
    assert measured.peak_mb > 50
    assert measured.wall_s > 0


def test_table_hashes_name_what_changed_and_ignore_float_noise(tmp_path: Path) -> None:
    """A changed value, row or type is named; the last bits of a double and timings are not."""
    from bench.table_hashes import differences, relation_hashes

    def database(name: str, sql: str) -> Path:
        path = tmp_path / f"{name}.duckdb"
        with duckdb.connect(str(path)) as con:
            con.execute(
                "create table build_log (ended_at timestamp); "
                "create table segment_models (k int, fitted_at timestamp); " + sql
            )
        return path

    base = (
        "create table t as "
        "select 1 as id, 0.1::double + 0.2 as share, [1.5, 2.0]::double[] as centre, 'a' as s; "
    )
    before = relation_hashes(
        database(
            "before",
            base + "insert into build_log values (now()); "
            "insert into segment_models values (4, '2026-01-01')",
        )
    )
    same = relation_hashes(
        database(
            "same",
            base.replace("0.1::double + 0.2", "0.3::double").replace("1.5", "1.5000000000001")
            + "insert into segment_models values (4, '2026-02-02')",
        )
    )
    assert differences(before, same) == []
    changed = relation_hashes(
        database(
            "changed",
            base.replace("'a' as s", "'b' as s").replace("0.1::double + 0.2", "0.31::double")
            + "insert into segment_models values (5, '2026-01-01')",
        )
    )
    assert differences(before, changed) == [
        "main.segment_models.(whole rows) differs",
        "main.segment_models.k differs",
        "main.t.(whole rows) differs",
        "main.t.s differs",
        "main.t.share differs",
    ]
    # Two values swapped between rows: every column holds the same values, the rows do not.
    rows = "create table t as select * from (values (1, 'a'), (2, 'b')) as v(id, s); "
    swapped = "create table t as select * from (values (1, 'b'), (2, 'a')) as v(id, s); "
    assert differences(
        relation_hashes(database("rows", rows)), relation_hashes(database("swapped", swapped))
    ) == ["main.t.(whole rows) differs"]


def test_rounds_keep_the_median_run_and_list_every_round() -> None:
    rounds = [{"wall_s": 30.0, "k": 1}, {"wall_s": 10.0, "k": 2}, {"wall_s": 20.0, "k": 3}]
    kept = median_round(rounds)
    assert kept["k"] == 3
    assert kept["notes"] == ["median of 3 alternating rounds: 30.0, 10.0, 20.0 s"]
    assert median_round(rounds[:1]) == rounds[0]
