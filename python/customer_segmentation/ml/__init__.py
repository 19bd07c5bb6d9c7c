"""The algorithms: scaling, k-means, Ward, scores, stability and the choice of k.

numpy, scipy and scikit-learn only: nothing here knows dbt, DuckDB or Spark. Every function
takes a scaled feature matrix (rows ordered by customer id) and is deterministic for a given
``random_state``.
"""
