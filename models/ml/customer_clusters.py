from customer_segmentation import models


def model(dbt, session):
    return models.customer_clusters(
        dbt.ref("customer_features_scaled"),
        dbt.ref("cluster_centroids"),
        dbt.ref("cluster_model_selection"),
        dbt.ref("hierarchy_leaves"),
        dbt.ref("hierarchy_linkage"),
        dbt.ref("segment_model_plan"),
        dbt.config.get("clustering"),
    )
