"""A Spark session configured like the profile's ``spark`` target, and loading the raw file."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from customer_segmentation.config import ClusteringConfig, ClvConfig

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

PROJECT_ROOT = Path(__file__).resolve().parents[3]
RAW_TABLE = "raw.transactions"


def _project_vars(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """The vars of ``dbt_project.yml``, with ``overrides`` (as dbt ``--vars``) on top."""
    import yaml

    variables = yaml.safe_load((PROJECT_ROOT / "dbt_project.yml").read_text())["vars"]
    variables.update(overrides or {})
    return variables


def project_clustering_settings(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The clustering vars of ``dbt_project.yml`` (the ``clustering`` config of the models)."""
    variables = _project_vars(overrides)
    names = [f.name for f in dataclasses.fields(ClusteringConfig)]
    return {name: variables[name] for name in names if name in variables}


def project_clv_settings(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The lifetime-value vars of ``dbt_project.yml`` (the ``clv`` config of the clv models).

    ClvConfig's fields are the vars without their ``clv_`` prefix (models/ml/_ml.yml).
    """
    variables = _project_vars(overrides)
    names = [f"clv_{f.name}" for f in dataclasses.fields(ClvConfig)]
    return {name: variables[name] for name in names if name in variables}


def profile_spark_conf(profiles: Path = PROJECT_ROOT / "profiles.yml") -> dict[str, str]:
    """The ``server_side_parameters`` of the ``spark`` target, with ``env_var`` rendered.

    A SparkSession built from these is the one dbt-spark's ``method: session`` would build, so
    dbt run in the same process (or later, on the same metastore) sees the same tables.
    """
    import jinja2
    import yaml

    def env_var(name: str, default: str | None = None) -> str:
        value = os.environ.get(name, default)
        if value is None:
            raise ValueError(f"{profiles}: env var {name} is not set")
        return value

    rendered = jinja2.Template(profiles.read_text()).render(env_var=env_var)
    outputs = yaml.safe_load(rendered)["customer_segmentation"]["outputs"]
    if "spark" not in outputs:
        raise ValueError(f"{profiles}: no spark target")
    return {str(k): str(v) for k, v in outputs["spark"]["server_side_parameters"].items()}


def spark_session(conf: Mapping[str, str] | None = None) -> SparkSession:
    """A local SparkSession with Hive support, configured like the profile's spark target."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.enableHiveSupport()
    for key, value in (profile_spark_conf() if conf is None else conf).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def load_raw_transactions(session: SparkSession, path: str | Path, table: str = RAW_TABLE) -> int:
    """Read a transactions file with ``ingest`` (same checks as on DuckDB) into a Spark table.

    This is what the dbt-duckdb plugin does on DuckDB; on Spark the source is a table, and on
    Databricks it usually exists already (point the source at it).

    Returns:
        The number of lines written.

    """
    from customer_segmentation.ingest import read_transactions

    arrow = read_transactions(path).read_all()
    schema = table.split(".")[0] if "." in table else None
    if schema:
        session.sql(f"create schema if not exists {schema}")
    session.createDataFrame(arrow).write.mode("overwrite").saveAsTable(table)
    return arrow.num_rows
