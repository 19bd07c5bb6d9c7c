"""The Spark backend: MLlib fits, the twins of the dbt Python models, the session and commands.

Imported only when a Spark DataFrame arrives (``models.boundary.dbt_model``) or by
``make test-spark``; pyspark itself is imported inside the functions that need it.
"""
