"""Segments said as rules: a shallow decision tree on the features in their own units.

A ``DecisionTreeClassifier`` learns the k-means segment from the customer features (days,
orders, money, not the scaled values); each leaf is a rule, the conjunction of the thresholds
on its path. Thresholds are rounded to values a person would type (whole days and orders,
money to 2 significant figures, shares to whole percents), more digits only where rounding
would cross another threshold of the same path; after rounding, a rule assigns the segment
with the largest weighted count among its customers (weighted as the tree weighs segments),
and fidelity is measured on those rounded rules.

A rule's Python test (``holds``), its SQL predicate and its plain words are all written from
one structure (``Condition``): the same operator and the same number, so a customer exactly at
a threshold goes the same way in all three.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils.class_weight import compute_class_weight

from customer_segmentation.errors import SegmentationError

Operator = Literal["<=", ">", ">="]
# whole: every value a whole number (days, orders, products): "x <= 4" or "x >= 5";
# share: a fraction shown as a percent; amount: anything else (money), 2 significant figures.
Unit = Literal["whole", "share", "amount"]

SHARE_FEATURES = frozenset(
    {"return_rate", "share_of_orders_last_90_days", "weekend_share_of_orders"}
)

# How each known customer_features column reads, "{}" standing for the bound ("at most 4",
# "5 or more", "2 to 4"); any other column reads as its name.
PHRASES: dict[str, str] = {
    "recency_days": "last order {} days ago",
    "frequency": "{} orders",
    "monetary": "spent {}",
    "gross_monetary": "spent {} before returns",
    "net_monetary": "spent {} net of returns",
    "tenure_days": "first order {} days ago",
    "average_order_value": "average order {}",
    "average_items_per_order": "{} items per order",
    "distinct_products": "{} distinct products",
    "mean_days_between_orders": "{} days between orders on average",
    "median_days_between_orders": "{} days between orders (median)",
    "returned_value": "returned goods worth {}",
    "return_rate": "returned {} of what they bought",
    "share_of_orders_last_90_days": "{} of orders in the last 90 days",
    "weekend_share_of_orders": "{} of orders at weekends",
    "mean_order_hour": "mean order hour {}",
    "preferred_order_hour": "usually orders at hour {}",
}
ALL_CUSTOMERS = "all customers"


class RuleError(SegmentationError, ValueError):
    """The features or settings cannot give rules (a missing value, too few customers)."""


def _number(value: float, unit: Unit) -> str:
    """A threshold as a person reads it: 1,200 / 4 / 5% / 0.5."""
    if unit == "share":
        return f"{np.format_float_positional(value * 100, precision=10, trim='-')}%"
    if float(value).is_integer():
        return f"{int(value):,}"
    sign = "-" if value < 0 else ""
    whole, _, decimals = np.format_float_positional(abs(value), trim="-").partition(".")
    return f"{sign}{int(whole):,}.{decimals}"


def _literal(value: float) -> str:
    """A threshold as a SQL literal: the shortest text that parses back to the same double."""
    if float(value).is_integer():
        return str(int(value))
    return np.format_float_positional(value, trim="-")


@dataclass(frozen=True)
class Condition:
    """One threshold of a rule: ``feature operator value``."""

    feature: str
    operator: Operator
    value: float
    unit: Unit

    def holds(self, values: np.ndarray) -> np.ndarray:
        """Which values meet the condition (a missing value meets none, as in SQL)."""
        if self.operator == "<=":
            return values <= self.value
        if self.operator == ">=":
            return values >= self.value
        return values > self.value

    def sql(self) -> str:
        """The condition as SQL, e.g. ``frequency >= 5``."""
        return f"{self.feature} {self.operator} {_literal(self.value)}"

    def bound(self) -> str:
        """The bound in words: "at most 4", "5 or more", "more than 1,200"."""
        number = _number(self.value, self.unit)
        return {"<=": f"at most {number}", ">=": f"{number} or more", ">": f"more than {number}"}[
            self.operator
        ]


def _words(feature: str, conditions: Sequence[Condition]) -> str:
    """One feature's conditions (a lower bound, an upper bound or both) in words."""
    phrase = PHRASES.get(feature, feature.replace("_", " ") + " {}")
    if len(conditions) == 2:
        lower, upper = conditions
        if lower.operator == ">=":
            low = _number(lower.value, lower.unit)
            bound = f"{low} to {_number(upper.value, upper.unit)}"
        else:
            bound = f"{lower.bound()} and {upper.bound()}"
    else:
        bound = conditions[0].bound()
    return phrase.format(bound)


@dataclass(frozen=True)
class Rule:
    """A leaf of the tree: its conditions (lower bound before upper, in feature order)."""

    rule_id: int
    conditions: tuple[Condition, ...]
    cluster_id: int

    def holds(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """Which rows meet every condition; ``columns`` maps feature name to values."""
        n = len(next(iter(columns.values())))
        met = np.ones(n, dtype=bool)
        for condition in self.conditions:
            met &= condition.holds(columns[condition.feature])
        return met

    def sql(self) -> str:
        """The rule as a SQL predicate (``true`` for the one rule of a single segment)."""
        return " and ".join(c.sql() for c in self.conditions) or "true"

    def words(self) -> str:
        """The rule in plain words, e.g. "last order at most 30 days ago and 5 or more orders"."""
        by_feature: dict[str, list[Condition]] = {}
        for condition in self.conditions:
            by_feature.setdefault(condition.feature, []).append(condition)
        return " and ".join(_words(f, c) for f, c in by_feature.items()) or ALL_CUSTOMERS

    def conditions_json(self) -> str:
        """The conditions as JSON, the structure ``rule_from_json`` reads back."""
        return json.dumps(
            [
                {"feature": c.feature, "operator": c.operator, "value": c.value, "unit": c.unit}
                for c in self.conditions
            ]
        )


def rule_from_json(rule_id: int, cluster_id: int, conditions: str) -> Rule:
    """A rule back from its stored JSON conditions."""
    return Rule(
        rule_id,
        tuple(
            Condition(c["feature"], c["operator"], float(c["value"]), c["unit"])
            for c in json.loads(conditions)
        ),
        cluster_id,
    )


def feature_units(names: Sequence[str], matrix: np.ndarray) -> dict[str, Unit]:
    """Each feature's unit: share by name, whole when every value is a whole number."""
    units: dict[str, Unit] = {}
    for j, name in enumerate(names):
        if name in SHARE_FEATURES:
            units[name] = "share"
        elif np.all(matrix[:, j] == np.round(matrix[:, j])):
            units[name] = "whole"
        else:
            units[name] = "amount"
    return units


def round_threshold(threshold: float, unit: Unit, low: float, high: float) -> float:
    """The threshold a person would type, strictly between low and high.

    whole: ``floor`` (the tree splits halfway between two whole numbers, so ``x <= floor(t)``
    keeps the same customers on each side); share: 2 decimals (whole percents); amount: 2
    significant figures; more digits only when the rounded value would leave (low, high): the
    bounds of the rule's path above, and the other splits on the feature below.

    Raises:
        RuleError: the threshold itself is not strictly between low and high.

    """
    if not low < threshold < high:
        raise RuleError(f"threshold {threshold} is not between {low} and {high}")
    if unit == "whole":
        return float(math.floor(threshold))
    for digits in range(2, 18):
        # share: digits decimals (2 = whole percents); amount: digits significant figures.
        rounded = round(threshold, digits) if unit == "share" else float(f"{threshold:.{digits}g}")
        if low < rounded < high:
            return rounded
    return threshold


def _min_leaf(min_leaf_size: float, n_rows: int) -> int:
    """The minimum leaf size as a count: a fraction of the rows below 1, else a count."""
    if min_leaf_size < 1:
        return max(1, math.ceil(min_leaf_size * n_rows))
    return int(min_leaf_size)


@dataclass(frozen=True)
class RuleSet:
    """The rules of one tree, and how faithful the tree was before rounding."""

    rules: tuple[Rule, ...]
    features: tuple[str, ...]
    class_weight: str
    max_depth: int
    min_leaf_customers: int
    n_fit_customers: int
    fidelity_unrounded: float

    def assign(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """The 0-based index of the rule each row meets (see ``assign_rules``)."""
        return assign_rules(self.rules, columns)


def assign_rules(rules: Sequence[Rule], columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """The 0-based index of the rule each row meets, -1 for none (a missing value).

    The leaves of a tree do not overlap; the first rule met wins, as in a SQL ``case``.
    """
    n = len(next(iter(columns.values())))
    index = np.full(n, -1, dtype=np.int64)
    for i, rule in enumerate(rules):
        index[(index < 0) & rule.holds(columns)] = i
    return index


Bounds = dict[int, tuple[float, float]]  # feature index -> (low, high]: low < x <= high


def _conditions(
    bounds: Bounds, names: Sequence[str], units: Mapping[str, Unit]
) -> tuple[Condition, ...]:
    """A path's bounds as conditions, in feature order, the lower bound first."""
    conditions: list[Condition] = []
    for j in sorted(bounds):
        low, high = bounds[j]
        unit = units[names[j]]
        if low > -math.inf:
            # For whole numbers "x > 4" is written "x >= 5".
            if unit == "whole":
                conditions.append(Condition(names[j], ">=", low + 1, unit))
            else:
                conditions.append(Condition(names[j], ">", low, unit))
        if high < math.inf:
            conditions.append(Condition(names[j], "<=", high, unit))
    return tuple(conditions)


def _thresholds(structure: Any, node: int, feature: int) -> list[float]:
    """The raw thresholds of the splits on ``feature`` in the subtree under ``node``.

    ``structure`` is a fitted tree's ``tree_`` (scikit-learn's Tree).
    """
    left, right = structure.children_left[node], structure.children_right[node]
    if left == right:
        return []
    own = [float(structure.threshold[node])] if structure.feature[node] == feature else []
    return own + _thresholds(structure, left, feature) + _thresholds(structure, right, feature)


def _rounded_leaves(
    tree: DecisionTreeClassifier,
    matrix: np.ndarray,
    clusters: np.ndarray,
    units: Sequence[Unit],
    weights: Mapping[int, float],
) -> list[tuple[Bounds, int]]:
    """Every leaf (left to right) with its rounded bounds and the cluster it assigns.

    A leaf assigns the cluster with the largest weighted count (``weights``, the tree's class
    weights) among the rows within its rounded bounds (ties: the smaller id; none: the tree's
    own choice). Two sibling leaves assigning the same cluster are one rule (their parent's),
    so no rule is split on a threshold that changes nothing.
    """
    structure = tree.tree_

    def walk(node: int, bounds: Bounds, rows: np.ndarray) -> list[tuple[Bounds, int]]:
        left, right = structure.children_left[node], structure.children_right[node]
        if left == right:
            if rows.any():
                values, counts = np.unique(clusters[rows], return_counts=True)
                weighted = counts * np.array([weights[int(v)] for v in values])
                return [(bounds, int(values[np.argmax(weighted)]))]
            return [(bounds, int(tree.classes_[np.argmax(structure.value[node][0])]))]
        j = int(structure.feature[node])
        low, high = bounds.get(j, (-math.inf, math.inf))
        # The rounded cut must keep the splits below it on the same feature on their side
        # too, or a rule below would be cut by a bound it crosses (overlap, or no customer).
        below_left = max([low, *_thresholds(structure, left, j)])
        above_right = min([high, *_thresholds(structure, right, j)])
        cut = round_threshold(float(structure.threshold[node]), units[j], below_left, above_right)
        below = matrix[:, j] <= cut
        leaves = walk(left, {**bounds, j: (low, cut)}, rows & below) + walk(
            right, {**bounds, j: (cut, high)}, rows & ~below
        )
        if len(leaves) == 2 and leaves[0][1] == leaves[1][1]:
            return [(bounds, leaves[0][1])]
        return leaves

    return walk(0, {}, np.ones(len(matrix), dtype=bool))


def fit_rules(
    matrix: np.ndarray,
    names: Sequence[str],
    clusters: np.ndarray,
    max_depth: int,
    min_leaf_size: float,
    random_state: int,
    class_weight: Literal["balanced", "none"] = "balanced",
) -> RuleSet:
    """Fit the tree that predicts ``clusters`` from ``matrix`` and read its leaves as rules.

    Args:
        matrix: one row per customer, one column per feature, in the features' own units.
        names: the feature (column) names.
        clusters: each row's segment (cluster id).
        max_depth: the tree's depth (3: at most 8 rules of at most 3 conditions).
        min_leaf_size: fewest customers a rule may cover: a count, or below 1 a share.
        random_state: seeds the tree's choice between equally good splits.
        class_weight: ``balanced`` weighs each segment's customers by 1 / its size, so a small
            segment can have rules of its own; ``none`` counts every customer once (the rules
            then favour the large segments).

    Raises:
        RuleError: a feature has a missing value, or there are no rows.

    """
    if len(matrix) == 0:
        raise RuleError("no customers to learn segment rules from")
    missing = [name for j, name in enumerate(names) if np.isnan(matrix[:, j]).any()]
    if missing:
        raise RuleError(
            f"customer_features has missing values in {missing}: segment rules need a value "
            "for every customer"
        )
    min_leaf = _min_leaf(min_leaf_size, len(matrix))
    classes = np.unique(clusters)
    weights = dict.fromkeys(classes.tolist(), 1.0)
    if class_weight == "balanced":
        balanced = compute_class_weight("balanced", classes=classes, y=clusters)
        weights = dict(zip(classes.tolist(), balanced.tolist(), strict=True))
    tree = DecisionTreeClassifier(
        max_depth=max_depth,
        min_samples_leaf=min_leaf,
        random_state=random_state,
        class_weight=weights,
    )
    tree.fit(matrix, clusters)
    fidelity_unrounded = float(np.mean(tree.predict(matrix) == clusters))
    units = feature_units(names, matrix)
    leaves = _rounded_leaves(tree, matrix, clusters, [units[name] for name in names], weights)
    rules = [
        Rule(rule_id, _conditions(bounds, names, units), cluster)
        for rule_id, (bounds, cluster) in enumerate(leaves, start=1)
    ]
    return RuleSet(
        tuple(rules),
        tuple(names),
        class_weight,
        max_depth,
        min_leaf,
        len(matrix),
        fidelity_unrounded,
    )
