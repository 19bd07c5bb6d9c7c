from customer_segmentation import models


def model(dbt, session):
    return models.candidate_silhouettes(
        dbt.ref("customer_features_scaled"),
        dbt.ref("kmeans_candidates"),
        dbt.ref("hierarchy_leaves"),
        dbt.ref("hierarchy_linkage"),
        dbt.config.get("clustering"),
    )
