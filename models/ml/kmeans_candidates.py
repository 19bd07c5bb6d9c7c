from customer_segmentation import models


def model(dbt, session):
    return models.kmeans_candidates(
        dbt.ref("customer_features_scaled"),
        dbt.ref("segment_model_plan"),
        dbt.config.get("clustering"),
    )
