from customer_segmentation import pipeline


def model(dbt, session):
    return pipeline.scaler_parameters(dbt.ref("customer_features"), dbt.config.get("clustering"))
