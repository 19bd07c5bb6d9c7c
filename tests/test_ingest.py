from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from conftest import ONLINE_RETAIL_COLUMNS
from customer_segmentation.ingest.read import (
    CANONICAL_COLUMNS,
    ROW_NUMBER_COLUMN,
    RawFileError,
    RawFileWarning,
    ReadOptions,
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
    import customer_segmentation.ingest.read as ingest

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
    # INTEGER quantity, BIGINT customer id, TIMESTAMP date: no check; the DOUBLE price is
    # profiled in one scan of its own (NaN, largest value, decimal places), not here.
    assert checked == []


# Hostile values: typed exactly, or refused naming file, column and an example -------------

ID_2_53_PLUS_1 = 2**53 + 1
ID_2_63_MINUS_1 = 2**63 - 1
HEADER = ",".join(ONLINE_RETAIL_COLUMNS)


def csv_file(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.write_bytes(("\n".join([HEADER, *lines]) + "\n").encode(encoding))
    return path


def line(customer: str = "17850", price: str = "2.55", quantity: str = "6",
         date: str = "2010-12-01 08:26:00") -> str:  # fmt: skip
    return f"536365,85123A,HEART,{quantity},{date},{price},{customer},United Kingdom"


def read_all(path: Path, **options: str) -> pa.Table:
    return read_transactions(path, options=ReadOptions(**options)).read_all()


def test_64_bit_ids_are_kept_exactly_from_parquet_and_csv(tmp_path: Path) -> None:
    ids = [ID_2_53_PLUS_1, ID_2_53_PLUS_1 + 1, ID_2_63_MINUS_1, 12346]
    table = pa.table({c: [row[i] for row in ROWS[:1]] * len(ids)
                      for i, c in enumerate(ONLINE_RETAIL_COLUMNS)})  # fmt: skip
    table = table.set_column(6, "CustomerID", pa.array(ids, pa.int64()))
    pq.write_table(table, tmp_path / "ids.parquet")
    assert read_all(tmp_path / "ids.parquet")["CustomerID"].to_pylist() == ids
    # As text, also written with a trailing .0 by a spreadsheet, and with blanks around.
    texts = [str(ids[0]), f" {ids[1]} ", str(ids[2]), "12346.0"]
    path = csv_file(tmp_path / "ids.csv", [line(customer=t) for t in texts])
    result = read_all(path)
    assert result["CustomerID"].type == pa.int64()
    assert result["CustomerID"].to_pylist() == ids


def test_ids_in_a_floating_point_column_above_2_53_are_refused(tmp_path: Path) -> None:
    table = pa.table({c: [row[i] for row in ROWS[:2]] for i, c in enumerate(ONLINE_RETAIL_COLUMNS)})
    table = table.set_column(6, "CustomerID", pa.array([17850.0, 1e16], pa.float64()))
    pq.write_table(table, tmp_path / "float_ids.parquet")
    with pytest.raises(
        RawFileError,
        match=r"float_ids\.parquet: column CustomerID: 1 value\(s\) "
        r"are above 2\^53 = 9,007,199,254,740,992 in a DOUBLE column",
    ):
        read_all(tmp_path / "float_ids.parquet")


def test_text_ids_need_customer_id_type_string_and_are_then_kept(tmp_path: Path) -> None:
    path = csv_file(tmp_path / "text_ids.csv", [line(customer="C-1042"), line(customer="17850")])
    with pytest.raises(
        RawFileError,
        match=r"column CustomerID: 1 value\(s\) are not whole "
        r"numbers, e.g. 'C-1042'; set the dbt var customer_id_type: string",
    ):
        read_all(path)
    result = read_all(path, customer_id_type="string")
    assert result["CustomerID"].to_pylist() == ["C-1042", "17850"]


def test_blank_ids_are_guests_and_nan_ids_are_refused(tmp_path: Path) -> None:
    path = csv_file(tmp_path / "blank.csv", [line(customer=" "), line(customer=""), line()])
    assert read_all(path)["CustomerID"].to_pylist() == [None, None, 17850]
    path = csv_file(tmp_path / "nan.csv", [line(customer="nan"), line()])
    with pytest.raises(
        RawFileError,
        match=r"nan\.csv: column CustomerID: 1 value\(s\) are a "
        r"missing value written as text, e.g. 'nan'",
    ):
        read_all(path)


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("price", "nan", "column UnitPrice: 1 value(s) are not finite, e.g. 'nan'"),
        ("price", "inf", "column UnitPrice: 1 value(s) are not finite, e.g. 'inf'"),
        ("price", "1e40", "column UnitPrice: 1 value(s) are beyond a 34-digit price"),
        ("price", "0.00000000000001", "round to zero at 12 decimal places"),
        ("quantity", "nan", "column Quantity: 1 value(s) are not finite, e.g. 'nan'"),
        ("quantity", "3000000000", "column Quantity: 1 value(s) are beyond the 32-bit integer"),
    ],
    ids=["nan_price", "infinite_price", "huge_price", "tiny_price", "nan_quantity", "big_quantity"],
)
def test_unrepresentable_numbers_are_refused(
    tmp_path: Path, column: str, value: str, expected: str
) -> None:
    path = csv_file(tmp_path / "bad.csv", [line(), line(**{column: value})])
    with pytest.raises(RawFileError) as error:
        read_all(path)
    assert str(error.value).startswith(f"{path}: ")
    assert expected in str(error.value)


def test_tiny_prices_keep_their_precision(tmp_path: Path) -> None:
    path = csv_file(tmp_path / "tiny.csv", [line(price="0.00004"), line(price="2.55")])
    prices = read_all(path)["UnitPrice"]
    assert prices.type == pa.decimal128(18, 5)
    assert [str(p) for p in prices.to_pylist()] == ["0.00004", "2.55000"]
    # Typed doubles too; and the bundled data's prices stay at 4 places.
    table = pa.table({c: [row[i] for row in ROWS] for i, c in enumerate(ONLINE_RETAIL_COLUMNS)})
    table = table.set_column(5, "UnitPrice", pa.array([0.00004, 2.55, 1.85]))
    pq.write_table(table, tmp_path / "tiny.parquet")
    assert read_all(tmp_path / "tiny.parquet")["UnitPrice"].to_pylist()[0] == Decimal("0.00004")


def test_time_zone_offsets_keep_the_written_wall_clock_time(tmp_path: Path) -> None:
    path = csv_file(tmp_path / "tz.csv", [line(date="2011-12-01 08:26:00+01:00"),
                                          line(date="2011-12-01T23:30:00Z")])  # fmt: skip
    assert read_all(path)["InvoiceDate"].to_pylist() == [
        dt.datetime(2011, 12, 1, 8, 26),
        dt.datetime(2011, 12, 1, 23, 30),
    ]


def test_instants_are_shown_in_the_time_zone_var_whatever_the_session(tmp_path: Path) -> None:
    table = pa.table({c: [row[i] for row in ROWS[:1]] for i, c in enumerate(ONLINE_RETAIL_COLUMNS)})
    instant = pa.array([dt.datetime(2011, 7, 1, 7, 26, tzinfo=dt.UTC)], pa.timestamp("us", "UTC"))
    pq.write_table(table.set_column(4, "InvoiceDate", instant), tmp_path / "instants.parquet")
    utc = read_all(tmp_path / "instants.parquet")["InvoiceDate"].to_pylist()
    london = read_all(tmp_path / "instants.parquet", time_zone="Europe/London")
    assert utc == [dt.datetime(2011, 7, 1, 7, 26)]
    assert london["InvoiceDate"].to_pylist() == [dt.datetime(2011, 7, 1, 8, 26)]
    with pytest.raises(RawFileError, match="var time_zone: 'Mars/Olympus' is not a time zone"):
        read_all(tmp_path / "instants.parquet", time_zone="Mars/Olympus")


def test_two_digit_years_are_20xx_never_year_10(tmp_path: Path) -> None:
    path = csv_file(tmp_path / "yy.csv", [line(date="12/1/10 8:26"), line(date="1/13/11 9:00")])
    assert read_all(path)["InvoiceDate"].to_pylist() == [
        dt.datetime(2010, 12, 1, 8, 26),
        dt.datetime(2011, 1, 13, 9, 0),
    ]


def test_epoch_numbers_are_not_dates(tmp_path: Path) -> None:
    path = csv_file(tmp_path / "epoch.csv", [line(date="1291191960")])
    with pytest.raises(
        RawFileError,
        match=r"column InvoiceDate: 1 value\(s\) are not dates, e\.g"
        r"\. '1291191960' \(it looks like an epoch number\)",
    ):
        read_all(path)
    table = pa.table({c: [row[i] for row in ROWS[:1]] for i, c in enumerate(ONLINE_RETAIL_COLUMNS)})
    pq.write_table(table.set_column(4, "InvoiceDate", pa.array([1291191960])),
                   tmp_path / "epoch.parquet")  # fmt: skip
    with pytest.raises(
        RawFileError,
        match=r"epoch\.parquet: column InvoiceDate: holds BIGINT "
        r"values, not dates, e\.g\. 1291191960",
    ):
        read_all(tmp_path / "epoch.parquet")


def test_dates_ambiguous_in_every_line_are_read_month_first_with_a_warning(
    tmp_path: Path,
) -> None:
    path = csv_file(tmp_path / "ambiguous.csv", [line(date="12/1/2010 8:26"),
                                                 line(date="3/4/2011 9:00")])  # fmt: skip
    with pytest.warns(RawFileWarning, match="every date reads both month-first and day-first"):
        dates = read_all(path)["InvoiceDate"].to_pylist()
    assert dates == [dt.datetime(2010, 12, 1, 8, 26), dt.datetime(2011, 3, 4, 9, 0)]


def test_a_bad_value_deep_in_a_csv_is_found_with_our_message(tmp_path: Path) -> None:
    lines = [line() for _ in range(30_000)] + [line(quantity="six")]
    path = csv_file(tmp_path / "deep.csv", lines)
    with pytest.raises(
        RawFileError,
        match=r"deep\.csv: column Quantity: 1 value\(s\) are not "
        r"numbers, e\.g\. 'six'",
    ):
        read_all(path)


def test_latin1_deep_in_the_file_and_utf16_are_read(tmp_path: Path) -> None:
    lines = [line() for _ in range(40_000)]
    lines.append("536366,22633,CAFÉ MUG £,6,2010-12-01 08:28:00,1.85,17850,France")
    path = csv_file(tmp_path / "latin1_deep.csv", lines, "latin-1")
    table, encoding = read_csv(path)
    assert (encoding, table.num_rows) == ("latin-1", 40_001)
    assert table["Description"].to_pylist()[-1] == "CAFÉ MUG £"
    utf16 = csv_file(tmp_path / "utf16.csv", lines[-2:], "utf-16")
    table, encoding = read_csv(utf16)
    assert encoding == "utf-16"
    assert table["Description"].to_pylist() == ["HEART", "CAFÉ MUG £"]
    # The var names the encoding; a wrong one is a clear error naming the file.
    with pytest.raises(RawFileError, match=r"latin1_deep\.csv: cannot be read as CSV \(utf-8\)"):
        read_csv(path, ReadOptions(encoding="utf-8"))
    with pytest.raises(RawFileError, match="var raw_transactions_encoding: expected auto or"):
        ReadOptions(encoding="ebcdic")


def test_a_parquet_column_named_file_row_number_is_ignored(tmp_path: Path) -> None:
    table = pa.table({c: [row[i] for row in ROWS] for i, c in enumerate(ONLINE_RETAIL_COLUMNS)})
    table = table.append_column("file_row_number", pa.array([9, 8, 7]))
    pq.write_table(table, tmp_path / "extra.parquet")
    result = read_all(tmp_path / "extra.parquet")
    assert result.column_names == [*CANONICAL_COLUMNS, ROW_NUMBER_COLUMN]
    assert result[ROW_NUMBER_COLUMN].to_pylist() == [1, 2, 3]


def test_no_path_is_a_clear_error() -> None:
    with pytest.raises(RawFileError, match="var raw_transactions_path is not set"):
        read_transactions(None)


def test_blanks_of_every_kind_and_float32_columns_are_read_exactly(tmp_path: Path) -> None:
    path = csv_file(tmp_path / "tabs.csv", [line(customer="\t"), line(customer="\t17850 ")])
    assert read_all(path)["CustomerID"].to_pylist() == [None, 17850]
    assert read_all(path, customer_id_type="string")["CustomerID"].to_pylist() == [None, "17850"]
    table = pa.table({c: [row[i] for row in ROWS[:2]] for i, c in enumerate(ONLINE_RETAIL_COLUMNS)})
    table = table.set_column(5, "UnitPrice", pa.array([2.55, 0.85], pa.float32()))
    table = table.set_column(6, "CustomerID", pa.array([17850.0, 123456789.0], pa.float32()))
    pq.write_table(table.slice(0, 1), tmp_path / "float32.parquet")
    assert read_all(tmp_path / "float32.parquet")["UnitPrice"].to_pylist() == [Decimal("2.55")]
    pq.write_table(table, tmp_path / "float32_big_id.parquet")
    with pytest.raises(RawFileError, match=r"are above 2\^24 = 16,777,216 in a FLOAT column"):
        read_all(tmp_path / "float32_big_id.parquet")


@pytest.mark.parametrize(
    ("customer", "quantity", "expected"),
    [
        ("0017850", "6", "column CustomerID: 1 value(s) have leading zeros"),
        ("17850", "1_000", "column Quantity: 1 value(s) are not numbers, e.g. '1_000'"),
    ],
    ids=["leading_zeros", "underscore_in_a_number"],
)
def test_values_that_would_be_misread_are_refused(
    tmp_path: Path, customer: str, quantity: str, expected: str
) -> None:
    path = csv_file(tmp_path / "odd.csv", [line(), line(customer=customer, quantity=quantity)])
    with pytest.raises(RawFileError, match=re.escape(expected)):
        read_all(path)


# What a build says about a bad file: the reader's message, through the plugin's load (what
# dbt-duckdb calls for the source); test_dbt_pipeline.py shows one reaching dbt's summary.


def load_through_plugin(path: Path) -> pa.Table:
    from dbt.adapters.duckdb.plugins import BasePlugin
    from dbt.adapters.duckdb.utils import SourceConfig

    plugin = BasePlugin.create("customer_segmentation.ingest.dbt_plugin", alias="transactions")
    source = SourceConfig(
        name="transactions",
        identifier="transactions",
        schema="raw",
        database=None,
        meta={"plugin": "transactions", "external_location": str(path)},
        tags=[],
    )
    return plugin.load(source).read_all()


def csv_rows(path: Path, rows: list[tuple], header: list[str] = ONLINE_RETAIL_COLUMNS) -> Path:
    text = "\n".join([",".join(header), *(",".join(str(v) for v in row) for row in rows)])
    path.write_text(text + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (
            [("536365", "85123A", "HEART", "six", "2010-12-01 08:26", 2.55, 17850, "UK")],
            "column Quantity: 1 value(s) are not numbers, e.g. 'six'",
        ),
        (
            [
                ("536365", "85123A", "HEART", 6, "12/1/2010 8:26", 2.55, 17850, "UK"),
                ("536366", "85123A", "HEART", 6, "yesterday", 2.55, 17850, "UK"),
            ],
            "column InvoiceDate: 1 value(s) are not dates, e.g. 'yesterday'",
        ),
        (
            [("536365", "85123A", "HEART", 6, "2010-12-01 08:26", "cheap", 17850, "UK")],
            "column UnitPrice: 1 value(s) are not numbers, e.g. 'cheap'",
        ),
        ([], "has a header but no transaction lines"),
    ],
    ids=["text_in_quantity", "unparseable_date", "text_in_price", "header_only"],
)
def test_bad_values_fail_naming_file_column_and_value(
    tmp_path: Path, rows: list[tuple], expected: str
) -> None:
    path = csv_rows(tmp_path / "bad.csv", rows)
    with pytest.raises(RawFileError) as error:
        load_through_plugin(path)
    assert f"{path}: {expected}" in str(error.value)


def test_empty_file_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(RawFileError) as error:
        load_through_plugin(path)
    assert f"{path}: the file is empty (0 bytes)" in str(error.value)


def test_unknown_column_spelling_lists_what_is_missing(tmp_path: Path) -> None:
    header = ["Bill", "SKU", "Description", "Qty", "InvoiceDate", "UnitPrice", "CustomerID"]
    header += ["Country"]
    rows = [("1000", "85123A", "HEART", 2, "2011-01-01 10:00", 5.0, 1, "United Kingdom")]
    path = csv_rows(tmp_path / "odd.csv", rows, header)
    with pytest.raises(RawFileError) as error:
        load_through_plugin(path)
    message = str(error.value)
    assert "missing required column(s): InvoiceNo (accepted: InvoiceNo / Invoice); StockCode" in (
        message
    )
    assert "Quantity" in message
