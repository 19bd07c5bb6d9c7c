"""Reading transaction files (Parquet, CSV, xlsx) into checked, typed lines, and the dbt plugin.

``read.py`` maps the column spellings and checks every value; ``dbt_plugin.py`` is the
dbt-duckdb plugin that loads the source with it.
"""

from customer_segmentation.ingest.read import (
    RawFileError,
    RawFileWarning,
    ReadOptions,
    detect_encoding,
    detect_format,
    map_columns,
    read_csv,
    read_transactions,
    read_xlsx,
)

__all__ = [
    "RawFileError",
    "RawFileWarning",
    "ReadOptions",
    "detect_encoding",
    "detect_format",
    "map_columns",
    "read_csv",
    "read_transactions",
    "read_xlsx",
]
