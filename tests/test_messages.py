"""What a user reads when a build fails: database file names, model errors, a held database.

Each message is checked where it is made, and one build per kind shows it reaching dbt's output.
A database file name with every hazard at once is the hostile build's (test_hostile_builds.py).
"""

from __future__ import annotations

import re
import traceback
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from conftest import ONLINE_RETAIL_COLUMNS, database_held_open, run_dbt

NO_DATA_TESTS = ["--exclude-resource-type", "test"]


def lines_between(output: str, start: str, end: str) -> list[str]:
    """The lines after the first one containing `start`, up to the next one containing `end`."""
    lines = output.splitlines()
    first = next(i for i, line in enumerate(lines) if start in line)
    last = next(i for i in range(first + 1, len(lines)) if end in lines[i])
    return lines[first + 1 : last]


# 1. Any legal database file name -----------------------------------------------------------


UNUSABLE_FILE_NAMES = [
    ("main.duckdb", "dbt-duckdb names the database 'main' but DuckDB names it 'main_db'"),
    ("a;b.duckdb", "dbt-duckdb names the database 'a' but DuckDB names it 'a;b'"),
    ("o'brien.duckdb", 'does not escape the quote in the database name "o\'brien"'),
]


@pytest.mark.parametrize(("file_name", "reason"), UNUSABLE_FILE_NAMES)
def test_a_file_name_dbt_duckdb_cannot_use_is_refused_clearly(
    tmp_path: Path, file_name: str, reason: str
) -> None:
    # What dbt-duckdb does with the profile's path: its credentials name the database, it opens
    # the file, and it hands the connection to the project's plugin.
    from dbt.adapters.duckdb.credentials import DuckDBCredentials
    from dbt.adapters.duckdb.plugins import BasePlugin

    from customer_segmentation.ingest.dbt_plugin import DatabaseNameError

    database = tmp_path / file_name
    credentials = DuckDBCredentials.from_dict({"path": str(database)})
    plugin = BasePlugin.create(
        "customer_segmentation.ingest.dbt_plugin", alias="transactions", credentials=credentials
    )
    with pytest.raises(DatabaseNameError) as error:
        plugin.configure_connection(duckdb.connect(credentials.path))
    assert str(error.value).startswith(f"{database}: dbt cannot build into a file of this name: ")
    assert reason in str(error.value)


@pytest.mark.dbt
def test_a_file_name_dbt_duckdb_cannot_use_is_the_end_of_dbt_output(tmp_path: Path) -> None:
    file_name, reason = UNUSABLE_FILE_NAMES[0]
    database = tmp_path / file_name
    run = run_dbt(
        ["build", "--select", "stg_online_retail__transaction_lines"], tmp_path, None, database
    )
    assert run.returncode != 0
    last = "\n".join(run.output.splitlines()[-2:])
    assert f"{database}: dbt cannot build into a file of this name: " in last
    assert reason in last
    assert "Traceback" not in run.output


# 2. A failed Python model: the cause first and last, a bug with its traceback ----------------


@pytest.mark.dbt
def test_a_model_error_is_the_first_line_and_the_summary(tmp_path: Path) -> None:
    # One customer: the first ml model stops (scaler_parameters; the same path for every
    # expected error, such as a bad clustering var, checked in-process below).
    message = (
        "1 customer(s) are too few to evaluate k=2 (need at least 3); lower k_min / n_clusters "
        "or add data"
    )
    line = "1000,85123A,HEART,2,2011-01-01 10:00,5.0,1,United Kingdom"
    path = tmp_path / "one.csv"
    path.write_text(",".join(ONLINE_RETAIL_COLUMNS) + "\n" + line + "\n")
    # Without data tests: their warnings about so small a file would fill dbt's summary.
    run = run_dbt(
        ["build", "--select", "+scaler_parameters", "+data_quality_audit", *NO_DATA_TESTS],
        tmp_path,
        {"raw_transactions_path": str(path)},
    )
    assert run.returncode != 0
    lines = run.output.splitlines()
    # First: the cause, before dbt's ERROR line for the model.
    first = next(i for i, line in enumerate(lines) if "ERROR" in line)
    assert lines[first] == f"[scaler_parameters] ERROR: {message}"
    assert "ERROR creating python table model main.scaler_parameters" in lines[first + 1]
    # Last: dbt's summary says it in a short entry, with no traceback anywhere.
    assert message in "\n".join(lines[-15:])
    assert "Traceback" not in run.output
    entry = lines_between(run.output, "Failure in model scaler_parameters", "compiled code at")
    text = [re.sub(r"\x1b\[[0-9;]*m|\d\d:\d\d:\d\d", "", line).strip() for line in entry]
    assert [line for line in text if line] == [
        "Runtime Error in model scaler_parameters (models/ml/scaler_parameters.py)",
        "Python model failed:",
        f"customer_segmentation.models.boundary.ModelError: scaler_parameters: {message}",
    ]
    # The build got as far as the audit, and it accounts for the line.
    assert run.scalar("select sum(n_rows) from data_quality_audit") == 1


def test_a_bad_clustering_var_is_named_by_the_first_ml_model(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from customer_segmentation import models
    from customer_segmentation.models import ModelError
    from customer_segmentation.spark.session import project_clustering_settings

    # The vars reach the models as their `clustering` config; a bad one stops the first.
    message = "var k_max: expected a whole number >= 2, got 1"
    features = duckdb.connect().sql("select 1 as customer_id")
    with pytest.raises(ModelError, match=re.escape(f"scaler_parameters: {message}")):
        models.scaler_parameters(features, project_clustering_settings({"k_max": 1}))
    assert f"[scaler_parameters] ERROR: {message}" in capsys.readouterr().out


def test_a_bug_in_a_model_keeps_its_traceback() -> None:
    from customer_segmentation.models import ModelError, clear_errors

    @clear_errors
    def buggy() -> None:
        return {}["missing"]

    @clear_errors
    def numpy_like() -> None:
        raise ValueError("operands could not be broadcast together")

    for function, kind in [(buggy, KeyError), (numpy_like, ValueError)]:
        with pytest.raises(kind) as caught:
            function()
        assert not isinstance(caught.value, ModelError)
        shown = "".join(traceback.format_exception(caught.value))  # what dbt-duckdb prints
        assert shown.startswith("Traceback (most recent call last):")
        assert function.__wrapped__.__code__.co_name in shown  # the frame that raised


def test_an_expected_error_is_one_line_for_dbt() -> None:
    from customer_segmentation.config import ConfigError
    from customer_segmentation.models import ModelError, clear_errors

    @clear_errors
    def scaler_parameters() -> None:
        raise ConfigError("var k_max: expected a whole number >= 2, got 1")

    with pytest.raises(ModelError) as caught:
        scaler_parameters()
    assert traceback.format_exception(caught.value) == [
        "customer_segmentation.models.boundary.ModelError: "
        "scaler_parameters: var k_max: expected a whole number >= 2, got 1\n"
    ]


def test_a_text_clustering_feature_is_named() -> None:
    from customer_segmentation.config import ConfigError
    from customer_segmentation.models import read_matrix

    con = duckdb.connect()
    features = pa.table({"customer_id": [1, 2], "recency_days": [3, 4], "country": ["A", "B"]})
    con.register("features", features)
    with pytest.raises(ConfigError, match=r"country \(string\) is not numeric"):
        read_matrix(con.table("features"), ["recency_days", "country"])


# 3. A database held by another process ---------------------------------------------------


@pytest.mark.dbt
def test_plain_dbt_on_a_held_database_says_who_holds_it(tmp_path: Path) -> None:
    from customer_segmentation.lock import lock_problem

    database = tmp_path / "held.duckdb"
    assert lock_problem(database) is None  # no file yet: nothing to say
    with database_held_open(database) as holder_pid:
        # The message (make build prints it before dbt starts; the plugin raises it in dbt).
        message = lock_problem(database)
        assert message is not None
        assert message.startswith(f"{database} is open in another process")
        assert f"PID {holder_pid}" in message
        # DuckDB's hints (read-only mode, a docs link) do not help a build.
        assert "read-only" not in message and "See also" not in message
        run = run_dbt(
            ["build", "--select", "stg_online_retail__transaction_lines"],
            tmp_path,
            database=database,
        )
    assert lock_problem(database) is None
    assert run.returncode != 0
    lines = run.output.splitlines()
    expected = f"{database} is open in another process"
    # The first line that mentions the lock is ours, it names the holder, and it ends the output.
    first = next(i for i, line in enumerate(lines) if "lock" in line.lower())
    assert lines[first].strip().startswith(expected), lines[first]
    assert f"PID {holder_pid}" in lines[first]
    assert expected in "\n".join(lines[-3:])
    assert "Traceback" not in run.output
