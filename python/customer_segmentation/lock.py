"""Say clearly when the DuckDB file is held by another process, before ``dbt build`` fails.

DuckDB lets one process at a time open a database file for writing, and while one does, no
other process can open it, not even read-only. ``make build`` runs this first:
``python -m customer_segmentation.lock [PATH]``; a plain ``dbt build`` gets the same message
from the project's dbt-duckdb plugin (`dbt_plugin.Plugin.initialize`), as a `DatabaseLockedError`.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb

from customer_segmentation.errors import SegmentationError


class DatabaseLockedError(SegmentationError, RuntimeError):
    """Another process holds the database file (a RuntimeError: dbt reports it as such)."""


def lock_problem(database: Path, config: Mapping[str, Any] | None = None) -> str | None:
    """A message naming the file and the holder if another process holds it, else None.

    ``config`` is passed to ``duckdb.connect``: dbt's own settings (such as
    ``storage_compatibility_version``), so that opening the file to find out changes nothing.
    """
    if not database.exists():
        return None
    try:
        duckdb.connect(str(database), config=dict(config or {})).close()
    except duckdb.IOException as error:
        if "lock" not in str(error).lower():
            raise
        # DuckDB's own hints (open it read-only, a docs link) do not help a build: left out.
        detail = re.split(r"\s+(?:See also|However, you would)", str(error), maxsplit=1)[0]
        return (
            f"{database} is open in another process, so dbt cannot write to it. Close that "
            "DuckDB session (CLI, notebook, BI tool) or wait for the running build to finish, "
            f"then run the command again. DuckDB says: {detail}"
        )
    return None


def main(argv: list[str] | None = None) -> int:
    """Exit 1 with a message when the database is locked."""
    args = sys.argv[1:] if argv is None else argv
    default = os.environ.get("DBT_DUCKDB_PATH", "customer_segmentation.duckdb")
    problem = lock_problem(Path(args[0] if args else default))
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
