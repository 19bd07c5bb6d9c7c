from customer_segmentation import models


def model(dbt, session):
    return models.segment_rule_tree(
        dbt.ref("customer_features"),
        dbt.ref("customer_clusters"),
        dbt.ref("segment_model_plan"),
        dbt.config.get("clustering"),
    )
