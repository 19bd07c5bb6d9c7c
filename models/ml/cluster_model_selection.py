from customer_segmentation import pipeline


def model(dbt, session):
    return pipeline.cluster_model_selection(
        dbt.ref("customer_features_scaled"), dbt.config.get("clustering")
    )
