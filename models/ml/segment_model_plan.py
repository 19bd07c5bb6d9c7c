import duckdb

from customer_segmentation import models


def model(dbt, session):
    # The registry as the previous build left it; before the first build it does not exist.
    try:
        registry = dbt.source("segment_registry", "segment_models")
    except duckdb.CatalogException:
        registry = None
    return models.segment_model_plan(registry, dbt.config.get("clustering"))
