"""Every bad cell of a dataset is reported with its file, line and column; nothing is
silently dropped."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from ovencast.datasets.reader import (
    MAX_KEPT_PROBLEMS,
    MAX_LINE_CHARS,
    MAX_REGRESSOR_COLUMNS,
    MAX_REPORTED_PROBLEMS,
    DataLimits,
    DatasetProblems,
    SalesRow,
    SalesTable,
    parse_dataset,
    parse_dataset_files,
    read_dataset_dir,
)
from ovencast.errors import InvalidDataset, InvalidRequest, Misconfigured, PayloadTooLarge
from ovencast.settings import Settings

GOOD_SALES = (
    "date,product,quantity\n"
    "2024-01-01,bread,10\n"
    "2024-01-01,rolls,4.5\n"
    "2024-01-02,bread,0\n"
)


@dataclass(frozen=True)
class BadCase:
    texts: dict[str, str]
    file: str
    line: int
    column: str | None  # None: the problem is the whole line (e.g. its field count)
    words: tuple[str, ...] = ()  # further words the message must contain


CASES = {
    "missing column": BadCase(
        {"sales.csv": "date,product\n2024-01-01,bread\n"},
        "sales.csv", 1, None, ("missing required column", "quantity")),
    # A spreadsheet's export: the reason says what is wrong, not only what is missing.
    "semicolon-separated": BadCase(
        {"sales.csv": "date;product;quantity\n2024-01-01;bread;1,5\n"},
        "sales.csv", 1, None, ("missing required column", "separated by ';'",
                               "comma-separated")),
    "tab-separated weather": BadCase(
        {"sales.csv": GOOD_SALES, "weather.csv": "date\ttemperature_c\n2024-01-01\t3\n"},
        "weather.csv", 1, None, ("separated by tab",)),
    "capitalised names": BadCase(
        {"sales.csv": "Date,Product,quantity\n2024-01-01,bread,1\n"},
        "sales.csv", 1, None, ("case-sensitive", "'Date' -> 'date'",
                               "'Product' -> 'product'")),
    "unparsable date": BadCase(
        {"sales.csv": GOOD_SALES + "01.03.2024,bread,3\n"},
        "sales.csv", 5, "date", ("01.03.2024", "ISO date")),
    "impossible date": BadCase(
        {"sales.csv": GOOD_SALES + "2024-02-30,bread,3\n"},
        "sales.csv", 5, "date", ("2024-02-30",)),
    "unparsable number": BadCase(
        {"sales.csv": GOOD_SALES + "2024-01-03,bread,twelve\n"},
        "sales.csv", 5, "quantity", ("twelve", "not a number")),
    "not a finite number": BadCase(
        {"sales.csv": GOOD_SALES + "2024-01-03,bread,nan\n"},
        "sales.csv", 5, "quantity", ("nan",)),
    "empty quantity": BadCase(
        {"sales.csv": GOOD_SALES + "2024-01-03,bread,\n"},
        "sales.csv", 5, "quantity", ("empty",)),
    "negative quantity": BadCase(
        {"sales.csv": GOOD_SALES + "2024-01-03,bread,-2\n"},
        "sales.csv", 5, "quantity", ("negative",)),
    "duplicate (date, product)": BadCase(
        {"sales.csv": GOOD_SALES + "2024-01-01,bread,11\n"},
        "sales.csv", 5, "date", ("duplicate", "bread", "line 2")),
    "empty product": BadCase(
        {"sales.csv": GOOD_SALES + "2024-01-03,  ,7\n"},
        "sales.csv", 5, "product", ("empty",)),
    # The database column holds 200 characters: PostgreSQL would refuse the row with a
    # driver error (a traceback at the CLI) and SQLite would store it; the reader must
    # report it like any other bad cell.
    "product name too long": BadCase(
        {"sales.csv": GOOD_SALES + f"2024-01-03,{'b' * 201},7\n"},
        "sales.csv", 5, "product", ("200",)),
    "wrong field count": BadCase(
        {"sales.csv": GOOD_SALES + "2024-01-03,bread,7,extra\n"},
        "sales.csv", 5, None, ("4 fields", "header has 3")),
    "line numbers count blank lines": BadCase(
        {"sales.csv": GOOD_SALES + "\n\n2024-01-03,bread,x\n"},
        "sales.csv", 7, "quantity", ()),
    "bad regressor value": BadCase(
        {"sales.csv": GOOD_SALES,
         "weather.csv": "date,temperature_c\n2024-01-01,3.5\n2024-01-02,warm\n"},
        "weather.csv", 3, "temperature_c", ("warm",)),
    "bad regressor date": BadCase(
        {"sales.csv": GOOD_SALES, "traffic.csv": "date,guests\n2024/01/01,300\n"},
        "traffic.csv", 2, "date", ("2024/01/01",)),
    "duplicate regressor date": BadCase(
        {"sales.csv": GOOD_SALES,
         "calendar.csv": "date,public_holiday\n2024-01-01,1\n2024-01-01,0\n"},
        "calendar.csv", 3, "date", ("duplicate", "line 2")),
    "regressor column in two files": BadCase(
        {"sales.csv": GOOD_SALES,
         "weather.csv": "date,temperature_c\n2024-01-01,3.5\n",
         "calendar.csv": "date,temperature_c\n2024-01-01,1\n"},
        "calendar.csv", 1, "temperature_c", ("weather.csv",)),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_cell_is_reported_with_file_line_and_column(case: BadCase) -> None:
    with pytest.raises(DatasetProblems) as raised:
        parse_dataset(case.texts)
    message = str(raised.value)
    where = f"{case.file} line {case.line}"
    if case.column is not None:
        where += f", column '{case.column}'"
    assert where in message
    for word in case.words:
        assert word in message
    assert isinstance(raised.value, InvalidDataset)
    assert isinstance(raised.value, InvalidRequest)
    problems = [p for p in raised.value.problems if p.file == case.file]
    assert [(p.line, p.column) for p in problems] == [(case.line, case.column)]


def test_every_problem_is_reported_not_just_the_first() -> None:
    text = GOOD_SALES + "2024-01-03,bread,-1\n2024-01-04,,2\nyesterday,bread,1\n"
    with pytest.raises(DatasetProblems) as raised:
        parse_dataset({"sales.csv": text})
    where = [(p.line, p.column) for p in raised.value.problems]
    assert where == [(5, "quantity"), (6, "product"), (7, "date")]


def test_long_problem_lists_are_summarised() -> None:
    bad_rows = "".join(f"2024-02-{day:02d},bread,-1\n" for day in range(1, 29))
    with pytest.raises(DatasetProblems) as raised:
        parse_dataset({"sales.csv": GOOD_SALES + bad_rows})
    assert len(raised.value.problems) == 28
    assert f"and {28 - MAX_REPORTED_PROBLEMS} more problems" in str(raised.value)


def test_good_dataset_is_parsed_exactly() -> None:
    parsed = parse_dataset({
        "sales.csv": GOOD_SALES,
        "weather.csv": "date,temperature_c,wind\n2024-01-01,3.5,\n2024-01-02,-1,4\n",
    })
    assert [(r.date, r.product, r.quantity) for r in parsed.sales] == [
        (date(2024, 1, 1), "bread", 10.0),
        (date(2024, 1, 1), "rolls", 4.5),
        (date(2024, 1, 2), "bread", 0.0),
    ]
    columns = {c.name: c for c in parsed.regressors}
    assert columns["temperature_c"].values == {date(2024, 1, 1): 3.5, date(2024, 1, 2): -1.0}
    # An empty cell is unknown (None), never zero.
    assert columns["wind"].values == {date(2024, 1, 1): None, date(2024, 1, 2): 4.0}
    assert {c.source for c in parsed.regressors} == {"weather"}
    assert (parsed.first_date, parsed.last_date) == (date(2024, 1, 1), date(2024, 1, 2))


def test_byte_order_mark_and_column_order_do_not_matter(tmp_path: Path) -> None:
    (tmp_path / "sales.csv").write_text("quantity,product,date\n3,bread,2024-01-01\n",
                                        encoding="utf-8-sig")
    parsed = read_dataset_dir(tmp_path)
    assert [(r.date, r.product, r.quantity) for r in parsed.sales] == [
        (date(2024, 1, 1), "bread", 3.0)]


@pytest.mark.parametrize(("texts", "expected"), [
    ({"weather.csv": "date,t\n"}, "sales.csv is required"),
    ({"sales.csv": GOOD_SALES, "prices.csv": "date,p\n"}, "unknown dataset files"),
    ({"sales.csv": "date,product,quantity\n"}, "no data rows"),
])
def test_dataset_level_errors(texts: dict[str, str], expected: str) -> None:
    with pytest.raises(InvalidDataset, match=expected):
        parse_dataset(texts)


def test_missing_directory_and_missing_sales_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidDataset, match="is not a directory"):
        read_dataset_dir(tmp_path / "nowhere")
    with pytest.raises(InvalidDataset, match=r"has no sales\.csv"):
        read_dataset_dir(tmp_path)


def test_kiel_data_parses(kiel_dir: Path) -> None:
    parsed = read_dataset_dir(kiel_dir)
    assert len({r.product for r in parsed.sales}) == 6
    assert (parsed.first_date, parsed.last_date) == (date(2013, 7, 1), date(2018, 7, 31))
    assert {c.source for c in parsed.regressors} == {"weather", "calendar"}


# ------------------------------------------------------------ validation at the door
LIMITS = DataLimits(earliest=date(1990, 1, 1), latest=date(2030, 12, 31), max_value=1e9)


@dataclass(frozen=True)
class DoorCase:
    texts: dict[str, str | bytes]
    file: str
    line: int
    column: str | None
    words: tuple[str, ...] = ()


DOOR_CASES = {
    # The reproductions of issue 15: accepted before, every later job stayed queued.
    "year 0001": DoorCase({"sales.csv": GOOD_SALES + "0001-01-01,bread,3\n"},
                          "sales.csv", 5, "date", ("0001-01-01", "outside", "1990-01-01")),
    "year 9999": DoorCase({"sales.csv": GOOD_SALES + "9999-12-31,bread,3\n"},
                          "sales.csv", 5, "date", ("9999-12-31", "2030-12-31")),
    "quantity 1e308": DoorCase({"sales.csv": GOOD_SALES + "2024-01-03,bread,1e308\n"},
                               "sales.csv", 5, "quantity", ("1e308", "DATA_MAX_VALUE")),
    "NUL in a product": DoorCase({"sales.csv": GOOD_SALES + "2024-01-03,br\x00ead,3\n"},
                                 "sales.csv", 5, "product", ("NUL",)),
    "quantity overflowing to inf": DoorCase(
        {"sales.csv": GOOD_SALES + "2024-01-03,bread,1e999\n"},
        "sales.csv", 5, "quantity", ("larger than",)),
    "quantity above the bound": DoorCase(
        {"sales.csv": GOOD_SALES + "2024-01-03,bread,1000000001\n"},
        "sales.csv", 5, "quantity", ("larger than 1e+09",)),
    "escape character in a product": DoorCase(
        {"sales.csv": GOOD_SALES + "2024-01-03,br\x1bead,3\n"},
        "sales.csv", 5, "product", ("U+001B",)),
    "line break inside a quoted product": DoorCase(
        {"sales.csv": GOOD_SALES + '2024-01-03,"bre\nad",3\n'},
        "sales.csv", 5, "product", ("U+000A",)),
    "digits of another script": DoorCase(
        {"sales.csv": GOOD_SALES + "2024-01-03,bread,\u0663\n"},
        "sales.csv", 5, "quantity", ("not a number",)),
    "underscores in a number": DoorCase(
        {"sales.csv": GOOD_SALES + "2024-01-03,bread,1_000\n"},
        "sales.csv", 5, "quantity", ("not a number",)),
    "a date that is not YYYY-MM-DD": DoorCase(
        {"sales.csv": GOOD_SALES + "20240103,bread,3\n"},
        "sales.csv", 5, "date", ("ISO date",)),
    "regressor value 1e308": DoorCase(
        {"sales.csv": GOOD_SALES, "weather.csv": "date,temperature_c\n2024-01-01,-1e308\n"},
        "weather.csv", 2, "temperature_c", ("DATA_MAX_VALUE",)),
    "regressor date out of range": DoorCase(
        {"sales.csv": GOOD_SALES, "calendar.csv": "date,closed\n2099-01-01,1\n"},
        "calendar.csv", 2, "date", ("outside",)),
    "NUL in a regressor column name": DoorCase(
        {"sales.csv": GOOD_SALES, "weather.csv": "date,temp\x00c\n2024-01-01,1\n"},
        "weather.csv", 1, None, ("header column 2", "NUL")),
    "a regressor column name too long": DoorCase(
        {"sales.csv": GOOD_SALES, "weather.csv": f"date,{'t' * 101}\n2024-01-01,1\n"},
        "weather.csv", 1, None, ("101 characters long (at most 100)",)),
    "a column twice in the header": DoorCase(
        {"sales.csv": "date,product,quantity,product\n2024-01-01,bread,1,rolls\n"},
        "sales.csv", 1, None, ("more than once",)),
    "too many regressor columns": DoorCase(
        {"sales.csv": GOOD_SALES, "weather.csv": "date," + ",".join(
            f"c{i}" for i in range(MAX_REGRESSOR_COLUMNS + 1)) + "\n"},
        "weather.csv", 1, None, (f"at most {MAX_REGRESSOR_COLUMNS}",)),
    "bytes that are not UTF-8": DoorCase(
        {"sales.csv": GOOD_SALES.encode() + b"2024-01-03,br\xe9ad,3\n"},
        "sales.csv", 5, None, ("not UTF-8",)),
    "a line longer than the limit": DoorCase(
        {"sales.csv": GOOD_SALES + f"2024-01-03,{'b' * MAX_LINE_CHARS},3\n"},
        "sales.csv", 5, None, (f"longer than {MAX_LINE_CHARS}",)),
    "a quoted field longer than csv's limit": DoorCase(
        {"sales.csv": GOOD_SALES + '2024-01-03,"' + "b\n" * 70_000 + '",3\n'},
        "sales.csv", 5, None, ("not valid CSV", "field limit")),
}


@pytest.mark.parametrize("case", DOOR_CASES.values(), ids=DOOR_CASES.keys())
def test_the_door_refuses_with_file_line_and_column(case: DoorCase) -> None:
    with pytest.raises(DatasetProblems) as raised:
        parse_dataset(case.texts, limits=LIMITS)
    where = f"{case.file} line {case.line}"
    if case.column is not None:
        where += f", column '{case.column}'"
    assert where in str(raised.value)
    problems = [p for p in raised.value.problems if p.file == case.file]
    assert [(p.line, p.column) for p in problems] == [(case.line, case.column)]
    for word in case.words:
        assert word in problems[0].message


def test_lines_after_a_bad_one_keep_their_numbers() -> None:
    text = ("date,product,quantity\r\n"
            "2024-01-01,bread,1\r\n"
            '2024-01-02,"br\r\nead",1\r\n'  # one record on lines 3-4
            "2024-01-03,bread,x\r"  # an old Mac line ending
            "2024-01-04,bread,y\n")
    with pytest.raises(DatasetProblems) as raised:
        parse_dataset({"sales.csv": text}, limits=LIMITS)
    assert [(p.line, p.column) for p in raised.value.problems] == [
        (3, "product"), (5, "quantity"), (6, "quantity")]


def test_every_line_of_a_file_of_bad_bytes_is_reported() -> None:
    text = b"date,product,quantity\n2024-01-01,\xff,1\n2024-01-02,bread,2\n\xfe\n"
    with pytest.raises(DatasetProblems) as raised:
        parse_dataset({"sales.csv": text}, limits=LIMITS)
    assert [(p.line, p.message) for p in raised.value.problems] == [
        (2, "is not UTF-8 text"), (4, "is not UTF-8 text")]


def test_padding_around_cells_is_dropped() -> None:
    parsed = parse_dataset({"sales.csv": "date , product,quantity\n 2024-01-01 ,\tbread ,3 \n"},
                           limits=LIMITS)
    assert list(parsed.sales) == [SalesRow(date(2024, 1, 1), "bread", 3.0)]


def test_the_limits_come_from_the_settings() -> None:
    settings = Settings(data_earliest_date=date(2020, 1, 1), data_max_years_ahead=1,
                        data_max_value=100.0, import_max_rows=7)
    limits = DataLimits.from_settings(settings, today=date(2024, 2, 29))
    assert limits == DataLimits(earliest=date(2020, 1, 1), latest=date(2025, 2, 28),
                                max_value=100.0, max_rows=7)
    default = DataLimits.from_settings(Settings(), today=date(2026, 12, 1))
    assert (default.earliest, default.latest, default.max_value, default.max_rows) == (
        date(1990, 1, 1), date(2028, 12, 1), 1e9, 5_000_000)
    text = "date,product,quantity\n2019-12-31,bread,1\n2025-03-01,bread,1\n2024-01-01,a,101\n"
    with pytest.raises(DatasetProblems) as raised:
        parse_dataset({"sales.csv": text}, limits=limits)
    assert [(p.line, p.column) for p in raised.value.problems] == [
        (2, "date"), (3, "date"), (4, "quantity")]


def test_contradicting_date_settings_are_refused() -> None:
    settings = Settings(data_earliest_date=date(2030, 1, 1), data_max_years_ahead=0)
    with pytest.raises(Misconfigured, match="DATA_EARLIEST_DATE"):
        DataLimits.from_settings(settings, today=date(2026, 1, 1))


def test_a_file_over_the_row_limit_is_refused_when_that_row_is_reached() -> None:
    limits = DataLimits(earliest=date(1990, 1, 1), latest=date(2030, 1, 1), max_rows=3)
    rows = "".join(f"2024-01-{day:02d},bread,1\n" for day in range(1, 5))
    parse_dataset({"sales.csv": "date,product,quantity\n" + rows[:-19]}, limits=limits)
    with pytest.raises(PayloadTooLarge, match=r"more than 3 data rows.*IMPORT_MAX_ROWS"):
        parse_dataset({"sales.csv": "date,product,quantity\n" + rows}, limits=limits)


def test_problems_kept_are_bounded_but_all_are_counted() -> None:
    bad = "".join(f"2024-01-01,p{i},-1\n" for i in range(MAX_KEPT_PROBLEMS + 500))
    with pytest.raises(DatasetProblems) as raised:
        parse_dataset({"sales.csv": "date,product,quantity\n" + bad}, limits=LIMITS)
    assert len(raised.value.problems) == MAX_KEPT_PROBLEMS
    assert raised.value.total == MAX_KEPT_PROBLEMS + 500
    assert f"and {MAX_KEPT_PROBLEMS + 500 - MAX_REPORTED_PROBLEMS} more problems" in str(
        raised.value)


def test_duplicates_name_the_first_line_of_their_key() -> None:
    text = ("date,product,quantity\n2024-01-01,bread,1\n2024-01-02,bread,1\n"
            "2024-01-01,bread,2\n2024-01-01,bread,3\n")
    with pytest.raises(DatasetProblems) as raised:
        parse_dataset({"sales.csv": text}, limits=LIMITS)
    assert [(p.line, p.message) for p in raised.value.problems] == [
        (4, "duplicate (2024-01-01, bread); first seen on line 2"),
        (5, "duplicate (2024-01-01, bread); first seen on line 2")]


def test_streamed_files_parse_like_text_and_stay_open(tmp_path: Path) -> None:
    texts = {"sales.csv": GOOD_SALES,
             "weather.csv": "date,temperature_c,wind\n2024-01-01,3.5,\n2024-01-02,-1,4\n"}
    files = {name: io.BytesIO(("\ufeff" + text).encode()) for name, text in texts.items()}
    streamed = parse_dataset_files(files, limits=LIMITS)
    parsed = parse_dataset(texts, limits=LIMITS)
    assert list(streamed.sales) == list(parsed.sales)
    assert streamed.regressors == parsed.regressors
    assert streamed.files == parsed.files
    assert not any(file.closed for file in files.values())


def test_sales_table_reads_as_a_sequence_of_rows() -> None:
    rows = [SalesRow(date(2024, 1, 2), "rolls", 1.5), SalesRow(date(2024, 1, 1), "bread", 2.0),
            SalesRow(date(2024, 1, 1), "rolls", 0.0)]
    table = SalesTable.of(rows)
    assert len(table) == 3
    assert list(table) == rows
    assert table[1] == rows[1]
    assert table[-1] == rows[-1]
    assert table[:2] == rows[:2]
    assert table.products == ["rolls", "bread"]
    assert (table.first_date, table.last_date) == (date(2024, 1, 1), date(2024, 1, 2))
    assert list(table.rows_in_key_order()) == [rows[1], rows[2], rows[0]]
    assert list(table.duplicates()) == []
