"""``make bench``: the dbt pipeline against two hand-written baselines, on synthetic data.

For each size it generates the data (once, cached under ``--work``), then runs, one after the
other: the project's full ``dbt build`` with the default vars (k chosen automatically: the
path users run), the same build with ``n_clusters: 5`` (to compare with the five planted
groups), reference A (the pandas notebook,
under a 16 GiB address-space limit so that it dies cleanly where it would not fit) and
reference B (DuckDB + scikit-learn by hand), plus a bare DuckDB scan and group-by of the same
Parquet. It records wall time, CPU time and peak memory of each process, the per-stage times of
the project's builds (dbt's run_results and the models' timing lines, and the time that passes
outside any node: parsing, start-up), and the adjusted Rand index of the clusters against the
planted groups. After the default build it writes the report as ``make build`` does and
measures it (bench/report_page.py: page size, time to write, time for Chromium to draw it). It
writes ``results.json`` and
``results.md`` under ``--out`` and checks the targets.

``python -m bench.run --sizes 20000 200000 2000000``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_A_MEMORY_LIMIT = 16 * 2**30
FEATURE_MODELS = (
    "stg_online_retail__transaction_lines",
    "int_transaction_lines_classified",
    "int_orders_aggregated",
    "customer_features",
)
FINAL_FIT_MODELS = ("cluster_centroids", "customer_clusters")
# The lifetime-value stage: SQL statistics, both fits, per-customer values, validation.
CLV_MODELS = (
    "customer_purchase_histories",
    "clv_calibration_histories",
    "clv_model_parameters",
    "clv_predictions",
    "clv_holdout_predictions",
    "customer_value",
    "clv_validation",
)

# The stages the issues after the first segmentation added (besides CLV above): their models.
ADDED_STAGES = {
    "segment rules": ("segment_rule_tree", "customer_rule_segments", "segment_rules"),
    "model registry": ("segment_model_plan", "segment_models", "segment_model_segments"),
    "drift": ("segment_drift",),
    "audiences": ("segment_audiences",),
    "migration history": ("customer_segment_history", "segment_migration"),
}


@dataclass
class Measured:
    """One measured process."""

    wall_s: float
    cpu_s: float
    peak_mb: float
    returncode: int
    output: str = ""


@dataclass
class SizeResult:
    """Everything measured at one size."""

    customers: int
    lines: int
    generate_s: float
    runs: dict[str, dict[str, object]] = field(default_factory=dict)


def measure(
    command: list[str], env: dict[str, str] | None = None, memory_limit: int | None = None
) -> Measured:
    """Run a command; its wall time, CPU time and peak resident memory (from wait4)."""

    def limit() -> None:
        if memory_limit:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=limit,
    )
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    return Measured(
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_mb=usage.ru_maxrss / 1024,
        returncode=os.waitstatus_to_exitcode(status),
        output=output,
    )


def adjusted_rand(planted: Path, ids: list[int], labels: list[int]) -> float:
    """ARI of labels (for customer ids) against the planted groups."""
    from sklearn.metrics import adjusted_rand_score

    truth = dict(duckdb.sql(f"select customer_id, planted_group from '{planted}'").fetchall())
    return float(adjusted_rand_score([truth[i] for i in ids], labels))


def run_project(data: Path, work: Path, extra_vars: dict[str, object]) -> dict[str, object]:
    """The full dbt build on ``data``, with the default vars plus ``extra_vars``."""
    database = work / "project.duckdb"
    for stale in work.glob("project.duckdb*"):
        stale.unlink()
    env = {**os.environ, "DBT_DUCKDB_PATH": str(database), "DBT_PROFILES_DIR": str(PROJECT_ROOT)}
    dbt = Path(sys.executable).with_name("dbt")
    variables = json.dumps({"raw_transactions_path": str(data), **extra_vars})
    measured = measure(
        [
            str(dbt),
            "build",
            "--target-path",
            str(work / "target"),
            "--log-path",
            str(work / "logs"),
            "--vars",
            variables,
        ],
        env,
    )
    result: dict[str, object] = asdict(measured) | {"output": measured.output[-4000:]}
    if measured.returncode != 0:
        return result
    nodes = json.loads((work / "target" / "run_results.json").read_text())["results"]
    spans = [
        (_iso(t["started_at"]), _iso(t["completed_at"])) for node in nodes for t in node["timing"]
    ]
    seconds = {
        node["unique_id"].split(".")[-1]: sum(
            (_iso(t["completed_at"]) - _iso(t["started_at"])) for t in node["timing"]
        )
        for node in nodes
        if node["unique_id"].startswith("model.")
    }
    sweep = re.search(r"\[kmeans_candidates\] k-means for k=\S+: ([\d.]+) s", measured.output)
    result["stages"] = {
        "features": sum(seconds.get(m, 0.0) for m in FEATURE_MODELS),
        "kmeans_sweep": float(sweep.group(1)) if sweep else None,
        "final_fits": sum(seconds.get(m, 0.0) for m in FINAL_FIT_MODELS),
        "clv": sum(seconds.get(m, 0.0) for m in CLV_MODELS),
        "clv_nodes": sum(
            sum((_iso(t["completed_at"]) - _iso(t["started_at"])) for t in node["timing"])
            for node in nodes
            if _is_clv_node(node)
        ),
    }
    result["model_seconds"] = seconds
    result["node_seconds"] = sum(end - start for start, end in spans)
    # Wall time before the first node starts and after the last ends: dbt's start, parsing.
    result["outside_nodes_s"] = (
        measured.wall_s - (max(e for _, e in spans) - min(s for s, _ in spans)) if spans else None
    )
    with duckdb.connect(str(database), read_only=True) as con:
        ids, labels = zip(
            *con.execute(
                "select customer_id, cluster_id from customer_clusters order by customer_id"
            ).fetchall(),
            strict=True,
        )
    result["k"] = max(labels)
    result["ari"] = adjusted_rand(data.with_name("planted_groups.parquet"), list(ids), list(labels))
    if not extra_vars:  # the path users run: the default build, then the report
        from bench.report_page import measure_report

        result["report"] = measure_report(database, work / "report")
    return result


def _is_clv_node(node: dict) -> bool:
    """A CLV model, or a test of one (its unique id names the model, or its dependencies do)."""
    name = node["unique_id"].split(".")[-1]
    if node["unique_id"].startswith("model."):
        return name in CLV_MODELS
    if node["unique_id"].startswith("test."):
        return any(model in node["unique_id"] for model in CLV_MODELS) or any(
            word in node["unique_id"] for word in ("p_alive_matches", "clv_models_not_fitted",
                                                   "frequency_correlated")
        )  # fmt: skip
    return False


def _iso(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def run_reference(which: str, data: Path, work: Path) -> dict[str, object]:
    """Reference A (notebook) or B (best) in its own process."""
    out = work / f"reference_{which}.json"
    out.unlink(missing_ok=True)
    measured = measure(
        [
            sys.executable,
            "-m",
            "bench.references",
            which,
            str(data),
            "--out",
            str(out),
        ],
        {**os.environ, "PYTHONPATH": f"{PROJECT_ROOT / 'python'}{os.pathsep}{PROJECT_ROOT}"},
        REFERENCE_A_MEMORY_LIMIT if which == "notebook" else None,
    )
    result: dict[str, object] = asdict(measured) | {"output": measured.output[-2000:]}
    if measured.returncode == 0 and out.exists():
        details = json.loads(out.read_text())
        result["stages"] = details["stages"]
        result["notes"] = details["notes"]
        result["ari_k5"] = adjusted_rand(
            data.with_name("planted_groups.parquet"), details["customer_ids"], details["labels_k5"]
        )
    else:
        died = "MemoryError" if "MemoryError" in measured.output else f"exit {measured.returncode}"
        result["notes"] = [f"died ({died}) under a {REFERENCE_A_MEMORY_LIMIT // 2**30} GiB limit"]
    return result


def bare_scan(data: Path) -> dict[str, object]:
    """A bare DuckDB scan and group-by of the Parquet: the floor for the feature stage."""
    started = time.perf_counter()
    duckdb.sql(
        f"select CustomerID, count(*), sum(Quantity * UnitPrice), max(InvoiceDate) "
        f"from '{data}' group by CustomerID"
    ).fetchall()
    return {"wall_s": time.perf_counter() - started}


RUNS = ("project", "project_k5", "reference_a_notebook", "reference_b_best", "bare_scan")


def bench_size(
    customers: int, seed: int, work_root: Path, runs: tuple[str, ...] = RUNS, rounds: int = 1
) -> SizeResult:
    """Generate (or reuse) the data for one size and run everything (or ``runs``) on it.

    With ``rounds`` > 1 the runs alternate (project, reference B, project, reference B, ...) so
    that the machine's drift touches both alike, and each run keeps its median round (by wall
    time), with every round's wall time in ``rounds_wall_s`` and its notes.
    """
    from bench.generate import generate

    work = work_root / str(customers)
    data = work / "transactions.parquet"
    started = time.perf_counter()
    if not data.exists() or not (work / "planted_groups.parquet").exists():
        generate(customers, seed, work)
    generate_s = time.perf_counter() - started
    lines = duckdb.sql(f"select count(*) from '{data}'").fetchall()[0][0]
    result = SizeResult(customers, lines, generate_s)
    print(f"== {customers:,} customers, {lines:,} lines", flush=True)
    measured: dict[str, list[dict[str, object]]] = {}
    for _ in range(rounds):
        for name, run in [
            ("project", lambda: run_project(data, work, {})),
            ("project_k5", lambda: run_project(data, work, {"n_clusters": 5})),
            ("reference_a_notebook", lambda: run_reference("notebook", data, work)),
            ("reference_b_best", lambda: run_reference("best", data, work)),
            ("bare_scan", lambda: bare_scan(data)),
        ]:
            if name not in runs:
                continue
            measured.setdefault(name, []).append(run())
            print(f"   {name}: {measured[name][-1].get('wall_s', 0):.1f} s", flush=True)
    for name, done in measured.items():
        result.runs[name] = median_round(done)
    return result


def median_round(done: list[dict[str, object]]) -> dict[str, object]:
    """The round of median wall time (the later of the two middle ones), noting every round's."""
    if len(done) == 1:
        return done[0]
    walls = [float(run.get("wall_s", 0.0)) for run in done]
    chosen = dict(sorted(done, key=lambda run: float(run.get("wall_s", 0.0)))[len(done) // 2])
    listed = ", ".join(f"{wall:.1f}" for wall in walls)
    notes = list(chosen.get("notes") or [])
    chosen["notes"] = [*notes, f"median of {len(done)} alternating rounds: {listed} s"]
    chosen["rounds_wall_s"] = walls
    return chosen


def _ratio(a: object, b: object) -> float | None:
    if isinstance(a, int | float) and isinstance(b, int | float) and b > 0:
        return a / b
    return None


def targets(results: list[SizeResult]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for every target of the issue."""
    by_size = {r.customers: r for r in results}
    checks: list[tuple[str, str, bool | None]] = []
    for r in results:
        project, best, notebook = (
            r.runs.get("project", {}),
            r.runs.get("reference_b_best", {}),
            r.runs.get("reference_a_notebook", {}),
        )
        p_stages, b_stages = project.get("stages", {}), best.get("stages", {})
        if r.customers >= 200_000:
            for stage in ("features", "kmeans_sweep", "final_fits"):
                ratio = _ratio(p_stages.get(stage), b_stages.get(stage))
                checks.append(
                    (f"{r.customers:,}: {stage} <= 1.3x reference B", _fmt(ratio), _le(ratio, 1.3))
                )
        ratio = _ratio(project.get("wall_s"), best.get("wall_s"))
        checks.append(
            (f"{r.customers:,}: whole build <= 1.5x reference B", _fmt(ratio), _le(ratio, 1.5))
        )
        ratio = _ratio(project.get("peak_mb"), best.get("peak_mb"))
        checks.append(
            (f"{r.customers:,}: peak memory <= 1.2x reference B", _fmt(ratio), _le(ratio, 1.2))
        )
        if p_stages.get("clv") is not None:
            # Two dbt threads: the CLV nodes' seconds against all nodes' seconds is their share
            # of the build's work; against the wall time it counts their overlap twice.
            share = _ratio(p_stages.get("clv_nodes"), project.get("node_seconds"))
            checks.append(
                (
                    f"{r.customers:,}: CLV stage (its models and tests) < 10% of the build's "
                    "node time",
                    _fmt(None if share is None else 100 * share, "%"),
                    None if share is None else share < 0.10,
                )
            )
            share = _ratio(p_stages.get("clv"), project.get("wall_s"))
            checks.append(
                (
                    f"{r.customers:,}: CLV models' seconds < 10% of the build's wall time",
                    _fmt(None if share is None else 100 * share, "%"),
                    None if share is None else share < 0.10,
                )
            )
        seconds = project.get("model_seconds") or {}
        if r.customers >= 2_000_000 and seconds:
            for stage, names in ADDED_STAGES.items():
                share = _ratio(sum(seconds.get(m, 0.0) for m in names), project.get("node_seconds"))
                checks.append(
                    (
                        f"{r.customers:,}: {stage} models <= 10% of the build's node time",
                        _fmt(None if share is None else 100 * share, "%"),
                        None if share is None else share <= 0.10,
                    )
                )
        ratio = _ratio(p_stages.get("features"), r.runs.get("bare_scan", {}).get("wall_s"))
        checks.append(
            (f"{r.customers:,}: feature stage <= 3x bare scan", _fmt(ratio), _le(ratio, 3))
        )
        # Runs from before the default-vars build had n_clusters 5 in "project" (ari_k5).
        fixed = r.runs.get("project_k5") or r.runs["project"]
        ari = fixed.get("ari", fixed.get("ari_k5"))
        checks.append(
            (
                f"{r.customers:,}: ARI k=5 vs planted groups >= 0.75",
                _fmt(ari, ""),
                None if ari is None else ari >= 0.75,
            )
        )
        page = project.get("report") or {}
        if page.get("page_mb") is not None:
            checks.append(
                (
                    f"{r.customers:,}: report page < 5 MB",
                    _fmt(page["page_mb"], " MB"),
                    page["page_mb"] < 5,
                )
            )
        if page.get("browser_s") is not None:
            checks.append(
                (
                    f"{r.customers:,}: Chromium draws the report in < 3 s",
                    _fmt(page["browser_s"], " s"),
                    page["browser_s"] < 3,
                )
            )
        if r.customers <= 20_000:
            ratio = _ratio(notebook.get("wall_s"), project.get("wall_s"))
            checks.append(
                (
                    f"{r.customers:,}: >= 3x faster than reference A",
                    _fmt(ratio),
                    None if ratio is None else ratio >= 3,
                )
            )
    # Only runs of the same kind: before the default-vars build, "project" had n_clusters 5.
    if (
        200_000 in by_size
        and 2_000_000 in by_size
        and ("project_k5" in by_size[200_000].runs) == ("project_k5" in by_size[2_000_000].runs)
    ):
        ratio = _ratio(
            by_size[2_000_000].runs["project"].get("wall_s"),
            by_size[200_000].runs["project"].get("wall_s"),
        )
        checks.append(("2M takes <= 10x the time of 200k", _fmt(ratio), _le(ratio, 10)))
    return checks


def _fmt(value: float | None, suffix: str = "x") -> str:
    return "not measured" if value is None else f"{value:.2f}{suffix}"


def _le(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def markdown(results: list[SizeResult]) -> str:
    """The results as Markdown tables."""
    lines = [
        "| customers | lines | run | wall s | CPU s | peak MB | features s | k-means sweep s "
        "| final fits s | CLV s | k | ARI | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for name, run in r.runs.items():
            stages = run.get("stages") or {}
            cells = [
                f"{r.customers:,}",
                f"{r.lines:,}",
                name,
                _num(run.get("wall_s")),
                _num(run.get("cpu_s")),
                _num(run.get("peak_mb"), 0),
                _num(stages.get("features")),
                _num(stages.get("kmeans_sweep")),
                _num(stages.get("final_fits")),
                _num(stages.get("clv")),
                _num(run.get("k"), 0),
                _num(run.get("ari", run.get("ari_k5")), 3),
                "; ".join(run.get("notes", []) or []),
            ]
            if run.get("returncode", 0) not in (0, None) and name.startswith("project"):
                cells[-1] = f"failed (exit {run['returncode']})"
            lines.append("| " + " | ".join(cells) + " |")
    lines += profile(results)
    lines += [
        "",
        "| customers | report page MB | report written (with PNGs) s | Chromium draws it s |",
        "|---|---|---|---|",
    ]
    for r in results:
        page = r.runs.get("project", {}).get("report") or {}
        if page:
            lines.append(
                f"| {r.customers:,} | {_num(page.get('page_mb'), 2)} | "
                f"{_num(page.get('report_s'))} | {_num(page.get('browser_s'), 2)} |"
            )
    lines += ["", "| target | measured | met |", "|---|---|---|"]
    for target, value, met in targets(results):
        lines.append(
            f"| {target} | {value} | {'yes' if met else 'no' if met is False else 'n/a'} |"
        )
    return "\n".join(lines) + "\n"


def profile(results: list[SizeResult], top: int = 8) -> list[str]:
    """Where the default build spends its time: the slowest models, and outside any node."""
    lines = ["", "| customers | default build: where the time goes |", "|---|---|"]
    for r in results:
        run = r.runs.get("project", {})
        seconds = run.get("model_seconds") or {}
        if not seconds or "node_seconds" not in run:  # a run from before the profile existed
            continue
        slowest = sorted(seconds.items(), key=lambda item: -item[1])[:top]
        parts = [f"{name} {value:.1f} s" for name, value in slowest]
        parts.append(f"all nodes {_num(run.get('node_seconds'))} s")
        parts.append(f"outside any node {_num(run.get('outside_nodes_s'))} s")
        lines.append(f"| {r.customers:,} | {', '.join(parts)} |")
    return lines


def _num(value: object, digits: int = 1) -> str:
    return f"{value:,.{digits}f}" if isinstance(value, int | float) else ""


def machine() -> str:
    """A line describing the machine the figures come from."""
    import platform

    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {memory:.0f} GiB, {platform.platform()}"


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000, 2_000_000])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--work", type=Path, default=PROJECT_ROOT / "bench" / "work")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench" / "results")
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="*",
        default=[],
        help="results.json files of earlier runs whose other sizes join the table",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="alternate the runs this many times at each size and keep each run's median",
    )
    parser.add_argument(
        "--runs",
        nargs="+",
        choices=RUNS,
        default=list(RUNS),
        help="only these runs (e.g. project: the default build alone)",
    )
    args = parser.parse_args(argv)
    results = [
        bench_size(n, args.seed, args.work, tuple(args.runs), args.rounds) for n in args.sizes
    ]
    for earlier in args.merge:
        for size in json.loads(earlier.read_text())["sizes"]:
            current = {r.customers: r for r in results}.get(size["customers"])
            if current is None:
                results.append(SizeResult(**size))
            else:  # the runs not repeated this time, kept from the earlier results
                for name, run in size["runs"].items():
                    current.runs.setdefault(name, run)
    results.sort(key=lambda r: r.customers)
    args.out.mkdir(parents=True, exist_ok=True)
    header = f"Measured {time.strftime('%Y-%m-%d')} on {machine()}; seed {args.seed}.\n\n"
    (args.out / "results.md").write_text(header + markdown(results))
    (args.out / "results.json").write_text(
        json.dumps(
            {"machine": machine(), "seed": args.seed, "sizes": [asdict(r) for r in results]},
            indent=1,
        )
    )
    print(header + markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
