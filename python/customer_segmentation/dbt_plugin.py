"""dbt-duckdb plugin that loads the raw transactions source through `ingest.read_transactions`.

Configured in profiles.yml (``plugins: [{module: customer_segmentation.dbt_plugin, alias:
transactions}]``) and used by a source whose meta says ``plugin: transactions`` and
``external_location: <path>``. dbt-duckdb writes what `load` returns into a table named after
the source, so the raw lines are a real, queryable table in the database: for Parquet a
relation on dbt's own connection (DuckDB copies the file directly), for CSV and xlsx Arrow
batches.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa
from dbt.adapters.duckdb.plugins import BasePlugin
from dbt.adapters.duckdb.utils import SourceConfig

from customer_segmentation.ingest import read_transactions


class Plugin(BasePlugin):
    """Loads a Parquet, CSV or xlsx file of transaction lines with canonical column names."""

    _connection: duckdb.DuckDBPyConnection | None = None
    _cursor: duckdb.DuckDBPyConnection | None = None

    def configure_connection(self, conn: duckdb.DuckDBPyConnection) -> None:
        """Keep dbt's connection: a Parquet file is then read by it, not through Arrow."""
        self._connection = conn

    def load(self, source_config: SourceConfig) -> pa.RecordBatchReader | duckdb.DuckDBPyRelation:
        """Return the file named by the source's ``external_location`` (see read_transactions)."""
        path = str(source_config["external_location"]).strip("'")
        # A cursor of its own: the relation stays valid until dbt-duckdb has copied it.
        self._cursor = None if self._connection is None else self._connection.cursor()
        return read_transactions(path, self._cursor)
