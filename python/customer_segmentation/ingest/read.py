"""Read a retailer's transaction-line file (Parquet, CSV or xlsx) into Arrow.

The pipeline accepts the two column spellings in circulation, Online Retail
(``InvoiceNo, ..., UnitPrice, CustomerID``) and Online Retail II
(``Invoice, ..., Price, Customer ID``), and renames them to the Online Retail
spelling. Every line gets ``source_row_number`` (1-based position in the file) so that
"the first copy of a duplicate" is well defined and every line has a key.

Values are checked over the whole file and typed exactly, so that no later cast can change
them: quantities as 32-bit integers, prices as decimals wide enough for every price in the
file, customer ids as 64-bit integers (or text, ``customer_id_type: string``) without a detour
through floating point, and dates as the wall-clock time the file wrote. A value that cannot
be typed that way stops the read with a ``RawFileError`` naming the file, the column, how many
values are bad and one of them. Text, booleans and the other columns are left as the file
gives them: trimming and renaming is staging's job.
"""

from __future__ import annotations

import codecs
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb
import pyarrow as pa

from customer_segmentation.errors import SegmentationError

FileFormat = Literal["parquet", "csv", "xlsx"]
CustomerIdType = Literal["bigint", "string"]

# Online Retail spelling; staging renames these to snake_case.
CANONICAL_COLUMNS: tuple[str, ...] = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
)

# Spellings accepted for each canonical column, compared after `_spelling_key`.
ACCEPTED_SPELLINGS: dict[str, tuple[str, ...]] = {
    "InvoiceNo": ("InvoiceNo", "Invoice"),
    "StockCode": ("StockCode",),
    "Description": ("Description",),
    "Quantity": ("Quantity",),
    "InvoiceDate": ("InvoiceDate",),
    "UnitPrice": ("UnitPrice", "Price"),
    "CustomerID": ("CustomerID", "Customer ID"),
    "Country": ("Country",),
}

ROW_NUMBER_COLUMN = "source_row_number"
# DuckDB's name for the Parquet reader's own row number; a file column of that name clashes.
PARQUET_ROW_NUMBER = "file_row_number"
# Text dates: the first format that parses every value wins (month-first, as in UCI's own CSV
# exports, before day-first; four-digit years before two-digit ones). ISO timestamps need no
# format. Two-digit years follow strptime's pivot: 00-68 are 2000-2068, 69-99 are 1969-1999.
DATE_FORMATS: tuple[str, ...] = (
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%y %H:%M",
    "%m/%d/%y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%y %H:%M",
    "%d/%m/%y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y %H:%M:%S",
    "%Y-%m-%d %H:%M",
)
# A parsed year below this is a misread (strptime's %Y takes "10" as the year 10).
MIN_PARSED_YEAR = 1000
TEXT_TYPES = frozenset({"VARCHAR"})
SIGNED_64_TYPES = frozenset({"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT",
                             "UINTEGER"})  # fmt: skip
INTEGER_TYPES = SIGNED_64_TYPES | {"HUGEINT", "UBIGINT", "UHUGEINT"}
# Already 32-bit quantities: no value check (and no extra scan of a large file) needed.
INT32_TYPES = frozenset({"TINYINT", "SMALLINT", "INTEGER", "UTINYINT", "USMALLINT"})
FLOAT_TYPES = frozenset({"FLOAT", "DOUBLE"})
TIMESTAMP_TYPES = frozenset({"TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "DATE"})
TIMESTAMP_TZ_TYPE = "TIMESTAMP WITH TIME ZONE"
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
# Above 2**53 a double cannot hold every whole number: an id stored as one may have lost digits.
EXACT_DOUBLE_MAX = 2**53
# Prices keep at least 4 decimal places (cents and their fractions) and at most 12.
MIN_PRICE_SCALE = 4
MAX_PRICE_SCALE = 12
# Names DuckDB reads without an extension (others are downloaded at run time, which fails).
ENCODINGS: dict[str, str] = {
    "utf-8": "utf-8", "utf8": "utf-8", "latin-1": "latin-1", "latin1": "latin-1",
    "iso-8859-1": "latin-1", "utf-16": "utf-16", "utf16": "utf-16",
}  # fmt: skip
MISSING_AS_TEXT = ("nan", "none", "null", "na", "n/a", "#n/a")
# What counts as blank around a value: DuckDB's trim() alone removes spaces only, not tabs,
# line breaks or no-break spaces.
BLANKS = "' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13) || chr(160)"
# A 32-bit float holds every whole number only up to 2**24.
EXACT_FLOAT_MAX = 2**24
BATCH_ROWS = 1_000_000


class RawFileError(SegmentationError, ValueError):
    """The raw transactions file cannot be read as transaction lines."""


class RawFileWarning(UserWarning):
    """The file was read, but a reading rule it relies on deserves a look."""


@dataclass(frozen=True)
class ReadOptions:
    """How values are read; set by dbt vars through the source's meta.

    Attributes:
        customer_id_type: ``bigint`` (whole numbers up to 2**63 - 1, exactly) or ``string``
            (ids kept as text, e.g. ``C-1042``).
        encoding: a CSV's encoding, or ``auto`` (byte-order mark, else UTF-8 if every byte
            decodes, else latin-1).
        time_zone: the zone whose wall-clock time a timestamp stored as an instant (a
            time-zone-aware column) is shown in. Text dates keep the time they were written
            with; an offset written after them is dropped.

    """

    customer_id_type: CustomerIdType = "bigint"
    encoding: str = "auto"
    time_zone: str = "UTC"

    def __post_init__(self) -> None:
        """Refuse values no reader handles, naming the dbt var."""
        if self.customer_id_type not in ("bigint", "string"):
            raise RawFileError(
                f"var customer_id_type: expected bigint or string, got {self.customer_id_type!r}"
            )
        if self.encoding != "auto" and self.encoding.lower() not in ENCODINGS:
            raise RawFileError(
                f"var raw_transactions_encoding: expected auto or one of "
                f"{', '.join(sorted(set(ENCODINGS.values())))}, got {self.encoding!r}"
            )


def _spelling_key(name: str) -> str:
    """Key that ignores case, blanks and punctuation: ``Customer ID`` = ``customer_id``."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


def detect_format(path: str | Path | None) -> FileFormat:
    """Return the file format from the file name's suffix.

    Raises:
        RawFileError: no path, or the suffix is not .parquet/.pq, .csv/.txt/.tsv or .xlsx.

    """
    if path is None or str(path).strip() in ("", "None"):
        raise RawFileError(
            "var raw_transactions_path is not set: give the Parquet, CSV or .xlsx file to read"
        )
    suffix = Path(path).suffix.lower()
    if suffix in {".parquet", ".pq"}:
        return "parquet"
    if suffix in {".csv", ".txt", ".tsv"}:
        return "csv"
    if suffix == ".xlsx":
        return "xlsx"
    raise RawFileError(
        f"{path}: unsupported file type {suffix or '(no suffix)'!r}; "
        "expected .parquet, .csv or .xlsx"
    )


def map_columns(columns: Sequence[str], path: str | Path) -> dict[str, str]:
    """Map the file's column names to the canonical Online Retail names.

    Returns:
        ``{canonical name: name in the file}`` for all eight columns.

    Raises:
        RawFileError: a canonical column is missing (all missing ones are listed,
            with their accepted spellings) or appears under two spellings.

    """
    by_key: dict[str, list[str]] = {}
    for column in columns:
        by_key.setdefault(_spelling_key(column), []).append(column)

    mapping: dict[str, str] = {}
    missing: list[str] = []
    for canonical, spellings in ACCEPTED_SPELLINGS.items():
        keys = dict.fromkeys(_spelling_key(s) for s in spellings)
        found = [c for key in keys for c in by_key.get(key, [])]
        if not found:
            missing.append(f"{canonical} (accepted: {' / '.join(spellings)})")
        elif len(found) > 1:
            raise RawFileError(
                f"{path}: column {canonical} appears more than once, as {', '.join(found)}"
            )
        else:
            mapping[canonical] = found[0]
    if missing:
        raise RawFileError(
            f"{path}: missing required column(s): {'; '.join(missing)}. "
            f"Columns found: {', '.join(columns) or '(none)'}"
        )
    return mapping


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _trim(expression: str) -> str:
    """SQL: the text with blanks of every kind removed at both ends."""
    return f"trim({expression}, {BLANKS})"


def _first_bad_value(
    con: duckdb.DuckDBPyConnection, table_function: str, column: str, bad_when: str
) -> tuple[int, str | None]:
    """Count the values of a column for which ``bad_when`` (SQL over ``v``) holds; one example.

    Null and blank values are never bad here: they are missing, and the classification
    counts them.
    """
    query = (
        f"select count(*), min(cast(v as varchar)) from "
        f"(select {_quote_identifier(column)} as v from {table_function}) "
        f"where v is not null and {_trim('cast(v as varchar)')} != '' and ({bad_when})"
    )
    count, example = con.execute(query).fetchall()[0]
    return int(count), example


@dataclass(frozen=True)
class _Column:
    """One column being typed: where it is read from and how to report its bad values."""

    con: duckdb.DuckDBPyConnection
    table_function: str
    name: str
    type: str
    path: Path

    @property
    def quoted(self) -> str:
        return _quote_identifier(self.name)

    @property
    def is_text(self) -> bool:
        return self.type in TEXT_TYPES

    def refuse(self, bad_when: str, what: str, hint: str = "") -> None:
        """Raise a RawFileError if any value satisfies ``bad_when`` (SQL over ``v``)."""
        bad, example = _first_bad_value(self.con, self.table_function, self.name, bad_when)
        if bad:
            raise RawFileError(
                f"{self.path}: column {self.name}: {bad} value(s) {what}, e.g. {example!r}"
                + (f"; {hint}" if hint else "")
            )

    def refuse_missing_as_text(self) -> None:
        """Text such as 'nan' is a missing value written by a tool, not a value."""
        if self.is_text:
            words = ", ".join(_sql_string(w) for w in MISSING_AS_TEXT)
            self.refuse(
                f"lower({_trim('v')}) in ({words})",
                "are a missing value written as text",
                "leave the cell empty instead",
            )

    def number(self) -> str:
        """SQL over ``v``: the value as a double (null if text that is not a number).

        DuckDB would read 1_000 as 1000: text with an underscore is not a number here. A 32-bit
        float goes through its shortest text, so 2.55 stays 2.55 (not 2.549999952316).
        """
        if self.is_text:
            return f"try_cast(case when contains(v, '_') then null else {_trim('v')} end as double)"
        if self.type == "FLOAT":
            return "cast(cast(v as varchar) as double)"
        return "cast(v as double)"

    def refuse_non_finite_numbers(self) -> None:
        """Text that is no number, and NaN or infinite values, are refused."""
        if self.is_text:
            self.refuse(f"{self.number()} is null", "are not numbers")
        if self.is_text or self.type in FLOAT_TYPES:
            self.refuse(f"isnan({self.number()}) or isinf({self.number()})", "are not finite")

    def blank_to_null(self) -> str:
        """SQL over the column: text trimmed, blank as null; a float as its shortest text."""
        if self.is_text:
            return f"nullif({_trim(self.quoted)}, '')"
        if self.type == "FLOAT":
            return f"cast({self.quoted} as varchar)"
        return self.quoted


def _quantity_expression(column: _Column) -> str:
    """Quantities as 32-bit integers; text, fractions and values beyond 32 bits are refused."""
    if column.type in INT32_TYPES:
        return f"cast({column.quoted} as integer)"
    if column.type not in INTEGER_TYPES:
        column.refuse_non_finite_numbers()
        column.refuse(f"{column.number()} != round({column.number()})", "are not whole numbers")
    column.refuse(
        f"abs({column.number()}) > {INT32_MAX}",
        f"are beyond the 32-bit integer range (+/-{INT32_MAX:,})",
    )
    if column.type in INTEGER_TYPES:
        return f"cast({column.quoted} as integer)"
    return f"cast(cast({column.blank_to_null()} as double) as integer)"


def _price_scale(column: _Column) -> tuple[int, int]:
    """Decimal (width, scale) that holds every price of the column exactly (to 12 places).

    The scale is the fewest decimal places, at least 4, at which every price rounds to itself;
    the width is 18 (a 64-bit decimal) when the largest price fits, else 38. One scan.

    Raises:
        RawFileError: a price is NaN or infinite, a non-zero price is below 12 decimal places,
            or a price is beyond a 38-digit decimal.

    """
    scales = " ".join(
        f"when round(d, {s}) = d then {s}" for s in range(MIN_PRICE_SCALE, MAX_PRICE_SCALE + 1)
    )
    smallest = 10.0 ** (-MAX_PRICE_SCALE) / 2
    tiny = f"d != 0 and abs(d) < {smallest!r}"
    query = (
        "select count(*) filter (where not isfinite(d)), min(v) filter (where not isfinite(d)), "
        f"count(*) filter (where {tiny}), min(v) filter (where {tiny}), "
        "max(abs(d)) filter (where isfinite(d)), "
        f"max(case {scales} else {MAX_PRICE_SCALE + 1} end) filter (where isfinite(d)) "
        f"from (select v, {column.number()} as d from (select {column.quoted} as v "
        f"from {column.table_function})) where d is not null"
    )
    n_infinite, infinite, n_tiny, tiny_example, largest, scale = column.con.execute(
        query
    ).fetchall()[0]
    bad = [
        (n_infinite, infinite, "are not finite"),
        (
            n_tiny,
            tiny_example,
            f"are not zero but round to zero at {MAX_PRICE_SCALE} decimal places",
        ),
    ]
    for count, example, what in bad:
        if count:
            raise RawFileError(
                f"{column.path}: column {column.name}: {count} value(s) {what}, "
                f"e.g. {str(example)!r}"
            )
    scale = min(int(scale or MIN_PRICE_SCALE), MAX_PRICE_SCALE)
    digits = len(str(int(largest or 0)))
    if digits <= 18 - scale:
        return 18, scale
    if digits <= 38 - scale:
        return 38, scale
    column.refuse(
        f"abs({column.number()}) >= {10.0 ** (38 - scale)!r}",
        f"are beyond a {38 - scale}-digit price (a 38-digit decimal with {scale} decimal places)",
    )
    raise AssertionError("unreachable: the largest price is beyond the range")


def _price_expression(column: _Column) -> str:
    """Prices as exact decimals with the file's precision; text and NaN are refused."""
    if column.type.startswith("DECIMAL"):
        return column.quoted
    if column.is_text:
        column.refuse(f"{column.number()} is null", "are not numbers")
    width, scale = _price_scale(column)
    return f"cast({column.blank_to_null()} as decimal({width}, {scale}))"


ID_AS_TEXT_HINT = "set the dbt var customer_id_type: string to keep customer ids as text"


def _customer_id_expression(column: _Column, id_type: CustomerIdType) -> str:
    """Customer ids, exactly: 64-bit integers or text, never through a double."""
    column.refuse_missing_as_text()
    if column.type in SIGNED_64_TYPES:
        return f"cast({column.quoted} as {'bigint' if id_type == 'bigint' else 'varchar'})"
    if column.type in INTEGER_TYPES:  # unsigned 64-bit or 128-bit
        if id_type == "string":
            return f"cast({column.quoted} as varchar)"
        column.refuse(f"v > {INT64_MAX} or v < {-INT64_MAX - 1}", "are beyond 64 bits",
                      ID_AS_TEXT_HINT)  # fmt: skip
        return f"cast({column.quoted} as bigint)"
    if column.is_text:
        if id_type == "string":
            return column.blank_to_null()
        trimmed = _trim("v")
        column.refuse(
            rf"not regexp_full_match({trimmed}, '[+-]?[0-9]+(\.0*)?')",
            "are not whole numbers",
            ID_AS_TEXT_HINT,
        )
        # As numbers, 0017850 and 17850 would be one customer: a code with leading zeros is text.
        column.refuse(
            rf"regexp_full_match({trimmed}, '[+-]?0[0-9]+(\.0*)?')",
            "have leading zeros (as numbers they would merge with the same id without them)",
            ID_AS_TEXT_HINT,
        )
        column.refuse(
            rf"try_cast(regexp_replace({trimmed}, '\.0*$', '') as bigint) is null",
            "are beyond 64 bits",
            ID_AS_TEXT_HINT,
        )
        return rf"cast(nullif(regexp_replace({_trim(column.quoted)}, '\.0*$', ''), '') as bigint)"
    # Floating point or decimal.
    column.refuse_non_finite_numbers()
    column.refuse(f"{column.number()} != round({column.number()})", "are not whole numbers",
                  ID_AS_TEXT_HINT)  # fmt: skip
    if column.type in FLOAT_TYPES:
        exact, power = (EXACT_FLOAT_MAX, 24) if column.type == "FLOAT" else (EXACT_DOUBLE_MAX, 53)
        column.refuse(
            f"abs(v) > {exact}",
            f"are above 2^{power} = {exact:,} in a {column.type} column, which cannot "
            "hold such ids exactly (digits may already be lost)",
            "write the ids as integers or text",
        )
    else:
        column.refuse(f"abs(v) > {INT64_MAX}", "are beyond 64 bits", ID_AS_TEXT_HINT)
    as_integer = f"cast({column.quoted} as bigint)"
    return as_integer if id_type == "bigint" else f"cast({as_integer} as varchar)"


def _is_misread(parsed: str) -> str:
    """SQL: the text did not parse, or parsed to an implausibly small year (a misread)."""
    return f"{parsed} is null or year({parsed}) < {MIN_PARSED_YEAR}"


def _text_date_expression(column: _Column) -> str:
    """SQL turning a text date column into a timestamp, or a RawFileError naming bad values."""
    iso = f"try_cast({_trim('v')} as timestamp)"
    bad, example = _first_bad_value(column.con, column.table_function, column.name,
                                    _is_misread(iso))  # fmt: skip
    if bad == 0:
        # An offset after the time (+01:00, Z) is dropped: the time as written is kept.
        return f"cast(nullif({_trim(column.quoted)}, '') as timestamp)"
    best = (bad, example, "ISO")
    for date_format in DATE_FORMATS:
        parsed = f"try_strptime({_trim('v')}, '{date_format}')"
        failing, failing_example = _first_bad_value(
            column.con, column.table_function, column.name, _is_misread(parsed)
        )
        if failing == 0:
            _warn_if_ambiguous(column, date_format)
            return f"strptime(nullif({_trim(column.quoted)}, ''), '{date_format}')"
        if failing < best[0]:
            best = (failing, failing_example, date_format)
    hint = ""
    if re.fullmatch(r"\s*-?\d{9,}(\.\d*)?\s*", str(best[1])):
        hint = " (it looks like an epoch number)"
    raise RawFileError(
        f"{column.path}: column {column.name}: {best[0]} value(s) are not dates, e.g. "
        f"{best[1]!r}{hint} (closest format: {best[2]}); use ISO dates (2010-12-01 08:26) or "
        f"one consistent format of {', '.join(DATE_FORMATS)}"
    )


def _warn_if_ambiguous(column: _Column, date_format: str) -> None:
    """Warn when month-first was chosen but day-first reads every date too."""
    if not date_format.startswith("%m/%d"):
        return
    day_first = date_format.replace("%m/%d", "%d/%m", 1)
    failing, _ = _first_bad_value(
        column.con,
        column.table_function,
        column.name,
        _is_misread(f"try_strptime({_trim('v')}, '{day_first}')"),
    )
    if failing == 0:
        warnings.warn(
            f"{column.path}: column {column.name}: every date reads both month-first and "
            f"day-first (no day above 12); read month-first ({date_format}). If the file is "
            "day-first, write its dates as ISO (2010-12-01 08:26)",
            RawFileWarning,
            stacklevel=2,
        )


def _date_expression(column: _Column, time_zone: str) -> str:
    """Dates as timestamps without a time zone: the wall-clock time, the same on any machine."""
    if column.type in TIMESTAMP_TYPES:
        return f"cast({column.quoted} as timestamp)"
    if column.type == TIMESTAMP_TZ_TYPE:
        try:
            column.con.execute(f"select timezone({_sql_string(time_zone)}, now())").fetchall()
        except duckdb.Error as error:
            raise RawFileError(
                f"var time_zone: {time_zone!r} is not a time zone DuckDB knows (e.g. UTC, "
                f"Europe/London): {str(error).splitlines()[0]}"
            ) from None
        # An instant: shown in one documented zone, not in the session's (which follows TZ).
        return f"timezone({_sql_string(time_zone)}, {column.quoted})"
    if column.is_text:
        return _text_date_expression(column)
    (example,) = column.con.execute(
        f"select min({column.quoted}) from {column.table_function}"
    ).fetchall()[0]
    raise RawFileError(
        f"{column.path}: column {column.name}: holds {column.type} values, not dates, e.g. "
        f"{example!r} (epoch numbers?); write dates as ISO text (2010-12-01 08:26) or a "
        "timestamp column"
    )


def _validated_select(
    con: duckdb.DuckDBPyConnection,
    table_function: str,
    mapping: dict[str, str],
    types: dict[str, str],
    path: Path,
    options: ReadOptions,
) -> str:
    """The select list with canonical names and exactly typed values.

    Raises:
        RawFileError: naming the column, how many values are bad and one of them.

    """
    typed: dict[str, Callable[[_Column], str]] = {
        "Quantity": _quantity_expression,
        "UnitPrice": _price_expression,
        "CustomerID": lambda c: _customer_id_expression(c, options.customer_id_type),
        "InvoiceDate": lambda c: _date_expression(c, options.time_zone),
    }
    expressions = []
    for canonical in CANONICAL_COLUMNS:
        name = mapping[canonical]
        column = _Column(con, table_function, name, types[name], path)
        expression = typed[canonical](column) if canonical in typed else column.quoted
        expressions.append(f"{expression} as {_quote_identifier(canonical)}")
    return ", ".join(expressions)


def _with_row_numbers(batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> pa.RecordBatchReader:
    """Append a 1-based ``source_row_number`` column, counted in file order."""
    out_schema = schema.append(pa.field(ROW_NUMBER_COLUMN, pa.int64()))

    def numbered() -> Iterator[pa.RecordBatch]:
        offset = 0
        for batch in batches:
            numbers = pa.array(range(offset + 1, offset + batch.num_rows + 1), pa.int64())
            offset += batch.num_rows
            yield pa.RecordBatch.from_arrays([*batch.columns, numbers], schema=out_schema)

    return pa.RecordBatchReader.from_batches(out_schema, numbered())


def _checked_query(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    table_function: str,
    options: ReadOptions,
    row_number_column: str | None = None,
) -> str:
    """Check the file through ``con`` and return the SQL that reads it with canonical names.

    ``row_number_column``, when the reader provides one (Parquet's 0-based
    ``file_row_number``), numbers the lines in SQL; otherwise the caller numbers them.

    Raises:
        RawFileError: a missing or doubled column, no lines, or bad values (see
            ``_validated_select``).

    """
    described = con.execute(f"describe select * from {table_function}").fetchall()
    types = {row[0]: str(row[1]) for row in described if row[0] != row_number_column}
    mapping = map_columns(list(types), path)
    (n_rows,) = con.execute(f"select count(*) from {table_function}").fetchall()[0]
    if n_rows == 0:
        raise RawFileError(f"{path}: has a header but no transaction lines")
    select_list = _validated_select(con, table_function, mapping, types, path, options)
    if row_number_column:
        select_list += f", {_quote_identifier(row_number_column)} + 1 as {ROW_NUMBER_COLUMN}"
    return f"select {select_list} from {table_function}"


def _read_with_duckdb(
    path: Path,
    table_function: str,
    options: ReadOptions,
    con: duckdb.DuckDBPyConnection | None = None,
    table: pa.Table | None = None,
    row_number_column: str | None = None,
) -> pa.RecordBatchReader:
    """Stream a file through DuckDB so Parquet of any size is read in bounded memory.

    ``con`` is a private connection that already holds ``table_function`` (a CSV's lines);
    ``table``, when given, is registered as ``table_function`` (rows read by openpyxl), so every
    format goes through the same checks.
    """
    con = con or duckdb.connect()
    if table is not None:
        con.register(table_function, table)
    try:
        query = _checked_query(con, path, table_function, options, row_number_column)
        # preserve_insertion_order keeps file order, which source_row_number depends on.
        con.execute("set preserve_insertion_order = true")
        reader = con.sql(query).to_arrow_reader(BATCH_ROWS)
    except BaseException:
        con.close()
        raise
    if row_number_column:
        return _closing(reader, con)

    return _with_row_numbers(_closing(reader, con), reader.schema)


def _closing(reader: pa.RecordBatchReader, con: duckdb.DuckDBPyConnection) -> pa.RecordBatchReader:
    """A reader that closes the connection it reads from once drained."""

    def batches() -> Iterator[pa.RecordBatch]:
        # The connection must outlive the reader; this closure holds it until the end.
        try:
            yield from reader
        finally:
            con.close()

    return pa.RecordBatchReader.from_batches(reader.schema, batches())


def detect_encoding(path: Path) -> str:
    """A CSV's encoding: its byte-order mark, else UTF-8 if every byte decodes, else latin-1.

    The whole file is decoded (a first non-UTF-8 byte deep in the file, as in a latin-1 export
    whose first pound sign is on line 38,250, still counts).

    Raises:
        RawFileError: NUL bytes without a byte-order mark (UTF-16 or UTF-32 without one).

    """
    with path.open("rb") as file:
        head = file.read(4096)
        if head.startswith(codecs.BOM_UTF8):
            return "utf-8"
        if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
            raise RawFileError(f"{path}: is UTF-32 encoded; save it as UTF-8 or UTF-16")
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        if b"\x00" in head:
            raise RawFileError(
                f"{path}: has NUL bytes and no byte-order mark (UTF-16 without one?); save it "
                "as UTF-8, or set the dbt var raw_transactions_encoding: utf-16"
            )
        decoder = codecs.getincrementaldecoder("utf-8")()
        file.seek(0)
        try:
            while chunk := file.read(1 << 22):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "latin-1"
    return "utf-8"


def read_csv(path: Path, options: ReadOptions | None = None) -> tuple[pa.Table, str]:
    """Read a CSV file in its encoding (``options.encoding``, or detected).

    Every value is read as text and checked here over the whole file: DuckDB's type sniffer
    sees only a sample, and a bad value after it would stop the read with DuckDB's own message.

    Returns:
        The table with canonical column names and the encoding used.

    """
    options = options or ReadOptions()
    encoding = (
        detect_encoding(path) if options.encoding == "auto" else ENCODINGS[options.encoding.lower()]
    )
    con = duckdb.connect()
    try:
        con.execute(
            f"create temp table csv_lines as select * from read_csv({_sql_string(str(path))}, "
            f"header = true, all_varchar = true, encoding = {_sql_string(encoding)})"
        )
    except duckdb.Error as error:
        con.close()
        detail = " ".join(str(error).split("\n")[:2])
        raise RawFileError(f"{path}: cannot be read as CSV ({encoding}): {detail}") from None
    return _read_with_duckdb(path, "csv_lines", options, con=con).read_all(), encoding


def _column_array(values: list[object]) -> pa.Array:
    """Build an Arrow array; a column of mixed types (e.g. 536365 and 'C536379') becomes text."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def read_xlsx(path: Path) -> pa.Table:
    """Read the first worksheet of an .xlsx file with openpyxl, keeping the file's column names.

    DuckDB's excel extension would be downloaded at run time, which fails offline.
    """
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        rows = workbook.worksheets[0].iter_rows(values_only=True)
        header = next(rows, None)
        if header is None:
            raise RawFileError(f"{path}: the first worksheet is empty (no header row)")
        names = [str(h) if h is not None else "" for h in header]
        mapping = map_columns(names, path)
        positions = [names.index(mapping[c]) for c in CANONICAL_COLUMNS]
        values: list[list[object]] = [[] for _ in CANONICAL_COLUMNS]
        for row in rows:
            if all(v is None for v in row):
                continue
            for out, position in zip(values, positions, strict=True):
                out.append(row[position] if position < len(row) else None)
    finally:
        workbook.close()
    arrays = [_column_array(v) for v in values]
    return pa.Table.from_arrays(arrays, names=[mapping[c] for c in CANONICAL_COLUMNS])


def _parquet_columns(con: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    described = con.execute(f"describe select * from read_parquet({_sql_string(str(path))})")
    return [row[0] for row in described.fetchall()]


def read_transactions(
    path: str | Path | None,
    connection: duckdb.DuckDBPyConnection | None = None,
    options: ReadOptions | None = None,
) -> pa.RecordBatchReader | duckdb.DuckDBPyRelation:
    """Read transaction lines from Parquet, CSV or xlsx, with canonical column names.

    Args:
        path: the file.
        connection: for Parquet, the database connection that will store the lines; the lines
            are then returned as a relation on it, so DuckDB copies them straight from the file
            instead of through Arrow batches (18 s instead of 24 s on 78M lines).
        options: how ids, encodings and time zones are read (dbt vars; see ReadOptions).

    Returns:
        The eight canonical columns, exactly typed, plus ``source_row_number``: a stream of
        record batches, or a relation on ``connection``.

    Raises:
        RawFileError: the file is missing, of an unsupported type, unreadable, lacks required
            columns or holds values that cannot be typed exactly. The message names the file.

    """
    options = options or ReadOptions()
    file_format = detect_format(path)
    path = Path(str(path))
    if not path.is_file():
        raise RawFileError(f"{path}: file not found (working directory: {Path.cwd()})")
    if path.stat().st_size == 0:
        raise RawFileError(f"{path}: the file is empty (0 bytes)")
    if file_format == "parquet":
        return _read_parquet(path, connection, options)
    if file_format == "csv":
        table, _ = read_csv(path, options)
        return pa.RecordBatchReader.from_batches(table.schema, table.to_batches())
    return _read_with_duckdb(path, "xlsx_sheet", options, table=read_xlsx(path))


def _read_parquet(
    path: Path, connection: duckdb.DuckDBPyConnection | None, options: ReadOptions
) -> pa.RecordBatchReader | duckdb.DuckDBPyRelation:
    """Parquet through DuckDB: on ``connection`` when given, numbered by the reader if it can."""
    plain = f"read_parquet({_sql_string(str(path))})"
    try:
        columns = _parquet_columns(connection or duckdb.connect(), path)
        if PARQUET_ROW_NUMBER in columns:
            # The reader's row number would clash with the file's own column: number in Arrow.
            return _read_with_duckdb(path, plain, options)
        numbered = f"read_parquet({_sql_string(str(path))}, {PARQUET_ROW_NUMBER} = true)"
        if connection is not None:
            return connection.sql(
                _checked_query(connection, path, numbered, options, PARQUET_ROW_NUMBER)
            )
        return _read_with_duckdb(path, numbered, options, row_number_column=PARQUET_ROW_NUMBER)
    except duckdb.Error as error:
        detail = str(error).split("\n")[0]
        raise RawFileError(f"{path}: cannot be read as Parquet: {detail}") from error
