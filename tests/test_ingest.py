from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from conftest import ONLINE_RETAIL_COLUMNS
from customer_segmentation.ingest import (
    CANONICAL_COLUMNS,
    ROW_NUMBER_COLUMN,
    RawFileError,
    detect_format,
    map_columns,
    read_csv,
    read_transactions,
)

ONLINE_RETAIL_II_COLUMNS = [
    "Invoice",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "Price",
    "Customer ID",
    "Country",
]

ROWS = [
    ("536365", "85123A", "WHITE HANGING HEART", 6, "2010-12-01 08:26:00", 2.55, 17850, "UK"),
    ("C536379", "D", "Discount", -1, "2010-12-01 09:41:00", 27.5, 14527, "UK"),
    ("536366", "22633", "CAFÉ MUG", 6, "2010-12-01 08:28:00", 1.85, None, "France"),
]


def write_csv(path: Path, header: list[str], rows: list[tuple], encoding: str) -> Path:
    lines = [",".join(header)]
    lines += [",".join("" if v is None else str(v) for v in row) for row in rows]
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.parquet", "parquet"),
        ("A.PQ", "parquet"),
        ("a.csv", "csv"),
        ("a.txt", "csv"),
        ("a.xlsx", "xlsx"),
    ],
)
def test_detect_format(name: str, expected: str) -> None:
    assert detect_format(name) == expected


def test_detect_format_rejects_unknown_suffix() -> None:
    with pytest.raises(RawFileError, match=r"data\.json: unsupported file type '\.json'"):
        detect_format("data.json")


def test_map_columns_accepts_both_spellings() -> None:
    assert map_columns(ONLINE_RETAIL_COLUMNS, "f") == {c: c for c in CANONICAL_COLUMNS}
    mapping = map_columns(ONLINE_RETAIL_II_COLUMNS, "f")
    assert mapping["InvoiceNo"] == "Invoice"
    assert mapping["UnitPrice"] == "Price"
    assert mapping["CustomerID"] == "Customer ID"


def test_map_columns_ignores_case_and_separators() -> None:
    columns = ["invoice_no", "stock_code", "description", "QUANTITY", "invoice date", "unit_price"]
    mapping = map_columns([*columns, "customer_id", "country"], "f")
    assert mapping["CustomerID"] == "customer_id"
    assert mapping["InvoiceDate"] == "invoice date"


def test_map_columns_lists_every_missing_column_and_names_the_file() -> None:
    with pytest.raises(RawFileError) as error:
        map_columns(["InvoiceNo", "StockCode", "Description", "Quantity", "Country"], "x.csv")
    message = str(error.value)
    assert message.startswith("x.csv: missing required column(s)")
    assert "InvoiceDate" in message
    assert "UnitPrice (accepted: UnitPrice / Price)" in message
    assert "CustomerID (accepted: CustomerID / Customer ID)" in message
    assert "Columns found: InvoiceNo, StockCode" in message


def test_map_columns_rejects_a_column_given_twice() -> None:
    with pytest.raises(
        RawFileError, match="InvoiceNo appears more than once, as InvoiceNo, Invoice"
    ):
        map_columns([*ONLINE_RETAIL_COLUMNS, "Invoice"], "f")


def test_read_parquet_adds_row_numbers_in_file_order(tmp_path: Path) -> None:
    table = pa.table({c: [row[i] for row in ROWS] for i, c in enumerate(ONLINE_RETAIL_COLUMNS)})
    pq.write_table(table, tmp_path / "lines.parquet")
    result = read_transactions(tmp_path / "lines.parquet").read_all()
    assert result.column_names == [*CANONICAL_COLUMNS, ROW_NUMBER_COLUMN]
    assert result[ROW_NUMBER_COLUMN].to_pylist() == [1, 2, 3]
    assert result["InvoiceNo"].to_pylist() == ["536365", "C536379", "536366"]


def test_read_csv_utf8_and_online_retail_ii_spelling(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "ii.csv", ONLINE_RETAIL_II_COLUMNS, ROWS, "utf-8")
    table, encoding = read_csv(path)
    assert encoding == "utf-8"
    assert table.column_names == [*CANONICAL_COLUMNS, ROW_NUMBER_COLUMN]
    assert table["Description"].to_pylist()[2] == "CAFÉ MUG"
    assert table["CustomerID"].to_pylist() == [17850, 14527, None]


def test_read_csv_falls_back_to_latin1(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "latin1.csv", ONLINE_RETAIL_COLUMNS, ROWS, "latin-1")
    table, encoding = read_csv(path)
    assert encoding == "latin-1"
    assert table["Description"].to_pylist()[2] == "CAFÉ MUG"


def test_read_xlsx_with_mixed_invoice_types(tmp_path: Path) -> None:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(ONLINE_RETAIL_COLUMNS)
    for row in ROWS:
        invoice = int(row[0]) if row[0].isdigit() else row[0]
        timestamp = dt.datetime.fromisoformat(row[4])
        sheet.append([invoice, row[1], row[2], row[3], timestamp, row[5], row[6], row[7]])
    workbook.save(tmp_path / "lines.xlsx")

    table = read_transactions(tmp_path / "lines.xlsx").read_all()
    assert table.num_rows == 3
    assert table["InvoiceNo"].to_pylist() == ["536365", "C536379", "536366"]
    assert table["InvoiceDate"].to_pylist()[0] == dt.datetime(2010, 12, 1, 8, 26)
    assert table[ROW_NUMBER_COLUMN].to_pylist() == [1, 2, 3]


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(RawFileError, match=r"nope\.parquet: file not found"):
        read_transactions(tmp_path / "nope.parquet")


def test_csv_without_required_columns_is_named(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "bad.csv", ["a", "b"], [(1, 2)], "utf-8")
    with pytest.raises(RawFileError, match=r"bad\.csv: missing required column\(s\): InvoiceNo"):
        read_transactions(path)


def test_fractional_quantities_are_refused(tmp_path: Path) -> None:
    rows = [(*ROWS[0][:3], 1.5, *ROWS[0][4:])]
    path = write_csv(tmp_path / "fraction.csv", ONLINE_RETAIL_COLUMNS, rows, "utf-8")
    with pytest.raises(RawFileError, match="column Quantity: 1 value\\(s\\) are not whole numbers"):
        read_transactions(path)


def test_typed_integer_columns_are_not_rescanned(tmp_path: Path, monkeypatch) -> None:
    import customer_segmentation.ingest as ingest

    checked: list[str] = []
    original = ingest._first_bad_value

    def spy(con, table_function, column, bad_when):
        checked.append(column)
        return original(con, table_function, column, bad_when)

    monkeypatch.setattr(ingest, "_first_bad_value", spy)
    table = pa.table({c: [row[i] for row in ROWS] for i, c in enumerate(ONLINE_RETAIL_COLUMNS)})
    table = table.set_column(3, "Quantity", table["Quantity"].cast(pa.int32()))
    table = table.set_column(
        4, "InvoiceDate", pc.strptime(table["InvoiceDate"], "%Y-%m-%d %H:%M:%S", "us")
    )
    pq.write_table(table, tmp_path / "typed.parquet")
    read_transactions(tmp_path / "typed.parquet").read_all()
    assert checked == []  # INTEGER quantity, BIGINT customer id, DOUBLE price, TIMESTAMP date
