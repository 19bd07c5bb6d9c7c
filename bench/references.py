"""The two hand-written baselines ``make bench`` measures the dbt pipeline against.

Both compute the same clustering features as the project's defaults (recency, frequency,
monetary, tenure, average order value, distinct products, return rate) from the same cleaning
rules, scale them the same way and cluster for k = 2..10.

- ``notebook``: the usual notebook. pandas reads everything, cleans and groups; k-means for
  every k with the full silhouette; exact Ward. Steps that cannot fit are skipped with a note.
- ``best``: the best script one would write by hand. DuckDB SQL computes the features straight
  over the Parquet file; k-means for every k with a sampled silhouette; scalable Ward on
  mini-batch micro-clusters.

``python -m bench.references {notebook,best} DATA --out RESULT.json`` writes
its stage times and the k = 5 labels' customer ids for the adjusted Rand index.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

SEED = Path(__file__).resolve().parents[1] / "seeds" / "non_product_stock_codes.csv"


def exact_non_product_codes(seed: Path = SEED) -> tuple[str, ...]:
    """The project's exact-match non-product stock codes, read from its seed (one list)."""
    with seed.open(newline="", encoding="utf-8") as file:
        return tuple(
            row["stock_code"] for row in csv.DictReader(file) if row["match_type"] == "exact"
        )


NON_PRODUCT = exact_non_product_codes()
LOG_FEATURES = (0, 1, 2, 4, 5)  # recency, frequency, monetary, aov, distinct products
FEATURES = [
    "recency_days",
    "frequency",
    "monetary",
    "tenure_days",
    "average_order_value",
    "distinct_products",
    "return_rate",
]
KS = range(2, 11)
EXACT_WARD_MAX = 20_000  # exact Ward: 40 s at 20k rows, 210 s at 40k
FULL_SILHOUETTE_MAX = 60_000  # the full silhouette is O(n^2)


def scale(matrix: np.ndarray) -> np.ndarray:
    """log1p on skewed columns, winsorise at 1%/99%, standardise (the project's defaults)."""
    out = matrix.astype(float).copy()
    out[:, LOG_FEATURES] = np.log1p(out[:, LOG_FEATURES])
    low, high = np.quantile(out, [0.01, 0.99], axis=0)
    out = np.clip(out, low, high)
    return (out - out.mean(axis=0)) / out.std(axis=0)


def notebook(path: Path) -> dict[str, object]:
    """The pandas-and-scikit-learn notebook way."""
    import pandas as pd
    from sklearn.cluster import AgglomerativeClustering, KMeans
    from sklearn.metrics import silhouette_score

    stages: dict[str, float] = {}
    notes: list[str] = []
    started = time.perf_counter()
    df = pd.read_parquet(path)
    df = df.drop_duplicates()
    df = df[df["CustomerID"].notna()]
    invoice = df["InvoiceNo"].astype(str)
    cancelled = df[invoice.str.startswith("C") & ~df["StockCode"].isin(NON_PRODUCT)]
    kept = df[
        ~invoice.str.startswith(("C", "A"))
        & ~df["StockCode"].isin(NON_PRODUCT)
        & (df["Quantity"] > 0)
        & (df["UnitPrice"] > 0)
    ].copy()
    kept["amount"] = kept["Quantity"] * kept["UnitPrice"]
    kept["day"] = kept["InvoiceDate"].dt.normalize()
    snapshot = kept["day"].max() + pd.Timedelta(days=1)
    orders = kept.groupby(["CustomerID", "InvoiceNo"]).agg(
        day=("day", "min"), value=("amount", "sum")
    )
    per_customer = orders.groupby("CustomerID").agg(
        last=("day", "max"),
        first=("day", "min"),
        frequency=("value", "size"),
        monetary=("value", "sum"),
    )
    per_customer["distinct_products"] = kept.groupby("CustomerID")["StockCode"].nunique()
    returned = (
        -(cancelled["Quantity"] * cancelled["UnitPrice"]).groupby(cancelled["CustomerID"]).sum()
    )
    per_customer["returned"] = returned.reindex(per_customer.index).fillna(0)
    features = pd.DataFrame(
        {
            "recency_days": (snapshot - per_customer["last"]).dt.days,
            "frequency": per_customer["frequency"],
            "monetary": per_customer["monetary"],
            "tenure_days": (snapshot - per_customer["first"]).dt.days,
            "average_order_value": per_customer["monetary"] / per_customer["frequency"],
            "distinct_products": per_customer["distinct_products"],
            "return_rate": per_customer["returned"] / per_customer["monetary"],
        }
    ).sort_index()
    stages["features"] = time.perf_counter() - started
    matrix = scale(features.to_numpy())

    started = time.perf_counter()
    labels_at_5 = None
    for k in KS:
        labels = KMeans(n_clusters=k, n_init=10, random_state=42).fit_predict(matrix)
        if len(matrix) <= FULL_SILHOUETTE_MAX:
            silhouette_score(matrix, labels)
        if k == 5:
            labels_at_5 = labels
    if len(matrix) > FULL_SILHOUETTE_MAX:
        notes.append(f"full silhouette skipped: O(n^2) on {len(matrix):,} customers")
    stages["kmeans_sweep"] = time.perf_counter() - started

    started = time.perf_counter()
    if len(matrix) <= EXACT_WARD_MAX:
        AgglomerativeClustering(n_clusters=5, linkage="ward").fit(matrix)
    else:
        notes.append(f"exact Ward skipped: O(n^2) memory and time on {len(matrix):,} customers")
    stages["final_fits"] = time.perf_counter() - started
    return {
        "stages": stages,
        "notes": notes,
        "customer_ids": features.index.astype("int64").tolist(),
        "labels_k5": labels_at_5.tolist(),
    }


BEST_FEATURES_SQL = """
with lines as (select distinct * from read_parquet($path)),
kept as (
    select * from lines
    where CustomerID is not null and not starts_with(InvoiceNo, 'C')
      and not starts_with(InvoiceNo, 'A') and StockCode not in $non_product
      and Quantity > 0 and UnitPrice > 0
),
orders as (
    select CustomerID, InvoiceNo, min(cast(InvoiceDate as date)) as day,
           sum(Quantity * UnitPrice) as value
    from kept group by all
),
snapshot as (select max(day) + 1 as snapshot_date from orders),
per_customer as (
    select CustomerID, max(day) as last_day, min(day) as first_day, count(*) as frequency,
           sum(value) as monetary
    from orders group by CustomerID
),
products as (
    select CustomerID, count(distinct StockCode) as distinct_products from kept group by all
),
returns as (
    select CustomerID, -sum(Quantity * UnitPrice) as returned from lines
    where CustomerID is not null and starts_with(InvoiceNo, 'C') and StockCode not in $non_product
    group by all
)
select p.CustomerID as customer_id,
       snapshot_date - last_day as recency_days, frequency, monetary,
       snapshot_date - first_day as tenure_days, monetary / frequency as average_order_value,
       distinct_products, coalesce(returned, 0) / monetary as return_rate
from per_customer p cross join snapshot
join products using (CustomerID) left join returns using (CustomerID)
order by customer_id
"""


def best(path: Path) -> dict[str, object]:
    """The best hand-written script: DuckDB features, sampled silhouette, scalable Ward."""
    import duckdb
    from scipy.cluster.hierarchy import fcluster, linkage
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from sklearn.metrics import pairwise_distances_argmin, silhouette_score

    stages: dict[str, float] = {}
    started = time.perf_counter()
    table = duckdb.execute(
        BEST_FEATURES_SQL.replace("$non_product", str(NON_PRODUCT)),
        {"path": str(path)},
    ).to_arrow_table()
    stages["features"] = time.perf_counter() - started
    ids = table["customer_id"].to_numpy()
    matrix = scale(np.column_stack([table[f].to_numpy().astype(float) for f in FEATURES]))

    started = time.perf_counter()
    rng = np.random.default_rng(42)
    sample = rng.choice(len(matrix), size=min(10_000, len(matrix)), replace=False)
    labels_at_5 = None
    for k in KS:
        labels = KMeans(n_clusters=k, n_init=10, random_state=42).fit_predict(matrix)
        silhouette_score(matrix[sample], labels[sample])
        if k == 5:
            labels_at_5 = labels
    stages["kmeans_sweep"] = time.perf_counter() - started

    started = time.perf_counter()
    micro = MiniBatchKMeans(n_clusters=min(1000, len(matrix)), n_init=1, random_state=42)
    micro.fit(matrix[rng.choice(len(matrix), size=min(50_000, len(matrix)), replace=False)])
    tree = linkage(micro.cluster_centers_, method="ward")
    micro_labels = fcluster(tree, 5, criterion="maxclust")
    ward_labels = micro_labels[pairwise_distances_argmin(matrix, micro.cluster_centers_)]
    assert len(ward_labels) == len(matrix)
    stages["final_fits"] = time.perf_counter() - started
    return {
        "stages": stages,
        "notes": [],
        "customer_ids": ids.tolist(),
        "labels_k5": labels_at_5.tolist(),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", choices=["notebook", "best"])
    parser.add_argument("data", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    result = (notebook if args.which == "notebook" else best)(args.data)
    args.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
