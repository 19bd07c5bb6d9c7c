"""Deterministic synthetic transaction lines in the Online Retail layout, with planted groups.

``python -m bench.generate --customers N --seed S --out DIR`` writes
``DIR/transactions.parquet`` (about 40 lines per customer) and ``DIR/planted_groups.parquet``
(customer_id, planted_group). Customers come from five behavioural groups that differ in order
frequency, basket size and value, recency, tenure and return rate. The file also holds what
real exports hold: guest lines without a customer id, cancellations on ``C`` invoices, exact
duplicate lines, zero prices and non-product codes. Two years of dates (2022-2023), many
countries, a few thousand products. Written in chunks of customers, so memory stays bounded
whatever N; the same N and seed give the same files.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

START = np.datetime64("2022-01-01T00:00", "m")
DAYS = 730  # two years
N_PRODUCTS = 3000
CHUNK_CUSTOMERS = 50_000
COUNTRIES = [
    "United Kingdom", "Germany", "France", "EIRE", "Spain", "Netherlands", "Belgium",
    "Switzerland", "Portugal", "Australia", "Norway", "Italy", "Channel Islands", "Finland",
    "Cyprus", "Sweden", "Austria", "Denmark", "Japan", "Poland", "Israel", "USA", "Hong Kong",
    "Singapore", "Iceland", "Canada", "Greece", "Malta", "United Arab Emirates", "Lithuania",
]  # fmt: skip
COUNTRY_WEIGHTS = np.array([60.0] + [40.0 / (len(COUNTRIES) - 1)] * (len(COUNTRIES) - 1)) / 100
NON_PRODUCT_CODES = ["POST", "DOT", "M", "C2", "BANK CHARGES"]


@dataclass(frozen=True)
class Group:
    """How a planted group behaves (days count from the start of the two years)."""

    name: str
    share: float
    mean_orders: float
    mean_lines_per_order: float
    mean_quantity: float
    price_factor: float
    first_day: tuple[int, int]  # uniform range of the first order day
    last_days_before_end: tuple[int, int]  # uniform range of days between last order and end
    return_probability: float  # chance an order is partly cancelled


GROUPS = [
    Group("champions", 0.15, 24, 4, 12, 1.6, (0, 120), (0, 20), 0.02),
    Group("loyal", 0.25, 9, 4, 8, 1.0, (60, 300), (25, 100), 0.03),
    Group("new", 0.20, 1.6, 7, 6, 1.0, (670, 715), (0, 30), 0.02),
    Group("lapsed", 0.25, 1.8, 5, 5, 0.8, (0, 200), (420, 650), 0.03),
    Group("bargain_returners", 0.15, 7, 3, 4, 0.45, (150, 400), (30, 160), 0.45),
]
GROUP_NAMES = [g.name for g in GROUPS]


def _products(rng: np.random.Generator) -> tuple[pa.Array, pa.Array, np.ndarray, np.ndarray]:
    """Stock codes, descriptions, base prices and popularity weights of the catalogue."""
    codes = pa.array([f"{20000 + i}" for i in range(N_PRODUCTS)] + NON_PRODUCT_CODES)
    descriptions = pa.array(
        [f"PRODUCT {i:04d}" for i in range(N_PRODUCTS)]
        + ["POSTAGE", "DOTCOM POSTAGE", "Manual", "CARRIAGE", "Bank Charges"]
    )
    prices = np.round(rng.lognormal(1.0, 0.8, N_PRODUCTS), 2) + 0.1
    popularity = 1.0 / np.arange(1, N_PRODUCTS + 1) ** 0.8  # a long tail of rare products
    return codes, descriptions, prices, popularity / popularity.sum()


def _chunk(
    rng: np.random.Generator,
    first_customer: int,
    n_customers: int,
    first_invoice: int,
    catalogue: tuple[pa.Array, pa.Array, np.ndarray, np.ndarray],
) -> tuple[pa.Table, pa.Table, int]:
    """One chunk of customers: their lines (plus guests), their groups, the next invoice no."""
    codes, descriptions, base_prices, popularity = catalogue
    customer_ids = np.arange(first_customer, first_customer + n_customers)
    group = rng.choice(len(GROUPS), size=n_customers, p=[g.share for g in GROUPS])

    def per_group(attribute: str) -> np.ndarray:
        return np.array([getattr(g, attribute) for g in GROUPS], dtype=float)[group]

    n_orders = 1 + rng.poisson(per_group("mean_orders") - 1)
    first_low, first_high = (np.array([g.first_day[i] for g in GROUPS])[group] for i in (0, 1))
    gap_low, gap_high = (
        np.array([g.last_days_before_end[i] for g in GROUPS])[group] for i in (0, 1)
    )
    first_day = rng.integers(first_low, first_high + 1)
    last_day = np.maximum(first_day, DAYS - 1 - rng.integers(gap_low, gap_high + 1))
    n_orders = np.where(last_day == first_day, 1, n_orders)

    # Orders: the first on first_day, the last on last_day, the others in between.
    order_customer = np.repeat(np.arange(n_customers), n_orders)
    order_rank = np.arange(len(order_customer)) - np.repeat(
        np.cumsum(n_orders) - n_orders, n_orders
    )
    position = rng.random(len(order_customer))
    position = np.where(order_rank == 0, 0.0, position)
    position = np.where(order_rank == n_orders[order_customer] - 1, 1.0, position)
    span = (last_day - first_day)[order_customer]
    order_day = first_day[order_customer] + np.round(position * span).astype(np.int64)
    order_minute = 60 * rng.integers(7, 19, len(order_customer)) + rng.integers(
        0, 60, len(order_customer)
    )
    order_time = START + (order_day * 1440 + order_minute).astype("timedelta64[m]")
    order_country = rng.choice(len(COUNTRIES), size=n_customers, p=COUNTRY_WEIGHTS)[order_customer]

    # Guest orders (no customer id): about a fifth of all lines, as in the real data.
    n_guest_orders = len(order_customer) // 5
    guest_time = START + (
        rng.integers(0, DAYS, n_guest_orders) * 1440 + rng.integers(420, 1140, n_guest_orders)
    ).astype("timedelta64[m]")

    all_customer = np.concatenate([order_customer, np.full(n_guest_orders, -1)])
    all_time = np.concatenate([order_time, guest_time])
    all_country = np.concatenate(
        [order_country, rng.choice(len(COUNTRIES), n_guest_orders, p=COUNTRY_WEIGHTS)]
    )
    is_guest = all_customer < 0
    guest_or_group = np.where(is_guest, 1, group[np.maximum(all_customer, 0)])
    n_all = len(all_customer)
    invoice = first_invoice + np.arange(n_all)

    # Lines of each order.
    mean_lines = np.array([g.mean_lines_per_order for g in GROUPS])[guest_or_group]
    n_lines = 1 + rng.poisson(mean_lines - 1)
    line_order = np.repeat(np.arange(n_all), n_lines)
    product = rng.choice(N_PRODUCTS, size=len(line_order), p=popularity)
    mean_quantity = np.array([g.mean_quantity for g in GROUPS])[guest_or_group][line_order]
    quantity = 1 + rng.poisson(mean_quantity - 1)
    price_factor = np.array([g.price_factor for g in GROUPS])[guest_or_group][line_order]
    price = np.round(base_prices[product] * price_factor, 2)
    price = np.where(rng.random(len(line_order)) < 0.003, 0.0, price)  # free lines
    # Postage on one order in twenty.
    postage_orders = np.flatnonzero(rng.random(n_all) < 0.05)
    line_order = np.concatenate([line_order, postage_orders])
    product = np.concatenate(
        [product, N_PRODUCTS + rng.integers(0, len(NON_PRODUCT_CODES), len(postage_orders))]
    )
    quantity = np.concatenate([quantity, np.ones(len(postage_orders), dtype=np.int64)])
    price = np.concatenate([price, np.full(len(postage_orders), 18.0)])
    invoice_text = pc.cast(pa.array(invoice[line_order]), pa.string())

    # Cancellations: part of an order's lines come back on a C invoice a few days later.
    return_probability = np.array([g.return_probability for g in GROUPS])[guest_or_group]
    returned_order = rng.random(n_all) < np.where(is_guest, 0.01, return_probability)
    is_product = product < N_PRODUCTS
    returned_line = returned_order[line_order] & is_product & (rng.random(len(line_order)) < 0.6)
    returned = np.flatnonzero(returned_line)
    return_delay = rng.integers(1, 10, len(returned)).astype("timedelta64[D]")
    cancel_time = np.minimum(
        all_time[line_order[returned]] + return_delay, START + np.timedelta64(DAYS * 1440 - 1, "m")
    )

    def table(
        rows: np.ndarray | slice, invoices: pa.Array, times: np.ndarray, sign: int
    ) -> pa.Table:
        order_of_row = line_order[rows]
        customer_of_row = all_customer[order_of_row]
        return pa.table(
            {
                "InvoiceNo": invoices,
                "StockCode": codes.take(pa.array(product[rows])),
                "Description": descriptions.take(pa.array(product[rows])),
                "Quantity": pa.array(sign * quantity[rows], pa.int32()),
                "InvoiceDate": pa.array(times.astype("datetime64[us]"), pa.timestamp("us")),
                "UnitPrice": pa.array(price[rows], pa.float64()),
                "CustomerID": pa.array(
                    customer_ids[np.maximum(customer_of_row, 0)],
                    pa.int64(),
                    mask=customer_of_row < 0,
                ),
                "Country": pa.array(COUNTRIES).take(pa.array(all_country[order_of_row])),
            }
        )

    purchases = table(slice(None), invoice_text, all_time[line_order], 1)
    cancellations = table(
        returned,
        pc.binary_join_element_wise("C", invoice_text.take(pa.array(returned)), ""),
        cancel_time,
        -1,
    )
    lines = pa.concat_tables([purchases, cancellations])
    # Exact duplicates of about 1% of lines, as double-submitted exports have.
    duplicates = lines.take(pa.array(np.flatnonzero(rng.random(lines.num_rows) < 0.01)))
    lines = pa.concat_tables([lines, duplicates])
    planted = pa.table(
        {
            "customer_id": pa.array(customer_ids, pa.int64()),
            "planted_group": pa.array(GROUP_NAMES).take(pa.array(group)),
        }
    )
    return lines, planted, first_invoice + n_all


def generate(
    n_customers: int, seed: int, out_dir: Path, progress: bool = True
) -> tuple[Path, Path]:
    """Write transactions.parquet and planted_groups.parquet; return their paths."""
    from tqdm import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    transactions_path = out_dir / "transactions.parquet"
    groups_path = out_dir / "planted_groups.parquet"
    rng = np.random.default_rng(seed)
    catalogue = _products(rng)
    invoice = 500_000
    lines_writer = groups_writer = None
    try:
        with tqdm(total=n_customers, unit="customers", disable=not progress) as bar:
            for start in range(0, n_customers, CHUNK_CUSTOMERS):
                size = min(CHUNK_CUSTOMERS, n_customers - start)
                lines, planted, invoice = _chunk(rng, 100_000 + start, size, invoice, catalogue)
                if lines_writer is None:
                    lines_writer = pq.ParquetWriter(
                        transactions_path, lines.schema, compression="zstd"
                    )
                    groups_writer = pq.ParquetWriter(
                        groups_path, planted.schema, compression="zstd"
                    )
                lines_writer.write_table(lines, row_group_size=1_000_000)
                groups_writer.write_table(planted)
                bar.update(size)
    finally:
        for writer in (lines_writer, groups_writer):
            if writer is not None:
                writer.close()
    return transactions_path, groups_path


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, required=True, help="number of customers")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.customers < 1:
        parser.error("--customers must be at least 1")
    transactions, groups = generate(args.customers, args.seed, args.out, not args.quiet)
    rows = pq.ParquetFile(transactions).metadata.num_rows
    print(f"wrote {transactions} ({rows:,} lines) and {groups}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
