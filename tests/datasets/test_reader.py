"""Every bad cell of a dataset is reported with its file, line and column; nothing is
silently dropped."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from ovencast.datasets.reader import (
    MAX_REPORTED_PROBLEMS,
    DatasetProblems,
    parse_dataset,
    read_dataset_dir,
)
from ovencast.errors import InvalidDataset, InvalidRequest

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
