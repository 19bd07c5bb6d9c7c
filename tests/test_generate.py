from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from bench.generate import GROUP_NAMES, generate, main

from conftest import ONLINE_RETAIL_COLUMNS
from customer_segmentation.ingest import read_transactions


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return generate(3_000, seed=7, out_dir=tmp_path_factory.mktemp("gen"), progress=False)


def test_layout_is_online_retail(generated: tuple[Path, Path]) -> None:
    transactions, groups = generated
    assert pq.ParquetFile(transactions).schema_arrow.names == ONLINE_RETAIL_COLUMNS
    assert pq.ParquetFile(groups).schema_arrow.names == ["customer_id", "planted_group"]
    # The pipeline's reader accepts it as it is.
    assert read_transactions(transactions).read_all().num_rows > 0


def test_realistic_mix_of_lines(generated: tuple[Path, Path]) -> None:
    transactions, _ = generated
    (
        lines,
        customers,
        guest_share,
        cancellations,
        zero_prices,
        non_products,
        duplicates,
        days,
        countries,
        products,
    ) = duckdb.sql(
        f"""
        select count(*), count(distinct CustomerID),
               count(*) filter (where CustomerID is null) / count(*),
               count(*) filter (where InvoiceNo like 'C%'),
               count(*) filter (where UnitPrice = 0),
               count(*) filter (where StockCode in ('POST', 'DOT', 'M', 'C2', 'BANK CHARGES')),
               count(*) - (select count(*) from (select distinct * from '{transactions}')),
               date_diff('day', min(InvoiceDate), max(InvoiceDate)),
               count(distinct Country), count(distinct StockCode)
        from '{transactions}'
        """
    ).fetchall()[0]
    assert customers == 3_000
    assert 30 <= lines / customers <= 50  # about 40 lines per customer
    assert 0.1 < guest_share < 0.3
    assert cancellations > 0 and zero_prices > 0 and non_products > 0 and duplicates > 0
    assert days > 700  # two years
    assert countries >= 20 and products >= 1_000


def test_planted_groups_cover_every_customer(generated: tuple[Path, Path]) -> None:
    transactions, groups = generated
    counts = dict(
        duckdb.sql(f"select planted_group, count(*) from '{groups}' group by 1").fetchall()
    )
    assert set(counts) == set(GROUP_NAMES)
    assert sum(counts.values()) == 3_000
    missing = duckdb.sql(
        f"select count(*) from '{groups}' as g anti join '{transactions}' as t"
        " on g.customer_id = t.CustomerID"
    ).fetchall()[0][0]
    assert missing == 0


def test_same_seed_same_files_other_seed_other_files(tmp_path: Path) -> None:
    first, _ = generate(500, seed=3, out_dir=tmp_path / "a", progress=False)
    second, _ = generate(500, seed=3, out_dir=tmp_path / "b", progress=False)
    third, _ = generate(500, seed=4, out_dir=tmp_path / "c", progress=False)
    assert pq.read_table(first).equals(pq.read_table(second))
    assert not pq.read_table(first).equals(pq.read_table(third))


def test_chunks_do_not_change_the_customers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Written in chunks for bounded memory; chunk boundaries must not lose or repeat customers.
    import bench.generate as module

    monkeypatch.setattr(module, "CHUNK_CUSTOMERS", 170)
    _, groups = generate(1_000, seed=5, out_dir=tmp_path, progress=False)
    ids = duckdb.sql(f"select customer_id from '{groups}' order by 1").fetchall()
    assert [i[0] for i in ids] == list(range(100_000, 101_000))


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--customers", "200", "--seed", "1", "--out", str(tmp_path), "--quiet"]) == 0
    assert "transactions.parquet" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--customers", "0", "--out", str(tmp_path)])
