from customer_segmentation import pipeline


def model(dbt, session):
    return pipeline.customer_silhouettes(
        dbt.ref("customer_features_scaled"),
        dbt.ref("customer_clusters"),
        dbt.config.get("clustering"),
    )
