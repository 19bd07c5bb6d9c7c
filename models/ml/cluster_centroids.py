from customer_segmentation import models


def model(dbt, session):
    return models.cluster_centroids(
        dbt.ref("customer_features_scaled"),
        dbt.ref("kmeans_candidates"),
        dbt.ref("cluster_model_selection"),
        dbt.ref("scaler_parameters"),
        dbt.config.get("clustering"),
    )
