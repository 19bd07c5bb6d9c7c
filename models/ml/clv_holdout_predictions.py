from customer_segmentation import models


def model(dbt, session):
    return models.clv_holdout_predictions(
        dbt.ref("clv_calibration_histories"),
        dbt.ref("clv_model_parameters"),
        dbt.config.get("clv"),
    )
