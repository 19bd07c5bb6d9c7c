from customer_segmentation import models


def model(dbt, session):
    return models.cluster_stability(
        dbt.ref("customer_features_scaled"), dbt.config.get("clustering")
    )
