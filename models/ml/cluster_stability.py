from customer_segmentation import models


def model(dbt, session):
    return models.cluster_stability(dbt.ref("stability_refits"), dbt.config.get("clustering"))
