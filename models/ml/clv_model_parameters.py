from customer_segmentation import models


def model(dbt, session):
    return models.clv_model_parameters(
        dbt.ref("customer_purchase_histories"),
        dbt.ref("clv_calibration_histories"),
        dbt.config.get("clv"),
    )
