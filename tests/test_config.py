from __future__ import annotations

import pytest

from customer_segmentation.config import ConfigError, parse_config
from helpers import DEFAULT_SETTINGS


def settings(**changes: object) -> dict[str, object]:
    return {**DEFAULT_SETTINGS, **changes}


def test_defaults_parse() -> None:
    config = parse_config(DEFAULT_SETTINGS)
    assert config.n_clusters is None
    assert config.clustering_features == ("recency_days", "frequency", "monetary")
    assert config.order_feature_index == 2


def test_numbers_given_as_text_are_accepted() -> None:
    assert parse_config(settings(n_clusters="4", k_max="8")).n_clusters == 4
    # As dbt renders them into the clustering config: text.
    rules = parse_config(settings(rule_max_depth="4", rule_min_leaf_size="0.02"))
    assert (rules.rule_max_depth, rules.rule_min_leaf_size) == (4, 0.02)
    assert parse_config(settings(rule_min_leaf_size="50")).rule_min_leaf_size == 50


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"k_min": 1}, "var k_min: expected a whole number >= 2, got 1"),
        ({"k_min": 5, "k_max": 3}, "k_min (5) is greater than k_max (3)"),
        ({"n_clusters": 12}, "var n_clusters: 12 is outside k_min..k_max (2..6)"),
        ({"n_clusters": "many"}, "var n_clusters: expected a whole number >= 2, got 'many'"),
        ({"scaler": "minmax"}, "var scaler: expected 'standard' or 'robust', got 'minmax'"),
        ({"winsorize_quantiles": [0.9, 0.1]}, "expected 0 <= low < high <= 1"),
        ({"stability_threshold": 2}, "var stability_threshold: expected a number in [0.0, 1.0]"),
        ({"clustering_features": []}, "var clustering_features: the list is empty"),
        ({"clustering_features": "monetary"}, "expected a list of column names"),
        ({"log_transformed_features": ["age"]}, "['age'] not in clustering_features"),
        ({"cluster_order_feature": "age"}, "var cluster_order_feature: 'age' not in"),
        (
            {"silhouette_sample_size": 10},
            "var silhouette_sample_size: expected a whole number >= 100",
        ),
        ({"rule_max_depth": 0}, "var rule_max_depth: expected a whole number >= 1, got 0"),
        (
            {"rule_min_leaf_size": 2.5},
            "var rule_min_leaf_size: expected a share in (0, 1) or a whole number >= 1, got 2.5",
        ),
        ({"rule_min_leaf_size": 0}, "var rule_min_leaf_size: expected a share in (0, 1)"),
        ({"rule_min_leaf_size": "some"}, "got 'some'"),
        (
            {"rule_class_weight": "equal"},
            "var rule_class_weight: expected 'balanced' or 'none', got 'equal'",
        ),
    ],
)
def test_bad_vars_are_named(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(settings(**changes))
    assert message in str(error.value)


def test_order_feature_defaults_to_the_first_feature_without_monetary() -> None:
    config = parse_config(
        settings(
            clustering_features=["recency_days", "frequency"],
            log_transformed_features=[],
            cluster_order_feature=None,
        )
    )
    assert config.cluster_order_feature == "recency_days"
