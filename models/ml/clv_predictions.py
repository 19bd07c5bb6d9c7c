from customer_segmentation import models


def model(dbt, session):
    return models.clv_predictions(
        dbt.ref("customer_purchase_histories"),
        dbt.ref("clv_model_parameters"),
        dbt.config.get("clv"),
    )
