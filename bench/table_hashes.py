"""Content hashes of every table and view a build writes, to show a change altered no value.

``python -m bench.table_hashes DATABASE [--compare OTHER.json] [--out FILE.json]``

Each relation's hash is order-independent (the sum and the xor of the hashes, with the row
count), column by column, so a comparison names the column that changed, and of whole rows.
Columns that record when something ran (``TIMING_COLUMNS``) are left out: they differ between
any two builds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import duckdb

# (relation, column) pairs that hold the time a build ran, or something derived from it.
TIMING_COLUMNS = {
    ("build_log", "*"),
    ("rpt_builds", "*"),
    ("clustering_runs", "invocation_id"),
    ("clustering_runs", "run_started_at"),
    ("segment_models", "fitted_at"),
    ("segment_model_segments", "fitted_at"),
    ("rpt_segment_model", "fitted_at"),
}
# DuckDB sums doubles in parallel, in no fixed order: two builds of the same data differ in the
# last bits of a mean. Floating-point values are compared to this many significant digits, and
# to DECIMALS places (a z-score of 1e-13 is noise around 0, whatever its digits).
SIGNIFICANT_DIGITS = 10
DECIMALS = 9


# The key of the whole-row hash among the columns' (not a column name: it has spaces).
ROWS = "(whole rows)"


def _hash_sum(expression: str) -> str:
    """An order-independent hash of the expression over every row: its sum and its xor."""
    return (
        f"sum(hash({expression})::hugeint)::varchar || '/' || bit_xor(hash({expression}))::varchar"
    )


def _excluded(relation: str, column: str) -> bool:
    return (relation, "*") in TIMING_COLUMNS or (relation, column) in TIMING_COLUMNS


def _rounded(expression: str) -> str:
    return f"format('{{:.{SIGNIFICANT_DIGITS}g}}', round({expression}, {DECIMALS}))"


def _comparable(column: tuple[str, str]) -> str:
    """The column as compared: floating-point values (also inside lists) to a few digits."""
    name, data_type = column
    quoted = '"' + name.replace('"', '""') + '"'
    if data_type in ("DOUBLE", "FLOAT"):
        return _rounded(quoted)
    if data_type in ("DOUBLE[]", "FLOAT[]"):
        return f"list_transform({quoted}, lambda x: {_rounded('x')})"
    return quoted


def relation_hashes(database: Path) -> dict[str, dict[str, object]]:
    """{schema.relation: {"rows": n, "columns": {column: hash}}} for every relation but timing."""
    with duckdb.connect(str(database), read_only=True) as con:
        columns = con.execute(
            "select table_schema, table_name, column_name, data_type "
            "from information_schema.columns "
            "where table_catalog = current_database() order by 1, 2, ordinal_position"
        ).fetchall()
        by_relation: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for schema, relation, column, data_type in columns:
            if not _excluded(relation, column):
                by_relation.setdefault((schema, relation), []).append((column, data_type))
        hashes: dict[str, dict[str, object]] = {}
        for (schema, relation), names in by_relation.items():
            values = [_comparable(column) for column in names]
            # Each column's values, and each row's (two values swapped between rows keep every
            # column's hash but not the rows').
            parts = ", ".join(map(_hash_sum, [*values, ", ".join(values)]))
            query = f'select count(*), {parts} from "{schema}"."{relation}"'
            row = con.execute(query).fetchall()[0]
            hashes[f"{schema}.{relation}"] = {
                "rows": row[0],
                "columns": dict(zip([c for c, _ in names] + [ROWS], row[1:], strict=True)),
            }
    return hashes


def differences(before: dict, after: dict) -> list[str]:
    """Every relation or column whose content differs, in words."""
    found = []
    for name in sorted(set(before) | set(after)):
        if name not in after or name not in before:
            found.append(f"{name}: only in the {'first' if name in before else 'second'}")
            continue
        old, new = before[name], after[name]
        if old["rows"] != new["rows"]:
            found.append(f"{name}: {old['rows']} rows, then {new['rows']}")
        for column in sorted(set(old["columns"]) | set(new["columns"])):
            if old["columns"].get(column) != new["columns"].get(column):
                found.append(f"{name}.{column} differs")
    return found


def main(argv: list[str] | None = None) -> int:
    """Print (or write) the hashes; with --compare, list the differences and fail on any."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--compare", type=Path, help="hashes written earlier by --out")
    args = parser.parse_args(argv)
    hashes = relation_hashes(args.database)
    if args.out:
        args.out.write_text(json.dumps(hashes, indent=1, sort_keys=True))
    print(f"{len(hashes)} relations hashed")
    if args.compare:
        found = differences(json.loads(args.compare.read_text()), hashes)
        for line in found:
            print(line)
        print(f"{len(found)} difference(s)")
        return 1 if found else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
