from customer_segmentation import pipeline


def model(dbt, session):
    return pipeline.customer_clusters(
        dbt.ref("customer_features_scaled"),
        dbt.ref("cluster_centroids"),
        dbt.ref("cluster_model_selection"),
        dbt.config.get("clustering"),
    )
