"""Benchmark tooling, outside the product package: synthetic data, references, `make bench`.

``generate.py`` writes synthetic transactions with planted groups, ``references.py`` the two
hand-written baselines, ``run.py`` measures the project against them (``make bench``).
"""
