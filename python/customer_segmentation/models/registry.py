"""The model registry (``segment_models``): what each fitted model was, and whether to refit.

``segment_models`` is an incremental table, one row per fitted model: its id, when it was
fitted, a fingerprint of its input, k, and as JSON the scaler, the segments (stable id, the
fit's cluster id, name, centre, training share and distance), the rules, the projection and
the feature distributions drift is measured against. ``segment_model_plan`` reads the registry
as the previous build left it (the dbt source ``segment_registry``) and decides: refit, or
score with the latest model. The functions here turn those tables into plain values and back.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from customer_segmentation.config import ClusteringConfig
from customer_segmentation.errors import SegmentationError
from customer_segmentation.ml.identity import (
    FeatureBins,
    Match,
    feature_bins,
    fingerprint,
    library_version,
    match_segments,
)
from customer_segmentation.ml.kmeans import nearest_centroid
from customer_segmentation.ml.projection import Projection, fit_projection
from customer_segmentation.ml.scaling import FeatureScaling, apply_scaling
from customer_segmentation.ml.selection import Candidate, registered_rows
from customer_segmentation.models.tables import (
    SELECTION_SCHEMA,
    parameters_from_table,
    parameters_table,
)

# Bumped when the registry's layout or meaning changes; a registry of another version is
# reported and refitted, never read as if it were this one.
REGISTRY_VERSION = 1

SEGMENT_MODELS_SCHEMA = pa.schema(
    [
        ("model_id", pa.int64()),
        ("registry_version", pa.int64()),
        ("fitted_at", pa.timestamp("us")),
        ("snapshot_date", pa.date32()),
        ("n_customers", pa.int64()),
        ("input_fingerprint", pa.string()),
        ("clustering_features", pa.string()),
        ("log_transformed_features", pa.string()),
        ("scaler", pa.string()),
        ("k", pa.int64()),
        ("random_state", pa.int64()),
        ("previous_model_id", pa.int64()),
        ("n_kept", pa.int64()),
        ("n_new", pa.int64()),
        ("n_retired", pa.int64()),
        ("refit_reason", pa.string()),
        ("sklearn_version", pa.string()),
        ("scaler_json", pa.string()),
        ("segments_json", pa.string()),
        ("rules_json", pa.string()),
        ("projection_json", pa.string()),
        ("feature_bins_json", pa.string()),
    ]
)

# The JSON the plan and the fit models need from the model in use.
MODEL_JSON_COLUMNS = (
    "scaler_json",
    "segments_json",
    "rules_json",
    "projection_json",
    "feature_bins_json",
)

PLAN_SCHEMA = pa.schema(
    [
        ("refit", pa.bool_()),
        ("refit_reason", pa.string()),
        ("registry_status", pa.string()),
        ("registry_message", pa.string()),
        ("model_in_use_id", pa.int64()),
        ("previous_model_id", pa.int64()),
        ("previous_fitted_at", pa.timestamp("us")),
        ("previous_model_age_days", pa.float64()),
        ("next_model_id", pa.int64()),
        ("next_segment_id", pa.int64()),
        ("used_archetypes", pa.string()),
        ("k", pa.int64()),
        *[(name, pa.string()) for name in MODEL_JSON_COLUMNS],
    ]
)


class RegistryError(SegmentationError, ValueError):
    """The registry cannot serve what the vars ask (refit false with no model registered)."""


def features_text(features: Sequence[str]) -> str:
    """The feature list as the registry stores it."""
    return ", ".join(features)


@dataclass(frozen=True)
class Plan:
    """What this build does: refit or score, and the previous model it builds on."""

    refit: bool
    refit_reason: str
    registry_status: str  # empty, compatible or incompatible
    registry_message: str | None
    model_in_use_id: int | None  # the registered model that scores this build, when not refitting
    previous: dict[str, Any] | None  # the latest compatible model's registry row
    next_model_id: int
    next_segment_id: int
    # Every archetype a segment of any registered model was named after (JSON list): a new
    # segment never takes the name of another one, retired or not.
    used_archetypes: str = "[]"

    def row(self, now: dt.datetime) -> dict[str, Any]:
        """The plan as ``segment_model_plan``'s one row."""
        previous = self.previous or {}
        fitted_at = previous.get("fitted_at")
        return {
            "refit": self.refit,
            "refit_reason": self.refit_reason,
            "registry_status": self.registry_status,
            "registry_message": self.registry_message,
            "model_in_use_id": self.model_in_use_id,
            "previous_model_id": previous.get("model_id"),
            "previous_fitted_at": fitted_at,
            "previous_model_age_days": (
                (now - fitted_at).total_seconds() / 86400 if fitted_at is not None else None
            ),
            "next_model_id": self.next_model_id,
            "next_segment_id": self.next_segment_id,
            "used_archetypes": self.used_archetypes,
            "k": previous.get("k"),
            **{name: previous.get(name) for name in MODEL_JSON_COLUMNS},
        }


def _segments(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every segment of the registry rows that can be read."""
    segments: list[dict[str, Any]] = []
    for row in rows:
        try:
            segments += [dict(s) for s in json.loads(row.get("segments_json") or "[]")]
        except (ValueError, TypeError):
            continue
    return [s for s in segments if isinstance(s.get("segment_id"), int)]


def incompatibility(row: Mapping[str, Any], config: ClusteringConfig) -> str | None:
    """Why a registered model cannot be matched against or scored with, or None."""
    version = row.get("registry_version")
    if version != REGISTRY_VERSION:
        older = version is None or version < REGISTRY_VERSION
        written = "an older version" if older else f"registry version {version}"
        return (
            f"model {row.get('model_id')} in segment_models was written by {written} of the "
            f"project (registry version {version}, this project reads version {REGISTRY_VERSION})"
        )
    missing = [name for name in MODEL_JSON_COLUMNS if not row.get(name)]
    if missing:
        return f"model {row.get('model_id')} in segment_models has no {', '.join(missing)}"
    current = features_text(config.clustering_features)
    if row.get("clustering_features") != current:
        return (
            f"model {row.get('model_id')} in segment_models was fitted on the features "
            f"[{row.get('clustering_features')}], the var clustering_features is now [{current}]"
        )
    return None


def decide(
    rows: Sequence[Mapping[str, Any]] | None,
    config: ClusteringConfig,
    now: dt.datetime,
) -> Plan:
    """Refit, or score with the latest registered model, from the registry and the vars.

    ``rows``: the registry's rows (None when the table does not exist yet). A latest model
    that an older version wrote, or fitted on other features, is reported and refitted.

    Raises:
        RegistryError: ``refit: false`` and no model is registered.

    """
    rows = list(rows or [])
    model_ids = [int(r["model_id"]) for r in rows if r.get("model_id") is not None]
    segments = _segments(rows)
    plan = functools.partial(
        Plan,
        next_model_id=max(model_ids, default=0) + 1,
        next_segment_id=max((s["segment_id"] for s in segments), default=0) + 1,
        used_archetypes=json.dumps(
            sorted({s["archetype"] for s in segments if s.get("archetype")})
        ),
    )
    latest = max(rows, key=lambda r: r.get("model_id") or 0) if rows else None
    if latest is None:
        if not config.refit:
            raise RegistryError(
                "var refit is false but segment_models holds no model to score with: run a "
                "build with refit: true first (dbt build)"
            )
        return plan(refit=True, refit_reason="no registered model: first fit",
                    registry_status="empty", registry_message=None, model_in_use_id=None,
                    previous=None)  # fmt: skip
    problem = incompatibility(latest, config)
    if problem is not None:
        message = f"{problem}: refitting, with new segment ids (nothing is matched against it)"
        return plan(refit=True, refit_reason=message, registry_status="incompatible",
                    registry_message=message, model_in_use_id=None, previous=None)  # fmt: skip
    compatible = functools.partial(
        plan, registry_status="compatible", registry_message=None, previous=dict(latest)
    )
    model_id = int(latest["model_id"])
    if config.refit:
        reason = f"var refit is true: refitting (previous model {model_id})"
        return compatible(refit=True, refit_reason=reason, model_in_use_id=None)
    age = (now - latest["fitted_at"]).total_seconds() / 86400
    if config.refit_after_days is not None and age > config.refit_after_days:
        reason = (
            f"model {model_id} is {age:.1f} days old, more than var refit_after_days "
            f"({config.refit_after_days:g}): refitting"
        )
        return compatible(refit=True, refit_reason=reason, model_in_use_id=None)
    reason = (
        f"var refit is false: scoring with model {model_id} (fitted "
        f"{latest['fitted_at']:%Y-%m-%d %H:%M} UTC, {age:.1f} days ago); nothing is fitted"
    )
    changed = [
        f"{name} was {latest.get(name)!r}, the var is now {value!r}"
        for name, value in (
            ("log_transformed_features", features_text(config.log_transformed_features)),
            ("scaler", config.scaler),
        )
        if latest.get(name) != value
    ]
    note = (
        f"scoring with model {model_id} as it was fitted, not with today's vars: "
        + "; ".join(changed)
        if changed
        else None
    )
    return compatible(refit=False, refit_reason=reason, model_in_use_id=model_id,
                      registry_message=note)  # fmt: skip


@dataclass(frozen=True)
class Segment:
    """One segment of a registered model (``status`` retired: no cluster in this model)."""

    segment_id: int
    cluster_id: int | None
    status: str  # new, kept or retired
    segment_name: str
    archetype: str | None
    previous_cluster_id: int | None
    match_distance: float | None
    n_customers: int
    customer_share: float
    mean_distance_to_centroid: float | None
    center: dict[str, float]
    center_scaled: dict[str, float] | None


def identify_segments(
    matches: Sequence[Match],
    previous: Sequence[Mapping[str, Any]],
    clusters: Sequence[Mapping[str, Any]],
    next_segment_id: int,
    used_archetypes: Sequence[str] = (),
) -> list[Segment]:
    """The segments of a new model: matched clusters keep id and name, others are new or retired.

    ``previous``: the previous model's active segments (rows of its segments_json, in the order
    the centres were matched in); ``clusters``: the new clusters in cluster id order, each with
    its cluster_id, archetype and segment_name (the fit's naming), centre, centre_scaled,
    n_customers, customer_share and mean_distance_to_centroid. A new cluster whose archetype
    a segment of any registered model (``used_archetypes``, or a kept one) already had is named
    by its id: a name always means one segment.
    """
    by_new = {m.new_index: m for m in matches}
    matched_previous = {m.previous_index for m in matches}
    taken = {previous[m.previous_index].get("archetype") for m in matches} | set(used_archetypes)
    taken |= {s.get("archetype") for s in previous}
    segments: list[Segment] = []
    next_id = next_segment_id
    for index, cluster in enumerate(clusters):
        match = by_new.get(index)
        if match is not None:
            old = previous[match.previous_index]
            segment_id, status = int(old["segment_id"]), "kept"
            name, archetype = str(old["segment_name"]), old.get("archetype")
            previous_cluster, distance = old.get("cluster_id"), match.distance
        else:
            segment_id, status, next_id = next_id, "new", next_id + 1
            archetype = cluster.get("archetype")
            if archetype is None or archetype in taken:
                name, archetype = f"Segment {segment_id}", None
            else:
                name = str(cluster["segment_name"])
            previous_cluster, distance = None, None
        segments.append(
            Segment(
                segment_id=segment_id,
                cluster_id=int(cluster["cluster_id"]),
                status=status,
                segment_name=name,
                archetype=archetype,
                previous_cluster_id=previous_cluster,
                match_distance=distance,
                n_customers=int(cluster["n_customers"]),
                customer_share=float(cluster["customer_share"]),
                mean_distance_to_centroid=_float_or_none(cluster["mean_distance_to_centroid"]),
                center=dict(cluster["center"]),
                center_scaled=dict(cluster["center_scaled"]),
            )
        )
    for index, old in enumerate(previous):
        if index not in matched_previous:
            segments.append(
                Segment(
                    segment_id=int(old["segment_id"]),
                    cluster_id=None,
                    status="retired",
                    segment_name=str(old["segment_name"]),
                    archetype=old.get("archetype"),
                    previous_cluster_id=old.get("cluster_id"),
                    match_distance=None,
                    n_customers=0,
                    customer_share=0.0,
                    mean_distance_to_centroid=None,
                    center=dict(old["center"]),
                    center_scaled=None,
                )
            )
    return segments


def _float_or_none(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def active_segments(segments_json: str) -> list[dict[str, Any]]:
    """The segments of a registered model that have a cluster (not retired), by cluster id."""
    rows = [s for s in json.loads(segments_json) if s.get("status") != "retired"]
    return sorted(rows, key=lambda s: s["cluster_id"])


def segments_json(segments: Sequence[Segment]) -> str:
    """The segments as the registry stores them."""
    return json.dumps([vars(s) for s in segments], sort_keys=True)


def bins_json(bins: Sequence[FeatureBins]) -> str:
    """The training distributions as the registry stores them: one record per feature and bin.

    Bin i of a feature holds ``lower < x <= upper`` (no lower bound for the first bin, no
    upper bound for the last), so SQL can count today's customers into the same bins.
    """
    records = []
    for b in bins:
        bounds = [None, *b.edges, None]
        for i, share in enumerate(b.shares):
            records.append({"feature": b.feature, "bin": i + 1, "lower": bounds[i],
                            "upper": bounds[i + 1], "share": share})  # fmt: skip
    return json.dumps(records)


def table_json(table: pa.Table) -> str:
    """A small table (scaler parameters, rules) as a JSON list of rows."""
    return json.dumps(table.to_pylist(), default=str)


def empty_models_table() -> pa.Table:
    """``segment_models`` with no row: a build that did not refit registers nothing."""
    return SEGMENT_MODELS_SCHEMA.empty_table()


def models_row_table(row: Mapping[str, Any]) -> pa.Table:
    """One registered model as a ``segment_models`` row."""
    return pa.Table.from_pylist([dict(row)], schema=SEGMENT_MODELS_SCHEMA)


def centers_matrix(rows: Sequence[Mapping[str, Any]], features: Sequence[str]) -> np.ndarray:
    """The original-unit centres of ``rows`` (segments_json entries) as a matrix."""
    return np.array([[float(r["center"][f]) for f in features] for r in rows], dtype=float)


def utc_now() -> dt.datetime:
    """Now, in UTC without a zone (as the registry's timestamps are stored)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


def projection_json(projection: Projection) -> str:
    """The scatter chart's projection as the registry stores it."""
    return json.dumps(
        {"mean": projection.mean.tolist(), "components": projection.components.tolist()}
    )


def _cluster_rows(
    centroids: pa.Table, clusters: pa.Table, archetypes: pa.Table, features: Sequence[str]
) -> list[dict[str, Any]]:
    """Per new cluster: the fit's name, centre (both units), size, share and mean distance."""
    labels = clusters["cluster_id"].to_numpy()
    distances = clusters["distance_to_centroid"].to_numpy()
    names = {row["cluster_id"]: row for row in archetypes.to_pylist()}
    rows: dict[int, dict[str, Any]] = {}
    for entry in centroids.to_pylist():
        row = rows.setdefault(entry["cluster_id"], {"center": {}, "center_scaled": {}})
        row["center"][entry["feature"]] = entry["center_original"]
        row["center_scaled"][entry["feature"]] = entry["center_scaled"]
    result = []
    for cluster_id in sorted(rows):
        members = labels == cluster_id
        name = names.get(cluster_id, {})
        result.append(
            {
                "cluster_id": cluster_id,
                "archetype": name.get("archetype"),
                "segment_name": name.get("segment_name") or f"Segment {cluster_id}",
                "n_customers": int(members.sum()),
                "customer_share": float(members.mean()) if len(labels) else 0.0,
                "mean_distance_to_centroid": (
                    float(distances[members].mean()) if members.any() else None
                ),
                "center": {f: rows[cluster_id]["center"][f] for f in features},
                "center_scaled": {f: rows[cluster_id]["center_scaled"][f] for f in features},
            }
        )
    return result


def register_model(
    plan: Mapping[str, Any],
    ids: np.ndarray,
    matrix: np.ndarray,
    scaled_matrix: np.ndarray,
    snapshot_date: dt.date | None,
    scaler: pa.Table,
    centroids: pa.Table,
    clusters: pa.Table,
    archetypes: pa.Table,
    rules: pa.Table,
    config: ClusteringConfig,
    now: dt.datetime,
) -> tuple[dict[str, Any], str]:
    """The registry row of the model this build fitted, and a one-line summary of its ids.

    The new centres are matched with the previous model's active segments in the current
    scaled space (the previous centres, stored in the features' units, are scaled with the
    current scaler), so the two sets of centres are compared on one ruler.
    """
    features = config.clustering_features
    new_clusters = _cluster_rows(centroids, clusters, archetypes, features)
    previous: list[dict[str, Any]] = []
    matches: list[Match] = []
    if plan.get("segments_json"):
        previous = active_segments(plan["segments_json"])
        parameters = parameters_from_table(scaler)
        previous_scaled = apply_scaling(centers_matrix(previous, features), parameters)
        new_scaled = np.array([[c["center_scaled"][f] for f in features] for c in new_clusters])
        matches = match_segments(previous_scaled, new_scaled, config.segment_match_max_distance)
    segments = identify_segments(
        matches, previous, new_clusters, int(plan["next_segment_id"]),
        json.loads(plan.get("used_archetypes") or "[]"),
    )  # fmt: skip
    counts = {
        status: [s for s in segments if s.status == status] for status in ("kept", "new", "retired")
    }
    model_id = int(plan["next_model_id"])
    previous_id = plan.get("previous_model_id")

    def listed(status: str) -> str:
        return ", ".join(f"{s.segment_id} {s.segment_name}" for s in counts[status]) or "none"

    summary = (
        f"model {model_id} registered (k={len(new_clusters)}; {plan['refit_reason']}): "
        + (f"kept from model {previous_id}: {listed('kept')}; " if previous_id else "")
        + f"new: {listed('new')}; retired: {listed('retired')}"
    )
    row = {
        "model_id": model_id,
        "registry_version": REGISTRY_VERSION,
        "fitted_at": now,
        "snapshot_date": snapshot_date,
        "n_customers": len(ids),
        "input_fingerprint": fingerprint(ids, matrix),
        "clustering_features": features_text(features),
        "log_transformed_features": features_text(config.log_transformed_features),
        "scaler": config.scaler,
        "k": len(new_clusters),
        "random_state": config.random_state,
        "previous_model_id": previous_id,
        "n_kept": len(counts["kept"]),
        "n_new": len(counts["new"]),
        "n_retired": len(counts["retired"]),
        "refit_reason": plan["refit_reason"],
        "sklearn_version": library_version(),
        "scaler_json": table_json(scaler),
        "segments_json": segments_json(segments),
        "rules_json": table_json(rules),
        "projection_json": projection_json(fit_projection(scaled_matrix, config.random_state)),
        "feature_bins_json": bins_json(
            [feature_bins(f, matrix[:, j]) for j, f in enumerate(features)]
        ),
    }
    return row, summary


# A build that scores with the registered model (var refit false) ---------------------------


def scoring_plan(plan: Any, model: str) -> dict[str, Any] | None:
    """The plan's row when this build scores with a registered model, else None (refit).

    ``plan``: the segment_model_plan relation. Prints, for the build's log, that ``model``
    fits nothing.
    """
    row = plan.to_arrow_table().to_pylist()[0]
    if row["refit"]:
        return None
    print(f"[{model}] registered model {row['model_in_use_id']}: nothing fitted", flush=True)
    return row


def registered_scaler(plan: Mapping[str, Any]) -> pa.Table:
    """The registered model's scaler_parameters."""
    return parameters_table([FeatureScaling(**r) for r in json.loads(plan["scaler_json"])])


def registered_centers(plan: Mapping[str, Any], features: Sequence[str]) -> np.ndarray:
    """The registered model's scaled centres, row i is cluster i + 1."""
    segments = active_segments(plan["segments_json"])
    if [s["cluster_id"] for s in segments] != list(range(1, len(segments) + 1)):
        raise RegistryError(
            f"model {plan['model_in_use_id']} in segment_models has clusters "
            f"{[s['cluster_id'] for s in segments]}, not 1..k"
        )
    return np.array([[float(s["center_scaled"][f]) for f in features] for s in segments])


def registered_candidate(
    plan: Mapping[str, Any], matrix: np.ndarray, features: Sequence[str]
) -> Candidate:
    """The registered centres as the only k-means candidate, with today's inertia."""
    centers = registered_centers(plan, features)
    _, distances = nearest_centroid(matrix, centers)
    return Candidate(len(centers), centers, float(np.sum(distances**2)))


def registered_selection_table(
    matrix: np.ndarray,
    fits: Mapping[int, Candidate],
    labelings: Mapping[tuple[str, int], np.ndarray],
    mean_silhouettes: Mapping[tuple[str, int], float],
    plan: Mapping[str, Any],
    config: ClusteringConfig,
) -> pa.Table:
    """``cluster_model_selection`` when scoring with the registered model: its k, today's scores."""
    (k,) = fits
    silhouette = mean_silhouettes.get(("kmeans", k), math.nan)
    row = registered_rows(
        matrix, fits[k], labelings["kmeans", k], silhouette, plan["refit_reason"], config
    )
    return pa.Table.from_pylist([row], schema=SELECTION_SCHEMA)


def registered_projection(plan: Mapping[str, Any]) -> Projection:
    """The registered model's scatter-chart projection."""
    values = json.loads(plan["projection_json"])
    return Projection(np.array(values["mean"]), np.array(values["components"]))


def registered_rules(plan: Mapping[str, Any]) -> pa.Table:
    """The registered model's segment_rule_tree, as it was fitted."""
    return pa.Table.from_pylist(json.loads(plan["rules_json"]))
