"""Segment identity across refits and the registry's plan, without dbt (the builds:
test_registry_build.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json

import numpy as np
import pytest

from customer_segmentation.config import parse_config
from customer_segmentation.ml.identity import (
    bin_shares,
    feature_bins,
    fingerprint,
    match_segments,
)
from customer_segmentation.ml.selection import choose_k
from customer_segmentation.models.registry import (
    REGISTRY_VERSION,
    RegistryError,
    decide,
    identify_segments,
)
from helpers import DEFAULT_SETTINGS as VALID
from helpers import population_stability_index

NOW = dt.datetime(2026, 12, 1, 12, 0)


def test_matching_pairs_each_new_cluster_with_its_nearest_previous_segment() -> None:
    previous = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    new = previous[[2, 0, 1]] + 0.1  # the same segments, renumbered and moved a little
    matches = match_segments(previous, new, max_distance=1.0)
    assert [(m.new_index, m.previous_index) for m in matches] == [(0, 2), (1, 0), (2, 1)]
    assert all(m.distance == pytest.approx(0.1 * np.sqrt(2)) for m in matches)


def test_matching_minimises_the_total_not_each_nearest() -> None:
    # New 0 is nearest to previous 0 (1.0 against 1.1), but that pairing totals 1.0 + 2.6;
    # new 0 with previous 1 and new 1 with previous 0 total 1.1 + 0.5.
    previous = np.array([[0.0], [2.1]])
    new = np.array([[1.0], [-0.5]])
    matches = match_segments(previous, new, max_distance=5.0)
    assert {(m.new_index, m.previous_index) for m in matches} == {(0, 1), (1, 0)}


def test_a_pair_farther_than_the_maximum_is_no_match() -> None:
    previous = np.array([[0.0, 0.0], [5.0, 5.0]])
    new = np.array([[0.2, 0.0], [9.0, 9.0], [5.0, 5.1]])
    matches = match_segments(previous, new, max_distance=1.0)
    assert [(m.new_index, m.previous_index) for m in matches] == [(0, 0), (2, 1)]
    assert match_segments(previous, np.array([[20.0, 20.0]]), 1.0) == []


def _cluster(cluster_id: int, archetype: str | None, name: str, x: float) -> dict:
    return {"cluster_id": cluster_id, "archetype": archetype, "segment_name": name,
            "n_customers": 10, "customer_share": 0.25, "mean_distance_to_centroid": 0.5,
            "center": {"f": x}, "center_scaled": {"f": x}}  # fmt: skip


def _previous(segment_id: int, cluster_id: int, archetype: str | None, name: str) -> dict:
    return {"segment_id": segment_id, "cluster_id": cluster_id, "archetype": archetype,
            "segment_name": name, "center": {"f": float(cluster_id)}}  # fmt: skip


def test_kept_segments_keep_id_and_name_new_ones_get_fresh_ids_and_the_rest_retire() -> None:
    previous = [_previous(3, 1, "loyal", "Loyal"), _previous(7, 2, "lapsed", "Lapsed"),
                _previous(8, 3, "returners", "Returners")]  # fmt: skip
    # The new fit numbers the lapsed segment 1; its own naming calls cluster 2 "Loyal" too.
    clusters = [_cluster(1, "lapsed", "Lapsed", 2.0), _cluster(2, "loyal", "Loyal", 9.0),
                _cluster(3, "new_arch", "Newcomers", 8.0)]  # fmt: skip
    matches = match_segments(np.array([[1.0], [2.0], [3.0]]), np.array([[2.0], [9.0], [8.0]]),
                             max_distance=1.5)  # fmt: skip
    segments = identify_segments(matches, previous, clusters, next_segment_id=9)
    by_id = {s.segment_id: s for s in segments}
    assert (
        by_id[7].status == "kept" and by_id[7].cluster_id == 1 and by_id[7].segment_name == "Lapsed"
    )
    # A new cluster takes its archetype's name unless a segment ever had it: cluster 2 is
    # nearest the archetype of the retired segment 3 ("Loyal"), so it is named by its new id.
    assert (by_id[9].segment_name, by_id[10].segment_name) == ("Segment 9", "Newcomers")
    # An archetype of an older model counts too.
    again = identify_segments(matches, previous, clusters, 9, used_archetypes=["new_arch"])
    assert [s.segment_name for s in again if s.status == "new"] == ["Segment 9", "Segment 10"]
    assert {s.status for s in segments if s.segment_id in (9, 10)} == {"new"}
    assert by_id[3].status == "retired" and by_id[3].cluster_id is None
    assert by_id[8].status == "retired"
    names = [s.segment_name for s in segments if s.status != "retired"]
    assert len(names) == len(set(names))


def test_a_new_cluster_whose_archetype_a_kept_segment_holds_is_named_by_its_id() -> None:
    previous = [_previous(1, 1, "loyal", "Loyal")]
    clusters = [_cluster(1, "loyal", "Loyal", 1.0), _cluster(2, "loyal", "Loyal", 50.0)]
    matches = match_segments(np.array([[1.0]]), np.array([[1.0], [50.0]]), max_distance=1.0)
    segments = identify_segments(matches, previous, clusters, next_segment_id=2)
    assert [(s.segment_id, s.segment_name, s.status) for s in segments] == [
        (1, "Loyal", "kept"), (2, "Segment 2", "new")]  # fmt: skip


def _row(model_id: int, **changes: object) -> dict:
    config = parse_config(VALID)
    row = {
        "model_id": model_id,
        "registry_version": REGISTRY_VERSION,
        "fitted_at": NOW - dt.timedelta(days=10),
        "clustering_features": ", ".join(config.clustering_features),
        "log_transformed_features": ", ".join(config.log_transformed_features),
        "scaler": config.scaler,
        "k": 2,
        "scaler_json": "[]",
        "segments_json": json.dumps([{"segment_id": 4}, {"segment_id": 6}]),
        "rules_json": "[]",
        "projection_json": "{}",
        "feature_bins_json": "[]",
    }
    return row | changes


def test_the_plan_refits_by_default_and_numbers_after_every_id_ever_used() -> None:
    config = parse_config(VALID)
    plan = decide([_row(1), _row(2)], config, NOW)
    assert plan.refit and plan.previous["model_id"] == 2
    assert (plan.next_model_id, plan.next_segment_id) == (3, 7)
    first = decide(None, config, NOW)
    assert first.refit and first.registry_status == "empty" and first.next_segment_id == 1


def test_refit_false_scores_with_the_latest_model_unless_it_is_too_old() -> None:
    config = dataclasses.replace(parse_config(VALID), refit=False)
    plan = decide([_row(1), _row(2)], config, NOW)
    assert not plan.refit and plan.model_in_use_id == 2
    assert "scoring with model 2" in plan.refit_reason
    old = decide([_row(2)], dataclasses.replace(config, refit_after_days=7), NOW)
    assert old.refit and "10.0 days old, more than var refit_after_days (7)" in old.refit_reason
    assert not decide([_row(2)], dataclasses.replace(config, refit_after_days=30), NOW).refit
    assert plan.registry_message is None
    # Scoring uses the model as fitted; vars changed since are named, not applied.
    robust = decide([_row(2, scaler="robust")], config, NOW)
    assert not robust.refit and robust.registry_status == "compatible"
    assert "scaler was 'robust', the var is now 'standard'" in robust.registry_message


def test_refit_false_without_a_registered_model_says_to_refit_first() -> None:
    config = dataclasses.replace(parse_config(VALID), refit=False)
    for rows in (None, []):
        with pytest.raises(RegistryError, match="run a build with refit: true first"):
            decide(rows, config, NOW)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"registry_version": None}, "written by an older version of the project"),
        ({"registry_version": REGISTRY_VERSION + 1}, f"registry version {REGISTRY_VERSION + 1}"),
        ({"clustering_features": "recency_days, frequency"}, "fitted on the features"),
        ({"segments_json": None}, "has no segments_json"),
    ],
)
def test_an_incompatible_registry_is_reported_and_refitted_even_with_refit_false(
    changes: dict, message: str
) -> None:
    config = dataclasses.replace(parse_config(VALID), refit=False)
    plan = decide([_row(1, **changes)], config, NOW)
    assert plan.refit and plan.registry_status == "incompatible" and plan.previous is None
    assert message in plan.registry_message and "refitting" in plan.registry_message
    assert plan.next_model_id == 2  # ids go on after it


def test_psi_is_zero_on_the_training_data_and_matches_a_direct_count() -> None:
    rng = np.random.default_rng(0)
    training = rng.lognormal(3, 1, 5_000)
    bins = feature_bins("monetary", training)
    assert len(bins.shares) == 10 and sum(bins.shares) == pytest.approx(1)
    assert population_stability_index(bins.shares, bin_shares(training, bins.edges)) == 0
    shifted = training * 1.5
    edges = np.array(bins.edges)
    counts = [np.sum(shifted <= edges[0])]
    counts += [np.sum((shifted > lo) & (shifted <= hi)) for lo, hi in itertools.pairwise(edges)]
    counts += [np.sum(shifted > edges[-1])]
    actual = np.array(counts) / len(shifted)
    np.testing.assert_allclose(bin_shares(shifted, edges), actual)
    expected = np.array(bins.shares)
    assert population_stability_index(expected, actual) == pytest.approx(
        np.sum((actual - expected) * np.log(actual / expected))
    )
    # Repeated values (orders: mostly 1 or 2) give fewer bins, never empty duplicates.
    counts_bins = feature_bins("frequency", rng.choice([1, 1, 1, 2, 2, 3, 5], 1_000))
    assert len(set(counts_bins.edges)) == len(counts_bins.edges) < 9


def test_the_fingerprint_follows_the_content() -> None:
    ids = np.array([1, 2, 3], dtype=np.int64)
    matrix = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    assert fingerprint(ids, matrix) == fingerprint(ids.copy(), matrix.copy())
    assert fingerprint(ids, matrix) != fingerprint(ids, matrix + 1e-9)
    assert fingerprint(np.array(["a", "b", "c"], dtype=object), matrix) != fingerprint(ids, matrix)


def test_a_refit_keeps_the_registered_k_while_it_is_stable() -> None:
    ks = [2, 3, 4, 5]
    metrics = ([0.3, 0.3, 0.3, 0.3], [10.0, 9.0, 8.0, 7.0], [1.0, 1.0, 1.0, 1.0])
    stable = choose_k(ks, *metrics, [0.9, 0.9, 0.9, 0.9], 5, 0.75, registered_k=4)
    assert (stable.k, stable.rule) == (4, "registered_k_if_stable")
    assert "previous registered model, still stable (0.90 >= 0.75" in stable.reason
    unstable = choose_k(ks, *metrics, [0.9, 0.9, 0.5, 0.9], 5, 0.75, registered_k=4)
    assert (unstable.k, unstable.rule) == (5, "knee_if_stable")
    fixed = choose_k(ks, *metrics, [0.9] * 4, 5, 0.75, fixed_k=3, registered_k=4)
    assert fixed.k == 3
