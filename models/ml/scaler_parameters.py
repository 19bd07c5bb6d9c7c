from customer_segmentation import models


def model(dbt, session):
    return models.scaler_parameters(
        dbt.ref("customer_features"),
        dbt.ref("segment_model_plan"),
        dbt.config.get("clustering"),
    )
