"""``python -m customer_segmentation.spark {load,ml,register}``: the steps dbt-spark cannot run."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from customer_segmentation.config import parse_clv_config, parse_config
from customer_segmentation.errors import SegmentationError
from customer_segmentation.spark.models import register_stage, run_ml_stage
from customer_segmentation.spark.session import (
    RAW_TABLE,
    load_raw_transactions,
    project_clustering_settings,
    project_clv_settings,
    spark_session,
)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``load FILE`` fills the raw table; ``ml`` writes the ml tables."""
    parser = argparse.ArgumentParser(description="The project's steps that dbt-spark cannot run.")
    commands = parser.add_subparsers(dest="command", required=True)
    load = commands.add_parser("load", help="read a transactions file into the raw table")
    load.add_argument("path", type=Path)
    load.add_argument("--table", default=RAW_TABLE)
    ml = commands.add_parser("ml", help="fit and write the ml tables (the Python models)")
    ml.add_argument("--schema", default=os.environ.get("DBT_SPARK_SCHEMA", "customer_segmentation"))
    ml.add_argument(
        "--vars", default="{}", help="clustering and lifetime-value vars as JSON, as dbt --vars"
    )
    register = commands.add_parser(
        "register", help="append the fitted model to segment_models (after cluster_archetypes)"
    )
    register.add_argument(
        "--schema", default=os.environ.get("DBT_SPARK_SCHEMA", "customer_segmentation")
    )
    register.add_argument("--vars", default="{}", help="clustering vars as JSON, as dbt --vars")
    args = parser.parse_args(argv)
    session = spark_session()
    try:
        if args.command == "load":
            lines = load_raw_transactions(session, args.path, args.table)
            print(f"{args.table}: {lines:,} lines from {args.path}")
            return 0
        overrides = json.loads(args.vars)
        config = parse_config(project_clustering_settings(overrides))
        if args.command == "register":
            written = register_stage(session, args.schema, config)
        else:
            clv = parse_clv_config(project_clv_settings(overrides))
            written = run_ml_stage(session, args.schema, config, clv)
    except SegmentationError as error:
        # Bad data or vars: the message says which; anything else keeps its traceback.
        print(f"error: {error}", file=sys.stderr)
        return 1
    for name, rows in written.items():
        print(f"{args.schema}.{name}: {rows:,} rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
