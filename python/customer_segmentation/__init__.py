"""Customer segmentation: the Python side of the dbt project (ingest, clustering, report)."""

__version__ = "0.1.0"
