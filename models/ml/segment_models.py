from customer_segmentation import models


def model(dbt, session):
    return models.segment_models(
        dbt.ref("segment_model_plan"),
        dbt.ref("customer_features"),
        dbt.ref("customer_features_scaled"),
        dbt.ref("scaler_parameters"),
        dbt.ref("cluster_centroids"),
        dbt.ref("customer_clusters"),
        dbt.ref("cluster_archetypes"),
        dbt.ref("segment_rule_tree"),
        dbt.config.get("clustering"),
    )
