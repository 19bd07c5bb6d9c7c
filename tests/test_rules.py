"""Segment rules: planted thresholds recovered, one structure for Python, SQL and words, Jaccard."""

from __future__ import annotations

import re

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from sklearn.tree import DecisionTreeClassifier

from customer_segmentation.ml.rules import (
    ALL_CUSTOMERS,
    Condition,
    Rule,
    RuleError,
    RuleSet,
    fit_rules,
    round_threshold,
)
from customer_segmentation.models.tables import (
    refits_from_table,
    refits_table,
    rules_from_table,
    rules_table,
)
from helpers import cluster_jaccard, mean_cluster_jaccard

NAMES = ["recency_days", "frequency", "monetary", "return_rate"]


def planted(n: int = 6000, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Four groups cut by known thresholds: recency 30, 5 orders, 1,200 spent.

    Last order within 30 days: 5 or more orders (group 1) or fewer (2); earlier: more than
    1,200 spent (3) or not (4).
    """
    rng = np.random.default_rng(seed)
    recency = rng.integers(0, 61, n).astype(float)
    frequency = rng.integers(1, 10, n).astype(float)
    monetary = np.round(rng.uniform(10, 2400, n), 2)
    return_rate = np.round(rng.uniform(0, 0.3, n), 4)
    recent = recency <= 30
    labels = np.select(
        [recent & (frequency >= 5), recent, monetary > 1200], [1, 2, 3], default=4
    ).astype(np.int64)
    return np.column_stack([recency, frequency, monetary, return_rate]), labels


def columns(matrix: np.ndarray) -> dict[str, np.ndarray]:
    return dict(zip(NAMES, matrix.T, strict=True))


def test_planted_thresholds_come_back_rounded_and_faithful() -> None:
    matrix, labels = planted()
    rule_set = fit_rules(matrix, NAMES, labels, max_depth=3, min_leaf_size=0.01, random_state=0)
    assigned = rule_set.assign(columns(matrix))
    predicted = np.array([rule_set.rules[i].cluster_id for i in assigned])
    assert np.mean(predicted == labels) > 0.95
    conditions = {c.sql() for rule in rule_set.rules for c in rule.conditions}
    # Whole days and orders exactly; money to 2 significant figures (1,200 written as 1200).
    assert {"recency_days <= 30", "recency_days >= 31"} <= conditions
    assert {"frequency >= 5", "frequency <= 4"} <= conditions
    assert {"monetary > 1200", "monetary <= 1200"} <= conditions
    by_group = {rule.cluster_id: rule for rule in rule_set.rules}
    assert len(by_group) == len(rule_set.rules) == 4
    assert by_group[1].sql() == "recency_days <= 30 and frequency >= 5"
    assert by_group[1].words() == "last order at most 30 days ago and 5 or more orders"
    assert by_group[3].sql() == "recency_days >= 31 and monetary > 1200"
    assert by_group[3].words() == "last order 31 or more days ago and spent more than 1,200"


def test_rules_are_deterministic_for_a_random_state() -> None:
    matrix, labels = planted(seed=8)
    first = fit_rules(matrix, NAMES, labels, 3, 0.01, random_state=5)
    second = fit_rules(matrix.copy(), NAMES, labels.copy(), 3, 0.01, random_state=5)
    assert first == second


@pytest.mark.parametrize("class_weight", ["balanced", "none"])
def test_on_whole_numbers_the_rules_predict_what_the_tree_predicts(class_weight: str) -> None:
    """Rounding a split between whole numbers down, and merging sibling leaves of the same
    segment, change no customer's segment: the rules give scikit-learn's own predictions."""
    matrix, labels = planted(seed=11)
    matrix = matrix[:, :2]  # recency and frequency: whole numbers
    labels = np.where(labels == 1, 1, np.where(matrix[:, 0] > 200, 2, 3))
    labels[::7] = 2  # noise, so that leaves are impure
    names = NAMES[:2]
    rule_set = fit_rules(matrix, names, labels, 3, 0.01, 0, class_weight)  # type: ignore[arg-type]
    tree = DecisionTreeClassifier(
        max_depth=3,
        min_samples_leaf=60,
        random_state=0,
        class_weight=None if class_weight == "none" else "balanced",
    )
    tree.fit(matrix, labels)
    assigned = rule_set.assign(dict(zip(names, matrix.T, strict=True)))
    by_rules = np.array([rule_set.rules[i].cluster_id for i in assigned])
    assert np.array_equal(by_rules, tree.predict(matrix))
    assert rule_set.min_leaf_customers == 60
    assert rule_set.fidelity_unrounded == np.mean(tree.predict(matrix) == labels)
    assert len(rule_set.rules) < tree.get_n_leaves()  # siblings of one segment merged


def test_balanced_weights_give_a_small_segment_one_rule_of_its_own() -> None:
    """Segment 3, 2% of the customers, is every customer who returned more than a quarter.
    Counting each customer once, a depth-2 tree splits on recency and frequency first and
    finds only the recent part of it; weighing segments equally, one rule holds all of it."""
    rng = np.random.default_rng(5)
    n = 5000
    recency = rng.integers(0, 365, n).astype(float)
    frequency = rng.integers(1, 10, n).astype(float)
    return_rate = np.round(rng.uniform(0, 0.2, n), 3)
    return_rate[:100] = np.round(rng.uniform(0.3, 0.9, 100), 3)
    labels = np.select([recency <= 90, frequency >= 5], [1, 2], 4)
    labels[:100] = 3
    matrix = np.column_stack([recency, frequency, return_rate])
    names = ["recency_days", "frequency", "return_rate"]
    columns = dict(zip(names, matrix.T, strict=True))

    def found(rule_set: RuleSet) -> np.ndarray:
        """The customers the rules put in segment 3."""
        clusters = np.array([rule.cluster_id for rule in rule_set.rules])
        return clusters[rule_set.assign(columns)] == 3

    plain = fit_rules(matrix, names, labels, 2, 0.01, 0, "none")
    assert 0 < found(plain)[:100].mean() < 0.5
    balanced = fit_rules(matrix, names, labels, 2, 0.01, 0, "balanced")
    (own,) = [rule for rule in balanced.rules if rule.cluster_id == 3]
    assert own.words() == "returned more than 25% of what they bought"
    assert np.array_equal(found(balanced), labels == 3)


def test_rounding_gives_values_a_person_would_type() -> None:
    inf = np.inf
    assert round_threshold(4.5, "whole", -inf, inf) == 4
    assert round_threshold(1234.5, "amount", -inf, inf) == 1200
    assert round_threshold(0.0537, "share", -inf, inf) == 0.05
    # Never onto or across a bound of the same path: more digits instead.
    assert round_threshold(1234.5, "amount", 1200, inf) == 1230
    assert round_threshold(1204.0, "amount", 1200, 1210) == 1204
    assert round_threshold(0.0537, "share", 0.05, inf) == 0.054
    with pytest.raises(RuleError, match="not between"):
        round_threshold(1215.3, "amount", -inf, 1200)


@pytest.mark.parametrize("seed", range(10))
def test_rounded_rules_neither_overlap_nor_leave_a_gap(seed: int) -> None:
    """Two money splits the tree makes 19 apart (1,215 and 1,234) both round to 1,200 at 2
    significant figures: the outer one takes a third digit, so every customer, and every point
    of a fine grid around the splits, meets exactly one rule."""
    rng = np.random.default_rng(seed)
    monetary = np.round(rng.uniform(1000, 1500, 400), 2)
    frequency = rng.integers(1, 10, 400).astype(float)
    labels = np.select(
        [(monetary <= 1215) & (frequency <= 4), monetary <= 1234, frequency >= 6], [1, 2, 3], 4
    )
    names = ["monetary", "frequency"]
    rule_set = fit_rules(np.column_stack([monetary, frequency]), names, labels, 3, 0.01, 0)
    money, orders = np.meshgrid(np.arange(990, 1510, 0.25), np.arange(0, 12, dtype=float))
    for columns in (
        {"monetary": monetary, "frequency": frequency},
        {"monetary": money.ravel(), "frequency": orders.ravel()},
    ):
        met = sum(rule.holds(columns).astype(int) for rule in rule_set.rules)
        assert (met == 1).all()
    for rule in rule_set.rules:
        for condition in rule.conditions:
            assert len(f"{condition.value:g}") <= 4, rule.sql()  # 1200, 1230: typed values


def words_hold(text: str, feature_word: str, value: float) -> bool:
    """An independent reading of a rule's words for one feature: "at most X", "X or more",
    "more than X", "X to Y" (percents read as shares, thousands separators dropped)."""

    def number(token: str) -> float:
        token = token.replace(",", "")
        return float(token[:-1]) / 100 if token.endswith("%") else float(token)

    part = next(p for p in text.split(" and ") if feature_word in p or p.startswith(feature_word))
    num = r"(-?[\d,.]+%?)"
    if m := re.search(rf"{num} to {num}", part):
        return number(m[1]) <= value <= number(m[2])
    if m := re.search(rf"at most {num}", part):
        return value <= number(m[1])
    if m := re.search(rf"{num} or more", part):
        return value >= number(m[1])
    if m := re.search(rf"more than {num}", part):
        return value > number(m[1])
    raise AssertionError(f"cannot read {part!r}")


@pytest.mark.parametrize(
    ("condition", "word", "edges"),
    [
        (Condition("recency_days", "<=", 30, "whole"), "last order", [29, 30, 31]),
        (Condition("frequency", ">=", 5, "whole"), "orders", [4, 5, 6]),
        (Condition("monetary", ">", 1200, "amount"), "spent", [1199.99, 1200, 1200.01]),
        (Condition("monetary", "<=", 1200, "amount"), "spent", [1199.99, 1200, 1200.01]),
        (Condition("return_rate", ">", 0.05, "share"), "returned", [0.049, 0.05, 0.051]),
        (Condition("return_rate", "<=", 0.05, "share"), "returned", [0.049, 0.05, 0.051]),
    ],
)
def test_python_sql_and_words_agree_at_the_threshold(
    condition: Condition, word: str, edges: list[float]
) -> None:
    rule = Rule(1, (condition,), 1)
    con = duckdb.connect()
    for value in edges:
        con.execute(f"create or replace table t as select cast({value!r} as double) as "
                    f"{condition.feature}")  # fmt: skip
        in_sql = con.sql(f"select {rule.sql()} from t").fetchall()[0][0]
        in_python = bool(rule.holds({condition.feature: np.array([float(value)])})[0])
        assert in_sql == in_python == words_hold(rule.words(), word, value), (rule.words(), value)


def test_numbers_read_as_typed() -> None:
    def words(value: float, unit: str = "amount") -> str:
        return Condition("monetary", "<=", value, unit).bound()  # type: ignore[arg-type]

    assert words(1200) == "at most 1,200"
    assert words(1234.5) == "at most 1,234.5"
    assert words(0.5) == "at most 0.5"
    assert words(-1234.25) == "at most -1,234.25"
    assert words(0.054, "share") == "at most 5.4%"
    assert Condition("monetary", ">", 1234.5, "amount").sql() == "monetary > 1234.5"


def test_two_bounds_on_one_feature_read_as_a_range() -> None:
    orders = (Condition("frequency", ">=", 2, "whole"), Condition("frequency", "<=", 4, "whole"))
    whole = Rule(1, orders, 1)
    assert whole.words() == "2 to 4 orders"
    assert whole.sql() == "frequency >= 2 and frequency <= 4"
    spent = (Condition("monetary", ">", 860, "amount"), Condition("monetary", "<=", 1600, "amount"))
    money = Rule(1, spent, 1)
    assert money.words() == "spent more than 860 and at most 1,600"
    for value in (1, 2, 4, 5):
        in_python = bool(whole.holds({"frequency": np.array([value])})[0])
        assert words_hold(whole.words(), "orders", value) == in_python
    for value in (860, 860.01, 1600, 1600.01):
        in_python = bool(money.holds({"monetary": np.array([value])})[0])
        assert (value > 860 and value <= 1600) == in_python


def test_a_single_segment_gives_one_rule_for_all_customers() -> None:
    matrix, _ = planted(n=300)
    rule_set = fit_rules(matrix, NAMES, np.full(300, 1), 3, 0.01, random_state=0)
    (rule,) = rule_set.rules
    assert (rule.sql(), rule.words(), rule.cluster_id) == ("true", ALL_CUSTOMERS, 1)
    assert rule_set.assign(columns(matrix)).tolist() == [0] * 300


def test_a_segment_the_tree_cannot_separate_has_no_rule_of_its_own() -> None:
    """At depth 1 there are two rules for three segments: one segment is assigned by none
    (segment_rules then gives it its best rule, with its precision)."""
    matrix, labels = planted()
    rule_set = fit_rules(matrix, NAMES, labels, max_depth=1, min_leaf_size=0.01, random_state=0)
    assert len(rule_set.rules) == 2
    assert len({rule.cluster_id for rule in rule_set.rules}) == 2


def test_missing_values_are_named() -> None:
    matrix, labels = planted(n=100)
    matrix[3, 2] = np.nan
    with pytest.raises(RuleError, match=r"missing values in \['monetary'\]"):
        fit_rules(matrix, NAMES, labels, 3, 0.01, random_state=0)


def test_rules_and_refits_survive_their_tables() -> None:
    matrix, labels = planted(n=2000)
    rule_set = fit_rules(matrix, NAMES, labels, 3, 0.01, random_state=0)
    assigned = rule_set.assign(columns(matrix))
    table = rules_table(rule_set, labels, assigned)
    assert rules_from_table(table) == list(rule_set.rules)
    assert table["n_fit_customers"].to_numpy().sum() == 2000
    ids = np.array([5, 3, 9], dtype=np.int64)
    refits = {("kmeans", 2): [np.array([0, 1, 1]), np.array([1, 0, 0])],
              ("hierarchical", 2): [np.array([0, 0, 1])]}  # fmt: skip
    back = refits_from_table(
        refits_table(ids, refits, 100).take(pa.array([5, 0, 3, 1, 4, 2, 6, 7, 8]))
    )
    # Read back in customer id order (3, 5, 9), whatever the row order of the table.
    assert [labels.tolist() for labels in back["kmeans", 2]] == [[1, 0, 1], [0, 1, 0]]
    assert [labels.tolist() for labels in back["hierarchical", 2]] == [[0, 0, 1]]


def test_jaccard_per_segment_by_hand() -> None:
    """Segments {1, 2, 3} and {4, 5, 6}; refit 2 moves customer 3 (as the dbt unit test)."""
    reference = np.array([1, 1, 1, 2, 2, 2])
    refits = [np.array([2, 2, 2, 1, 1, 1]), np.array([1, 1, 2, 2, 2, 2])]
    assert cluster_jaccard(reference, refits[1]) == {1: 2 / 3, 2: 3 / 4}
    means = mean_cluster_jaccard(reference, refits)
    assert means[1] == pytest.approx((1 + 2 / 3) / 2)
    assert means[2] == pytest.approx((1 + 3 / 4) / 2)
