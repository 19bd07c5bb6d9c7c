from customer_segmentation import models


def model(dbt, session):
    return models.scaler_parameters(dbt.ref("customer_features"), dbt.config.get("clustering"))
