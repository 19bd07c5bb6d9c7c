from customer_segmentation import pipeline


def model(dbt, session):
    return pipeline.hierarchy_linkage(
        dbt.ref("customer_features_scaled"), dbt.config.get("clustering")
    )
