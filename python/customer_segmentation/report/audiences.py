"""``python -m customer_segmentation.report.audiences``: audience files for marketing tools.

One CSV per segment (``segment-<id>-<name>.csv``: header, UTF-8, comma-separated, one row per
customer, ordered by customer id) and one Parquet with every customer
(``audiences.parquet``), from the mart ``segment_audiences`` of the latest complete build.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import duckdb

from customer_segmentation.report.page import (
    ReportError,
    add_database_argument,
    check_latest_build,
)

AUDIENCES_MODEL = "segment_audiences"


def file_stem(segment_id: int, segment_name: str) -> str:
    """``segment-3-lapsed-one-time-buyers``: the id first (what campaigns key on), then the name."""
    slug = re.sub(r"[^a-z0-9]+", "-", segment_name.lower()).strip("-")
    return f"segment-{segment_id}-{slug}" if slug else f"segment-{segment_id}"


def write_audiences(database: Path, out_dir: Path) -> list[Path]:
    """Write the audience files of ``database`` into ``out_dir``; returns their paths.

    Files of segments that no longer exist are removed, so the directory holds this build's.

    Raises:
        ReportError: the tables do not come from one complete, successful build.

    """
    if not database.exists():
        raise ReportError(f"{database}: no such database; run `make build` first")
    out_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(database), read_only=True)
    try:
        check_latest_build(con, database)
        # Every segment of the model in use gets its file, a header alone when it is empty today.
        segments = con.sql(
            "select segment_id, segment_name from segment_names order by segment_id"
        ).fetchall()
        for stale in [*out_dir.glob("segment-*.csv"), out_dir / "audiences.parquet"]:
            stale.unlink(missing_ok=True)
        written = []
        for segment_id, segment_name in segments:
            path = out_dir / f"{file_stem(segment_id, segment_name)}.csv"
            con.execute(
                f"copy (select * from {AUDIENCES_MODEL} where segment_id = $id "
                f"order by customer_id) to '{path}' (header, delimiter ',')",
                {"id": segment_id},
            )
            written.append(path)
        parquet = out_dir / "audiences.parquet"
        con.execute(
            f"copy (select * from {AUDIENCES_MODEL} order by segment_id, customer_id) "
            f"to '{parquet}' (format parquet)"
        )
        return [*written, parquet]
    finally:
        con.close()


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_database_argument(parser)
    parser.add_argument(
        "--out", type=Path, default=Path("exports/audiences"), help="output directory"
    )
    args = parser.parse_args(argv)
    try:
        written = write_audiences(args.database, args.out)
    except ReportError as error:
        print(f"audiences: {error}", file=sys.stderr)
        return 1
    print(f"audiences: wrote {len(written) - 1} segment CSV file(s) and {written[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
