from customer_segmentation import models


def model(dbt, session):
    return models.cluster_model_selection(
        dbt.ref("customer_features_scaled"),
        dbt.ref("kmeans_candidates"),
        dbt.ref("hierarchy_leaves"),
        dbt.ref("hierarchy_linkage"),
        dbt.ref("candidate_silhouettes"),
        dbt.ref("cluster_stability"),
        dbt.ref("segment_model_plan"),
        dbt.config.get("clustering"),
    )
