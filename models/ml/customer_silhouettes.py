from customer_segmentation import models


def model(dbt, session):
    return models.customer_silhouettes(
        dbt.ref("customer_features_scaled"),
        dbt.ref("candidate_silhouettes"),
        dbt.ref("customer_clusters"),
        dbt.ref("cluster_model_selection"),
        dbt.config.get("clustering"),
    )
