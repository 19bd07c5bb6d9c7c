from customer_segmentation import models


def model(dbt, session):
    return models.hierarchy_linkage(
        dbt.ref("customer_features_scaled"),
        dbt.ref("hierarchy_leaves"),
        dbt.config.get("clustering"),
    )
