"""Shared helpers: run dbt end to end in a temporary directory, never on the user's database.

Builds that no test writes to and whose input is known before the tests run are
`background_build`s: the session starts them in a second thread, one at a time in the order the
tests need them, while the other tests (and their own builds) run. dbt keeps about one core
busy, so on two cores the two run side by side; a test using such a build waits for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    environment: dict[str, str] | None = None,
) -> DbtRun:
    """Run dbt from the project root with its own database, target and log directories.

    `dbt build` and `dbt test` leave out dbt's unit tests unless ``unit_tests``: they read no
    input file, only the rows in their YAML (and pin the vars they depend on), so the same
    checks would run in every build; the bundled build runs them, once per session. A build
    without them is still a complete build for the build log and the report.

    ``parsed_by``: an earlier run on the same database with the same vars, whose saved parse
    this run starts from (dbt's partial parsing: about 4 s less). dbt checks that the project
    files, the vars and the profile, database path included, are unchanged, and parses the
    whole project again when any is not. ``environment``: variables set for this run only.
    """
    database = database or workdir / "test.duckdb"
    if parsed_by is not None and parsed_by.workdir is not None:
        saved = parsed_by.workdir / "target" / "partial_parse.msgpack"
        if saved.exists() and parsed_by.workdir != workdir:
            (workdir / "target").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(saved, workdir / "target" / "partial_parse.msgpack")
    env = {**os.environ, **(environment or {})}
    env |= {"DBT_DUCKDB_PATH": str(database), "DBT_PROFILES_DIR": str(PROJECT_ROOT)}
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


def show_rows(run: DbtRun, model: str, workdir: Path, limit: int) -> list[dict[str, Any]]:
    """The rows `dbt show --select model` prints for a read-only build (parsed_by it)."""
    shown = run_dbt(
        ["show", "--select", model, "--limit", str(limit), "--output", "json"],
        workdir,
        database=run.database,
        parsed_by=run,
    )
    assert shown.returncode == 0, shown.output[-3000:]
    start = shown.output.index("\n{\n") + 1  # dbt prints the rows as one indented JSON object
    return json.JSONDecoder().raw_decode(shown.output[start:])[0]["show"]


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
# `make test-fast` (-m "not dbt") leaves them out, whichever file they are in. A
# `background_build` fixture is such a fixture too.
DBT_FIXTURES = {"bundled_build", "dbt_runner"}

# name of the fixture -> recipe(workdir): writes its input files there and runs dbt on them.
BACKGROUND_BUILDS: dict[str, Callable[[Path], Any]] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if (DBT_FIXTURES | set(BACKGROUND_BUILDS)) & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.dbt)


def background_build(recipe: Callable[[Path], Any]) -> Any:
    """A module-scoped fixture, named as ``recipe``, whose value ``recipe(workdir)`` returns.

    The recipe runs in the background thread (see the module docstring), so it must not use
    other fixtures, the default DuckDB connection (``duckdb.sql``) or os.environ changes (give
    run_dbt an ``environment``). What it returns is shared by the module's tests: read-only.
    """
    name = recipe.__name__
    if name in BACKGROUND_BUILDS and BACKGROUND_BUILDS[name] is not recipe:
        raise ValueError(f"two background builds are named {name}")
    BACKGROUND_BUILDS[name] = recipe

    def fixture(background_builds: BackgroundBuilds) -> Any:
        return background_builds.result(name)

    fixture.__doc__ = recipe.__doc__
    return pytest.fixture(scope="module", name=name)(fixture)


class BackgroundBuilds:
    """The session's background builds: started in order, one at a time, in one thread."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory, names: list[str]) -> None:
        self._tmp_path_factory = tmp_path_factory
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="background-build")
        self._futures: dict[str, Future] = {
            name: self._executor.submit(BACKGROUND_BUILDS[name], tmp_path_factory.mktemp(name))
            for name in names
        }

    def result(self, name: str) -> Any:
        """The recipe's value once its build has finished (its exception, if it raised)."""
        if name not in self._futures:  # not foreseen at the session's start: build it now
            self._futures[name] = self._executor.submit(
                BACKGROUND_BUILDS[name], self._tmp_path_factory.mktemp(name)
            )
        return self._futures[name].result()

    def close(self) -> None:
        """Drop the builds not started yet; wait for the one running."""
        self._executor.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="session", autouse=True)
def background_builds(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BackgroundBuilds]:
    """Start the background builds the selected tests use, in the order they first use them."""
    needed: list[str] = []
    for item in request.session.items:
        for name in getattr(item, "fixturenames", ()):
            if name in BACKGROUND_BUILDS and name not in needed:
                needed.append(name)
    builds = BackgroundBuilds(tmp_path_factory, needed)
    yield builds
    builds.close()


def _bundled_build(workdir: Path) -> DbtRun:
    """One full `dbt build` on the bundled Online Retail data, with dbt's unit tests."""
    return run_dbt(["build"], workdir, unit_tests=True)


BACKGROUND_BUILDS["bundled_build"] = _bundled_build


@pytest.fixture(scope="session")
def bundled_build(background_builds: BackgroundBuilds) -> Iterator[DbtRun]:
    """One full `dbt build` on the bundled Online Retail data, shared by the tests that read it.

    Read-only: a test that writes (dbt or SQL) works on `copy_database` of it. dbt commands that
    only read it (`docs generate --no-compile`, `show`) may run on it, with ``parsed_by`` it.
    """
    run = background_builds.result("bundled_build")
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
