"""dbt-duckdb plugin that loads the raw transactions source through `ingest.read_transactions`.

Configured in profiles.yml (``plugins: [{module: customer_segmentation.ingest.dbt_plugin, alias:
transactions}]``) and used by a source whose meta says ``plugin: transactions`` and
``external_location: <path>``. dbt-duckdb writes what `load` returns into a table named after
the source, so the raw lines are a real, queryable table in the database: for Parquet a
relation on dbt's own connection (DuckDB copies the file directly), for CSV and xlsx Arrow
batches.

dbt-duckdb writes that table as ``CREATE OR REPLACE TABLE <database>.<schema>.<identifier>``
with the parts unquoted, and the database is named after the file (``my-db.duckdb`` is
``my-db``), so a file name with a hyphen, a space or a leading digit would be a syntax error.
`load` therefore leaves the database out of the name when it is the connection's own: the
table lands in the same place (dbt-duckdb creates the schema unqualified, in that database).
A few file names dbt-duckdb itself cannot use: it cuts the name at ``;``, ``?`` or ``#`` (it
parses the path as a URL), DuckDB renames ``main``, ``system`` and ``temp`` (to ``main_db``...),
and dbt-duckdb's SQL does not escape a quote in the name. `configure_connection` stops those
with a message saying so, instead of an unrelated SQL error further on.

When another process holds the database file, dbt-duckdb's first connection fails with DuckDB's
lock error and a long traceback; `Plugin.initialize` runs before that connection and stops the
build with the message of `lock.lock_problem` (the file, the holder, what to do) instead.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from dbt.adapters.duckdb.plugins import BasePlugin
from dbt.adapters.duckdb.utils import SourceConfig
from dbt.adapters.events.logging import AdapterLogger

from customer_segmentation.ingest.read import RawFileWarning, ReadOptions, read_transactions
from customer_segmentation.lock import DatabaseLockedError, lock_problem

logger = AdapterLogger("customer_segmentation")


class DatabaseNameError(RuntimeError):
    """dbt-duckdb cannot use the database file's name (a RuntimeError: dbt reports it as such)."""


def database_name_problem(path: str, dbt_name: str, catalog: str) -> str | None:
    """Why dbt-duckdb cannot build into the file at `path`, or None if it can.

    ``dbt_name`` is the database name dbt-duckdb derived from the path, ``catalog`` the one
    DuckDB gave the open file.
    """
    if dbt_name != catalog:
        reason = f"dbt-duckdb names the database {dbt_name!r} but DuckDB names it {catalog!r}"
    elif "'" in dbt_name or '"' in dbt_name:
        reason = f"dbt-duckdb does not escape the quote in the database name {dbt_name!r}"
    else:
        return None
    return (
        f"{path}: dbt cannot build into a file of this name: {reason}. Choose a file name "
        "without ; ? # ' or \" whose part before the first dot is not main, system or temp "
        "(hyphens, spaces, dots and accents are fine), e.g. DBT_DUCKDB_PATH=my-build.duckdb."
    )


class Plugin(BasePlugin):
    """Loads a Parquet, CSV or xlsx file of transaction lines with canonical column names."""

    _connection: duckdb.DuckDBPyConnection | None = None
    _cursor: duckdb.DuckDBPyConnection | None = None

    def initialize(self, plugin_config: dict[str, Any]) -> None:
        """Stop before dbt connects if another process holds the database file.

        dbt-duckdb creates its plugins just before it opens the file, and reports a
        RuntimeError raised here as a failed connection: one short error with our message.
        """
        path = getattr(self.creds, "path", None)
        if not path or path == ":memory:":
            return
        try:
            problem = lock_problem(Path(path), getattr(self.creds, "config_options", None))
        except duckdb.Error:
            return  # not a lock: dbt's own connection reports it
        if problem:
            raise DatabaseLockedError(problem)

    def configure_connection(self, conn: duckdb.DuckDBPyConnection) -> None:
        """Keep dbt's connection: a Parquet file is then read by it, not through Arrow.

        Raises:
            DatabaseNameError: dbt-duckdb cannot use the database file's name (see above).

        """
        path = getattr(self.creds, "path", None)
        name = getattr(self.creds, "database", None)
        if path and path != ":memory:" and name and not getattr(self.creds, "attach", None):
            (catalog,) = conn.sql("select current_database()").fetchall()[0]
            problem = database_name_problem(str(path), name, str(catalog))
            if problem:
                conn.close()
                raise DatabaseNameError(problem)
        self._connection = conn

    def load(self, source_config: SourceConfig) -> pa.RecordBatchReader | duckdb.DuckDBPyRelation:
        """Return the file named by the source's ``external_location`` (see read_transactions)."""
        path = str(source_config["external_location"]).strip("'")
        # A cursor of its own: the relation stays valid until dbt-duckdb has copied it.
        self._cursor = None if self._connection is None else self._connection.cursor()
        if self._cursor is not None and source_config.database is not None:
            (catalog,) = self._cursor.execute("select current_database()").fetchall()[0]
            if source_config.database.lower() == str(catalog).lower():
                # dbt-duckdb names the table source_config.table_name(), unquoted (see above).
                source_config.database = None
        options = ReadOptions(
            customer_id_type=source_config.get("customer_id_type") or "bigint",
            encoding=source_config.get("encoding") or "auto",
            time_zone=source_config.get("time_zone") or "UTC",
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RawFileWarning)
            lines = read_transactions(path or None, self._cursor, options)
        for warning in caught:
            logger.warning(f"[raw_transactions] WARNING: {warning.message}")
        return lines
