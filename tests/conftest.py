"""Shared helpers: run dbt end to end in a temporary directory, never on the user's database."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DBT = Path(sys.executable).with_name("dbt")

ONLINE_RETAIL_COLUMNS = [
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
]


@dataclass
class DbtRun:
    """Outcome of one dbt invocation."""

    returncode: int
    output: str
    database: Path
    workdir: Path | None = None

    def query(self, sql: str) -> list[tuple]:
        """Run a query on the run's database (read-only) and return all rows."""
        with duckdb.connect(str(self.database), read_only=True) as con:
            return con.execute(sql).fetchall()

    def scalar(self, sql: str) -> object:
        """Run a query that returns one value."""
        return self.query(sql)[0][0]


def run_dbt(
    args: list[str],
    workdir: Path,
    variables: dict | None = None,
    database: Path | None = None,
    parsed_by: DbtRun | None = None,
    unit_tests: bool = False,
) -> DbtRun:
    """Run dbt from the project root with its own database, target and log directories.

    `dbt build` and `dbt test` leave out dbt's unit tests unless ``unit_tests``: they read no
    input file, only the rows in their YAML (and pin the vars they depend on), so the same
    checks would run in every build; the bundled build runs them, once per session. A build
    without them is still a complete build for the build log and the report.

    ``parsed_by``: an earlier run on the same database with the same vars, whose saved parse
    this run starts from (dbt's partial parsing: about 4 s less). dbt checks that the project
    files, the vars and the profile, database path included, are unchanged, and parses the
    whole project again when any is not.
    """
    database = database or workdir / "test.duckdb"
    if parsed_by is not None and parsed_by.workdir is not None:
        saved = parsed_by.workdir / "target" / "partial_parse.msgpack"
        if saved.exists() and parsed_by.workdir != workdir:
            (workdir / "target").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(saved, workdir / "target" / "partial_parse.msgpack")
    env = {**os.environ, "DBT_DUCKDB_PATH": str(database), "DBT_PROFILES_DIR": str(PROJECT_ROOT)}
    command = [
        str(DBT),
        *args,
        "--target-path",
        str(workdir / "target"),
        "--log-path",
        str(workdir / "logs"),
    ]
    if args[0] in {"build", "test"} and not unit_tests:
        command += ["--exclude-resource-type", "unit_test"]
    if variables:
        command += ["--vars", json.dumps(variables)]
    completed = subprocess.run(
        command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=False
    )
    return DbtRun(completed.returncode, completed.stdout + completed.stderr, database, workdir)


def copy_database(run: DbtRun, path: Path) -> Path:
    """A copy of a run's database, for a test that writes to it (shared builds stay read-only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run.database, path)
    return path


@pytest.fixture
def dbt_runner(tmp_path: Path) -> Callable[..., DbtRun]:
    """Run dbt in this test's temporary directory."""

    def runner(args: list[str], variables: dict | None = None) -> DbtRun:
        return run_dbt(args, tmp_path, variables)

    return runner


# Tests that use these fixtures run dbt (or read a database dbt built): marked `dbt`, so that
# `make test-fast` (-m "not dbt") leaves them out, whichever file they are in.
DBT_FIXTURES = {"bundled_build", "dbt_runner"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if DBT_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.dbt)


@pytest.fixture(scope="session")
def bundled_build(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbtRun]:
    """One full `dbt build` on the bundled Online Retail data, shared by the tests that read it.

    Read-only: a test that writes (dbt or SQL) works on `copy_database` of it. dbt commands that
    only read it (`docs generate --no-compile`, `show`) may run on it, with ``parsed_by`` it.
    """
    workdir = tmp_path_factory.mktemp("bundled")
    run = run_dbt(["build"], workdir, unit_tests=True)
    assert run.returncode == 0, run.output[-5000:]
    built = hashlib.sha256(run.database.read_bytes()).hexdigest()
    yield run
    assert hashlib.sha256(run.database.read_bytes()).hexdigest() == built, (
        "a test wrote to the shared bundled database: write to a copy_database of it instead"
    )


@contextmanager
def database_held_open(database: Path) -> Iterator[int]:
    """Another process holding the DuckDB file open (with a table in it); yields its PID."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); "
            "con.execute('create table if not exists t as select 1'); "
            "print('ready', flush=True); time.sleep(60)",
            str(database),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()
