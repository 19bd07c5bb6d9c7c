from customer_segmentation import pipeline


def model(dbt, session):
    return pipeline.cluster_centroids(
        dbt.ref("customer_features_scaled"),
        dbt.ref("cluster_model_selection"),
        dbt.ref("scaler_parameters"),
        dbt.config.get("clustering"),
    )
