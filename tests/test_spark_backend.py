"""The parts of the Spark backend that need no Spark (the rest: tests/spark, make test-spark)."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from customer_segmentation.config import ConfigError, parse_config
from customer_segmentation.models.boundary import is_spark_dataframe
from customer_segmentation.spark import session as spark_session


def test_profile_spark_conf_follows_dbt_spark_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBT_SPARK_HOME", "/data/spark")
    conf = spark_session.profile_spark_conf()
    assert conf["spark.sql.warehouse.dir"] == "/data/spark/warehouse"
    assert (
        "databaseName=/data/spark/metastore_db"
        in conf["spark.hadoop.javax.jdo.option.ConnectionURL"]
    )
    assert conf["spark.sql.timestampType"] == "TIMESTAMP_NTZ"


def test_project_clustering_settings_are_the_dbt_vars() -> None:
    config = parse_config(spark_session.project_clustering_settings())
    assert config.k_min == 2 and config.k_max == 10 and config.n_clusters is None
    assert config.spark_selection_sample_size == 200_000
    overridden = parse_config(spark_session.project_clustering_settings({"n_clusters": 4}))
    assert overridden.n_clusters == 4


def test_spark_selection_sample_size_is_validated() -> None:
    settings = spark_session.project_clustering_settings({"spark_selection_sample_size": 5})
    with pytest.raises(ConfigError, match="spark_selection_sample_size"):
        parse_config(settings)


def test_only_spark_frames_go_to_the_spark_backend() -> None:
    assert not is_spark_dataframe(pa.table({"customer_id": [1]}))
    assert not is_spark_dataframe(duckdb.sql("select 1 as customer_id"))
    assert not is_spark_dataframe(None)
