"""Parse a dataset directory into validated rows, reporting every bad cell by file, line
and column.

The stdlib `csv` module is used instead of `pandas.read_csv` on purpose: pandas skips blank
lines and coerces types, which loses the exact line number a baker needs to fix a file.

What a cell must be (validation at the door): a date `YYYY-MM-DD` inside the accepted range
(`DataLimits`: DATA_EARLIEST_DATE to today + DATA_MAX_YEARS_AHEAD years); a quantity a
decimal number, finite, >= 0 and at most DATA_MAX_VALUE; a regressor value likewise but
of either sign (empty: unknown); a product or column name as `ovencast.names` defines it.
Line numbers are physical lines as an editor shows them (blank lines count; a record
with a quoted line break is reported at its first line).

Memory is bounded by settings, not by the file: each file is read line by line
(`csv.reader` over a stream, never the whole text split into a list), sales are kept as
compact columns (`SalesTable`, about 20 bytes a row instead of ~250 for row objects),
and a file of more than IMPORT_MAX_ROWS data rows is refused (`PayloadTooLarge`) as soon
as that row is reached. A line is at most MAX_LINE_CHARS characters, a quoted field at most
csv's field limit; at most MAX_KEPT_PROBLEMS problems are kept (the rest are counted);
a regressor file has at most MAX_REGRESSOR_COLUMNS columns of at most one value per day of
the accepted range. So the reader holds at most about IMPORT_MAX_ROWS x 20 bytes of sales
(100 MB at the default 5,000,000; arrays grow by up to an eighth), plus the product names,
plus a transient 16 bytes a row while duplicates are looked for (up to 32 when there are
some): about 40 bytes a row at the peak (bench/import_memory.py measures it).
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import re
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, TextIO, overload

import numpy as np

from ovencast.errors import InvalidDataset, Misconfigured, PayloadTooLarge
from ovencast.names import COLUMN_NAME, PRODUCT_NAME
from ovencast.settings import Settings, get_settings

SALES_FILE = "sales.csv"
REGRESSOR_FILES = {"weather.csv": "weather", "traffic.csv": "traffic", "calendar.csv": "calendar"}
SALES_COLUMNS = ("date", "product", "quantity")
# Matches the product column of sales_observations.
MAX_PRODUCT_LENGTH = PRODUCT_NAME.max_length
# Shown in one message at most; the count of the rest is given.
MAX_REPORTED_PROBLEMS = 20
# Kept (and returned in an API response) at most; the rest are only counted.
MAX_KEPT_PROBLEMS = 1_000
# Characters of one physical line; a longer line is reported, not read.
MAX_LINE_CHARS = 65_536
# Value columns of one regressor file.
MAX_REGRESSOR_COLUMNS = 200

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# A decimal number in ASCII digits: no '1_000', 'inf', 'nan', '0x10' or other scripts.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Bytes that are not UTF-8 arrive as lone surrogates (errors="surrogateescape").
_NOT_UTF8 = re.compile("[\ud800-\udfff]")
_BLANK = " \t"  # padding around a cell that is dropped


@dataclass(frozen=True)
class Problem:
    """One bad cell (`column` names it) or one bad line (`column` is None: the header,
    the number of fields, the encoding, the line's length)."""

    file: str
    line: int
    column: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file} line {self.line}"
        if self.column:
            where += f", column '{self.column}'"
        return f"{where}: {self.message}"


class DatasetProblems(InvalidDataset):
    """Raised with every problem found (the first MAX_KEPT_PROBLEMS of them; `total`
    counts all); nothing of the dataset is stored."""

    def __init__(self, problems: list[Problem], *, total: int | None = None) -> None:
        self.problems = problems
        self.total = max(total or 0, len(problems))
        shown = [str(p) for p in problems[:MAX_REPORTED_PROBLEMS]]
        more = self.total - len(shown)
        text = "; ".join(shown) + (f"; and {more} more problems" if more else "")
        super().__init__(f"dataset rejected: {text}")


@dataclass(frozen=True)
class DataLimits:
    """What an import accepts (settings DATA_* and IMPORT_MAX_ROWS)."""

    earliest: date
    latest: date
    max_value: float = 1e9
    max_rows: int = 5_000_000

    def __post_init__(self) -> None:
        if self.earliest > self.latest:
            raise Misconfigured(f"DATA_EARLIEST_DATE {self.earliest} is after the latest "
                                f"accepted date {self.latest}")

    @classmethod
    def from_settings(cls, settings: Settings, *, today: date | None = None) -> DataLimits:
        today = today or date.today()
        return cls(earliest=settings.data_earliest_date,
                   latest=_years_after(today, settings.data_max_years_ahead),
                   max_value=settings.data_max_value, max_rows=settings.import_max_rows)

    def date_problem(self, day: date) -> str | None:
        if self.earliest <= day <= self.latest:
            return None
        return (f"{day} is outside the accepted dates {self.earliest} to {self.latest} "
                f"(DATA_EARLIEST_DATE, DATA_MAX_YEARS_AHEAD)")


def _years_after(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February -> 28 February
        return day.replace(year=day.year + years, day=28)


@dataclass(frozen=True)
class SalesRow:
    date: date
    product: str
    quantity: float


@dataclass(frozen=True)
class RegressorColumn:
    source: str  # weather | traffic | calendar
    name: str
    values: dict[date, float | None]


class SalesTable(Sequence[SalesRow]):
    """Sales rows as compact columns (day ordinal, product index, quantity, source line:
    20 bytes a row) that read as a sequence of `SalesRow`."""

    def __init__(self) -> None:
        self._days = array("i")
        self._products = array("i")
        self._quantities = array("d")
        self._lines = array("i")
        self._names: list[str] = []
        self._index: dict[str, int] = {}

    @classmethod
    def of(cls, rows: Iterable[SalesRow]) -> SalesTable:
        table = cls()
        for row in rows:
            table.append(row.date, row.product, row.quantity)
        return table

    def append(self, day: date, product: str, quantity: float, line: int = 0) -> None:
        index = self._index.get(product)
        if index is None:
            index = self._index[product] = len(self._names)
            self._names.append(product)
        self._days.append(day.toordinal())
        self._products.append(index)
        self._quantities.append(quantity)
        self._lines.append(line)

    def __len__(self) -> int:
        return len(self._days)

    @overload
    def __getitem__(self, index: int) -> SalesRow: ...

    @overload
    def __getitem__(self, index: slice) -> list[SalesRow]: ...

    def __getitem__(self, index: int | slice) -> SalesRow | list[SalesRow]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return SalesRow(date.fromordinal(self._days[index]),
                        self._names[self._products[index]], self._quantities[index])

    def __iter__(self) -> Iterator[SalesRow]:
        names = self._names
        for day, product, quantity in zip(self._days, self._products, self._quantities,
                                          strict=True):
            yield SalesRow(date.fromordinal(day), names[product], quantity)

    @property
    def products(self) -> list[str]:
        """The distinct products, in the order they first appear."""
        return list(self._names)

    @property
    def first_date(self) -> date:
        return date.fromordinal(min(self._days))

    @property
    def last_date(self) -> date:
        return date.fromordinal(max(self._days))

    def _keys(self) -> np.ndarray:
        """(product rank by name, day) as one int64 per row: day ordinals < 2^22. Built
        in place: 8 bytes a row."""
        rank = np.empty(len(self._names), dtype=np.int64)
        rank[sorted(range(len(self._names)), key=self._names.__getitem__)] = np.arange(
            len(self._names), dtype=np.int64)
        if not self:
            return np.empty(0, dtype=np.int64)
        keys: np.ndarray = rank[np.frombuffer(self._products, dtype=np.int32)]
        keys <<= 22
        keys |= np.frombuffer(self._days, dtype=np.int32)
        return keys

    def key_order(self) -> np.ndarray:
        """Row indices ordered by (product name, date); equal keys keep file order."""
        order: np.ndarray = np.argsort(self._keys(), kind="stable")
        return order

    def rows_in_key_order(self) -> Iterator[SalesRow]:
        for i in self.key_order():
            yield self[int(i)]

    def duplicates(self) -> Iterator[tuple[int, int, SalesRow]]:
        """(line, line of its first occurrence, row) of every row whose (date, product)
        came before. Memory: the keys and a sorted copy (16 bytes a row), then only the
        repeated keys' rows."""
        keys = self._keys()
        ordered = np.sort(keys)
        repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
        del ordered
        if not len(repeated):
            return
        where = np.minimum(np.searchsorted(repeated, keys), len(repeated) - 1)
        rows = np.flatnonzero(repeated[where] == keys)  # in file order
        first: dict[int, int] = {}
        for row in rows.tolist():
            key = int(keys[row])
            if key in first:
                yield self._lines[row], self._lines[first[key]], self[row]
            else:
                first[key] = row


@dataclass
class ParsedDataset:
    sales: Sequence[SalesRow]
    regressors: list[RegressorColumn]
    files: dict[str, dict[str, object]] = field(default_factory=dict)

    @property
    def first_date(self) -> date:
        if isinstance(self.sales, SalesTable):
            return self.sales.first_date
        return min(r.date for r in self.sales)

    @property
    def last_date(self) -> date:
        if isinstance(self.sales, SalesTable):
            return self.sales.last_date
        return max(r.date for r in self.sales)

    @property
    def products(self) -> list[str]:
        if isinstance(self.sales, SalesTable):
            return sorted(self.sales.products)
        return sorted({r.product for r in self.sales})


# ----------------------------------------------------------------------------- entry
def read_dataset_dir(directory: Path, *, limits: DataLimits | None = None) -> ParsedDataset:
    """Read `directory` in the layout of shared/data: `sales.csv` required, `weather.csv`,
    `traffic.csv`, `calendar.csv` optional. Raises `DatasetProblems` listing every bad cell,
    or `InvalidDataset` when the directory or sales file is missing. Files are streamed."""
    if not directory.is_dir():
        raise InvalidDataset(f"{directory} is not a directory")
    if not (directory / SALES_FILE).is_file():
        raise InvalidDataset(f"{directory} has no {SALES_FILE} (required)")
    with contextlib.ExitStack() as stack:
        files = {name: stack.enter_context((directory / name).open("rb"))
                 for name in (SALES_FILE, *REGRESSOR_FILES) if (directory / name).is_file()}
        return parse_dataset_files(files, limits=limits)


def parse_dataset(texts: Mapping[str, str | bytes], *, limits: DataLimits | None = None
                  ) -> ParsedDataset:
    """Parse file contents keyed by file name (so an HTTP upload and a directory share one
    path): text, or bytes that must be UTF-8. Collects all problems before raising."""
    streams = {name: _text_stream(content) for name, content in texts.items()}
    return _parse(streams, limits or DataLimits.from_settings(get_settings()))


def parse_dataset_files(files: Mapping[str, IO[bytes]], *, limits: DataLimits | None = None
                        ) -> ParsedDataset:
    """Parse binary file objects keyed by file name (a directory's files, an upload's
    spooled files), each read as a UTF-8 stream: memory does not grow with the files
    beyond the rows kept. The caller's files stay open."""
    streams = {name: io.TextIOWrapper(file, encoding="utf-8-sig", errors="surrogateescape",
                                      newline="") for name, file in files.items()}
    try:
        return _parse(streams, limits or DataLimits.from_settings(get_settings()))
    finally:
        for stream in streams.values():
            stream.detach()


def _text_stream(content: str | bytes) -> TextIO:
    if isinstance(content, bytes):
        return io.TextIOWrapper(io.BytesIO(content), encoding="utf-8-sig",
                                errors="surrogateescape", newline="")
    return io.StringIO(content, newline="")


def _parse(streams: Mapping[str, TextIO], limits: DataLimits) -> ParsedDataset:
    if SALES_FILE not in streams:
        raise InvalidDataset(f"{SALES_FILE} is required")
    unknown = sorted(set(streams) - {SALES_FILE, *REGRESSOR_FILES})
    if unknown:
        raise InvalidDataset(f"unknown dataset files {unknown}; expected {SALES_FILE} and "
                             f"optionally {', '.join(REGRESSOR_FILES)}")
    problems = _Problems()
    sales = _parse_sales(_CsvFile(SALES_FILE, streams[SALES_FILE], problems, limits),
                         limits, problems)
    regressors: list[RegressorColumn] = []
    files: dict[str, dict[str, object]] = {SALES_FILE: {"rows": len(sales)}}
    seen_names: dict[str, str] = {}
    for name, source in REGRESSOR_FILES.items():
        if name not in streams:
            continue
        columns, rows = _parse_regressors(_CsvFile(name, streams[name], problems, limits),
                                          source, limits, problems)
        for column in columns:
            if column.name in seen_names:
                problems.add(name, 1, column.name,
                             f"column also present in {seen_names[column.name]}")
            seen_names[column.name] = name
        regressors.extend(columns)
        files[name] = {"rows": rows, "columns": [c.name for c in columns]}
    if problems.total:
        order = {name: i for i, name in enumerate((SALES_FILE, *REGRESSOR_FILES))}
        raise DatasetProblems(sorted(problems.kept, key=lambda p: (order[p.file], p.line)),
                              total=problems.total)
    if not sales:
        raise InvalidDataset(f"{SALES_FILE} has no data rows")
    return ParsedDataset(sales=sales, regressors=regressors, files=files)


# ------------------------------------------------------------------------ the stream
class _Problems:
    """Every problem counted, the first MAX_KEPT_PROBLEMS kept."""

    def __init__(self) -> None:
        self.kept: list[Problem] = []
        self.total = 0

    def add(self, file: str, line: int, column: str | None, message: str) -> None:
        self.total += 1
        if len(self.kept) < MAX_KEPT_PROBLEMS:
            self.kept.append(Problem(file, line, column, message))


class _Lines(Iterator[str]):
    """A file's physical lines (endings kept) for `csv.reader`. A line longer than
    MAX_LINE_CHARS or with bytes that are not UTF-8 is reported and handed on as a blank
    line, so that csv's line count stays the physical one."""

    def __init__(self, file: str, stream: TextIO, problems: _Problems) -> None:
        self.file, self.stream, self.problems = file, stream, problems
        self.number = 0

    def __next__(self) -> str:
        line = self.stream.readline(MAX_LINE_CHARS + 1)
        if not line:
            raise StopIteration
        self.number += 1
        if self.number == 1:
            line = line.removeprefix("\ufeff")
        if len(line) > MAX_LINE_CHARS and not line.endswith(("\n", "\r")):
            while (rest := self.stream.readline(MAX_LINE_CHARS)) and not rest.endswith(
                    ("\n", "\r")):
                pass
            self.problems.add(self.file, self.number, None,
                              f"is longer than {MAX_LINE_CHARS} characters")
            return "\n"
        if _NOT_UTF8.search(line):
            self.problems.add(self.file, self.number, None, "is not UTF-8 text")
            return "\n"
        return line


class _CsvFile:
    """One CSV file: its header, then its data records as (line, fields)."""

    def __init__(self, name: str, stream: TextIO, problems: _Problems, limits: DataLimits
                 ) -> None:
        self.name, self.problems, self.max_rows = name, problems, limits.max_rows
        self.lines = _Lines(name, stream, problems)
        self.reader = csv.reader(self.lines)
        self.header: list[str] = []

    def read_header(self, required: Sequence[str]) -> list[str] | None:
        """The header's names (padding dropped), or None when the file cannot be read."""
        try:
            header = [h.strip(_BLANK) for h in next(self.reader)]
        except StopIteration:
            self.problems.add(self.name, 1, None, "file is empty (a header line is required)")
            return None
        except csv.Error as exc:
            self.problems.add(self.name, 1, None, f"the header is not valid CSV: {exc}")
            return None
        missing = [c for c in required if c not in header]
        if missing:
            self.problems.add(self.name, 1, None, f"missing required column(s) {missing}; "
                                                  f"header is {_short(repr(header))}"
                                                  f"{_header_hint(header, missing)}")
            return None
        twice = sorted({h for h in header if header.count(h) > 1})
        if twice:
            self.problems.add(self.name, 1, None, f"column(s) {_short(repr(twice))} appear "
                                                  f"more than once in the header")
            return None
        self.header = header
        return header

    def records(self) -> Iterator[tuple[int, list[str]]]:
        rows = 0
        while True:
            line = self.reader.line_num + 1
            try:
                row = next(self.reader)
            except StopIteration:
                return
            except csv.Error as exc:  # the parser's quoting state is lost: stop here
                self.problems.add(self.name, line, None, f"is not valid CSV: {exc}; the "
                                                         f"rest of the file is not read")
                return
            if not row or all(not cell.strip() for cell in row):
                continue  # blank line
            rows += 1
            if rows > self.max_rows:
                raise PayloadTooLarge(
                    f"{self.name} has more than {self.max_rows} data rows (IMPORT_MAX_ROWS); "
                    f"import it in parts (an import merges its rows into what is stored)")
            if len(row) != len(self.header):
                self.problems.add(self.name, line, None, f"has {len(row)} fields, the "
                                                         f"header has {len(self.header)}")
                continue
            yield line, row


def _header_hint(header: Sequence[str], missing: Sequence[str]) -> str:
    """What a header that lacks required columns most likely got wrong: another
    separator (a spreadsheet's `;` export) or the names' case."""
    for separator in (";", "\t", "|"):
        if len(header) == 1 and separator in header[0]:
            shown = "tab" if separator == "\t" else repr(separator)
            return (f" (the header looks separated by {shown}: files must be "
                    "comma-separated, with '.' as the decimal point)")
    by_lower = {h.lower(): h for h in header}
    renames = [f"{by_lower[c]!r} -> {c!r}" for c in missing if c in by_lower]
    if renames:
        return f" (names are case-sensitive: rename {', '.join(renames)})"
    return ""


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


# ----------------------------------------------------------------------------- cells
class _Cells:
    """Cell parsers of one file, reporting to `problems`; valid dates and names are
    remembered (few distinct ones, many rows)."""

    def __init__(self, file: str, limits: DataLimits, problems: _Problems) -> None:
        self.file, self.limits, self.problems = file, limits, problems
        self._dates: dict[str, date] = {}
        self._names: dict[str, str | None] = {}

    def date(self, line: int, raw: str) -> date | None:
        found = self._dates.get(raw)
        if found is not None:
            return found
        text = raw.strip(_BLANK)
        try:
            if not _DATE.fullmatch(text):
                raise ValueError(text)
            day = date.fromisoformat(text)
        except ValueError:
            self.problems.add(self.file, line, "date",
                              f"{_short(repr(raw))} is not an ISO date (YYYY-MM-DD)")
            return None
        problem = self.limits.date_problem(day)
        if problem:
            self.problems.add(self.file, line, "date", problem)
            return None
        self._dates[raw] = day
        return day

    def product(self, line: int, raw: str) -> str | None:
        name = raw.strip(_BLANK)
        if name not in self._names:  # at most one entry per data row
            self._names[name] = PRODUCT_NAME.problem(name)
        problem = self._names[name]
        if problem is not None:
            self.problems.add(self.file, line, "product", problem)
            return None
        return name

    def number(self, line: int, column: str, raw: str, *, minimum: float | None
               ) -> tuple[bool, float | None]:
        """(ok, value): value None for an empty cell."""
        text = raw.strip(_BLANK)
        if text == "":
            return True, None
        value = float(text) if _NUMBER.fullmatch(text) else math.nan
        if math.isnan(value):
            self.problems.add(self.file, line, column, f"{_short(repr(raw))} is not a number")
            return False, None
        if minimum is not None and value < minimum:
            self.problems.add(self.file, line, column, f"{text} is negative (must be >= 0)")
            return False, None
        if not abs(value) <= self.limits.max_value:  # also catches inf ('1e999')
            self.problems.add(self.file, line, column, f"{_short(text)} is larger than "
                              f"{self.limits.max_value:g} in absolute value (DATA_MAX_VALUE)")
            return False, None
        return True, value


def _parse_sales(file: _CsvFile, limits: DataLimits, problems: _Problems) -> SalesTable:
    table = SalesTable()
    header = file.read_header(SALES_COLUMNS)
    if header is None:
        return table
    i_date, i_product, i_qty = (header.index(c) for c in SALES_COLUMNS)
    cells = _Cells(SALES_FILE, limits, problems)
    for line, row in file.records():
        day = cells.date(line, row[i_date])
        product = cells.product(line, row[i_product])
        ok, quantity = cells.number(line, "quantity", row[i_qty], minimum=0.0)
        if ok and quantity is None:
            problems.add(SALES_FILE, line, "quantity", "is empty")
        if day is not None and product is not None and quantity is not None:
            table.append(day, product, quantity, line)
    for line, first, again in table.duplicates():
        problems.add(SALES_FILE, line, "date", f"duplicate ({again.date}, {again.product}); "
                                               f"first seen on line {first}")
    return table


def _regressor_header(file: _CsvFile, problems: _Problems) -> list[tuple[int, str]] | None:
    """The value columns (index, name) of a regressor file, or None if the header is bad."""
    header = file.read_header(("date",))
    if header is None:
        return None
    columns = [(i, c) for i, c in enumerate(header) if c != "date"]
    if len(columns) > MAX_REGRESSOR_COLUMNS:
        problems.add(file.name, 1, None, f"has {len(columns)} value columns (at most "
                                         f"{MAX_REGRESSOR_COLUMNS})")
        return None
    bad = [(i, c, COLUMN_NAME.problem(c)) for i, c in columns if COLUMN_NAME.problem(c)]
    for i, column, problem in bad:
        problems.add(file.name, 1, None, f"header column {i + 1} {_short(repr(column))} "
                                         f"{problem}")
    return None if bad else columns


def _parse_regressors(file: _CsvFile, source: str, limits: DataLimits, problems: _Problems
                      ) -> tuple[list[RegressorColumn], int]:
    value_columns = _regressor_header(file, problems)
    if value_columns is None:
        return [], 0
    i_date = file.header.index("date")
    cells = _Cells(file.name, limits, problems)
    values: dict[str, dict[date, float | None]] = {c: {} for _, c in value_columns}
    first_line: dict[date, int] = {}
    rows = 0
    for line, row in file.records():
        rows += 1
        day = cells.date(line, row[i_date])
        if day is not None:
            if day in first_line:
                problems.add(file.name, line, "date", f"duplicate date {day}; first seen on "
                                                      f"line {first_line[day]}")
                continue
            first_line[day] = line
        for i, column in value_columns:
            ok, value = cells.number(line, column, row[i], minimum=None)
            if ok and day is not None:
                values[column][day] = value
    return [RegressorColumn(source, c, values[c]) for _, c in value_columns], rows
