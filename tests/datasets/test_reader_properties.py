"""Property tests of the CSV reader (hypothesis): whatever the bytes, the reader answers
with a dataset or with `InvalidDataset` (problems naming file, line and column), and
valid rows come back exactly as written."""

from __future__ import annotations

import csv
import io
from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ovencast.datasets.reader import (
    REGRESSOR_FILES,
    SALES_COLUMNS,
    SALES_FILE,
    DataLimits,
    DatasetProblems,
    SalesRow,
    parse_dataset,
)
from ovencast.errors import InvalidDataset
from ovencast.names import ALLOWED_CATEGORIES, COLUMN_NAME, PRODUCT_NAME

LIMITS = DataLimits(earliest=date(1990, 1, 1), latest=date(2030, 12, 31), max_value=1e9)
FUZZ = settings(max_examples=200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])

# Text that looks like CSV often enough to reach the cells: the header's words, dates,
# numbers, separators, quotes and line ends, and some characters that must be refused.
CSV_ALPHABET = st.sampled_from([*"0123456789-.,e+ \"\n\r\t", "date", "product", "quantity",
                                 "2024-01-0", "bread", "\x00", "\x1b", "é", "\ufeff", "1e308"])
CSV_LIKE = st.lists(CSV_ALPHABET, max_size=200).map("".join).map(
    lambda body: "date,product,quantity\n" + body)


def _physical_lines(text: str) -> int:
    return len(io.StringIO(text, newline="").readlines())


def _check_refusal(texts: dict[str, str | bytes]) -> None:
    """Parse; a refusal must be InvalidDataset, and each problem must name a given file,
    a line of it, and a column of its header (or None for a whole line)."""
    try:
        parse_dataset(texts, limits=LIMITS)
    except InvalidDataset as exc:  # anything else fails the test
        refused: InvalidDataset = exc
    else:
        return
    if not isinstance(refused, DatasetProblems):
        return  # a dataset-level refusal (no data rows...): one line, no location
    assert refused.problems
    for problem in refused.problems:
        assert problem.file in texts
        content = texts[problem.file]
        text = (content.decode("utf-8", errors="surrogateescape")
                if isinstance(content, bytes) else content)
        assert 1 <= problem.line <= max(1, _physical_lines(text))
        if problem.file == SALES_FILE and problem.column is not None:
            assert problem.column in SALES_COLUMNS
        assert problem.column is None or problem.column in text
        assert str(problem).startswith(f"{problem.file} line {problem.line}")


@FUZZ
@given(st.text())
def test_any_text_is_a_dataset_or_invalid(text: str) -> None:
    _check_refusal({SALES_FILE: text})


@FUZZ
@given(st.binary())
def test_any_bytes_are_a_dataset_or_invalid(payload: bytes) -> None:
    _check_refusal({SALES_FILE: payload})


@FUZZ
@given(CSV_LIKE, st.one_of(st.none(), CSV_LIKE.map(
    lambda text: text.replace("product,quantity", "temperature_c", 1))))
def test_csv_like_text_is_a_dataset_or_invalid(sales: str, weather: str | None) -> None:
    texts: dict[str, str | bytes] = {SALES_FILE: sales}
    if weather is not None:
        texts["weather.csv"] = weather
    _check_refusal(texts)


# ------------------------------------------------------------------------ round trip
def _names(rule_max: int) -> st.SearchStrategy[str]:
    characters = st.characters(categories=sorted(ALLOWED_CATEGORIES), include_characters=" ")
    return st.text(characters, min_size=1, max_size=min(rule_max, 30)).filter(
        lambda name: PRODUCT_NAME.problem(name) is None and COLUMN_NAME.problem(name) is None)


DAYS = st.dates(min_value=LIMITS.earliest, max_value=LIMITS.latest)
QUANTITIES = st.floats(min_value=0, max_value=LIMITS.max_value, allow_nan=False)
VALUES = st.one_of(st.none(), st.floats(min_value=-LIMITS.max_value,
                                        max_value=LIMITS.max_value, allow_nan=False))


def _csv(header: list[str], rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


@FUZZ
@given(st.dictionaries(st.tuples(DAYS, _names(200)), QUANTITIES, min_size=1, max_size=30))
def test_valid_sales_rows_round_trip(rows: dict[tuple[date, str], float]) -> None:
    text = _csv(list(SALES_COLUMNS), [[day.isoformat(), product, repr(quantity)]
                                      for (day, product), quantity in rows.items()])
    parsed = parse_dataset({SALES_FILE: text}, limits=LIMITS)
    assert list(parsed.sales) == [SalesRow(day, product, quantity)
                                  for (day, product), quantity in rows.items()]
    assert parsed.products == sorted({product for _, product in rows})


@FUZZ
@given(st.lists(_names(100), min_size=1, max_size=4, unique=True).filter(
    lambda names: "date" not in names).flatmap(lambda names: st.tuples(
        st.just(names), st.dictionaries(DAYS, st.lists(VALUES, min_size=len(names),
                                                     max_size=len(names)), min_size=1))),
       st.sampled_from(sorted(REGRESSOR_FILES)))
def test_valid_regressor_values_round_trip(
        columns: tuple[list[str], dict[date, list[float | None]]], file: str) -> None:
    names, by_day = columns
    text = _csv(["date", *names], [[day.isoformat(), *("" if v is None else repr(v)
                                                         for v in values)]
                                   for day, values in by_day.items()])
    parsed = parse_dataset({SALES_FILE: "date,product,quantity\n2024-01-01,bread,1\n",
                            file: text}, limits=LIMITS)
    assert [c.name for c in parsed.regressors] == names
    for i, column in enumerate(parsed.regressors):
        assert column.source == REGRESSOR_FILES[file]
        assert column.values == {day: values[i] for day, values in by_day.items()}
