from customer_segmentation import models


def model(dbt, session):
    return models.customer_rule_segments(
        dbt.ref("customer_features"), dbt.ref("segment_rule_tree"), dbt.config.get("clustering")
    )
