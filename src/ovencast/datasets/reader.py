"""Parse a dataset directory into validated rows, reporting every bad cell by file, line
and column.

The stdlib `csv` module is used instead of `pandas.read_csv` on purpose: pandas skips blank
lines and coerces types, which loses the exact line number a baker needs to fix a file.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from ovencast.errors import InvalidDataset

SALES_FILE = "sales.csv"
REGRESSOR_FILES = {"weather.csv": "weather", "traffic.csv": "traffic", "calendar.csv": "calendar"}
SALES_COLUMNS = ("date", "product", "quantity")
# Matches the product column of sales_observations.
MAX_PRODUCT_LENGTH = 200
# Shown in one message at most; the count of the rest is given.
MAX_REPORTED_PROBLEMS = 20


@dataclass(frozen=True)
class Problem:
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
    """Raised with every problem found; nothing of the dataset is stored."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        shown = [str(p) for p in problems[:MAX_REPORTED_PROBLEMS]]
        more = len(problems) - len(shown)
        text = "; ".join(shown) + (f"; and {more} more problems" if more else "")
        super().__init__(f"dataset rejected: {text}")


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


@dataclass
class ParsedDataset:
    sales: list[SalesRow]
    regressors: list[RegressorColumn]
    files: dict[str, dict[str, object]] = field(default_factory=dict)

    @property
    def first_date(self) -> date:
        return min(r.date for r in self.sales)

    @property
    def last_date(self) -> date:
        return max(r.date for r in self.sales)


def read_dataset_dir(directory: Path) -> ParsedDataset:
    """Read `directory` in the layout of shared/data: `sales.csv` required, `weather.csv`,
    `traffic.csv`, `calendar.csv` optional. Raises `DatasetProblems` listing every bad cell,
    or `InvalidDataset` when the directory or sales file is missing."""
    if not directory.is_dir():
        raise InvalidDataset(f"{directory} is not a directory")
    sales_path = directory / SALES_FILE
    if not sales_path.is_file():
        raise InvalidDataset(f"{directory} has no {SALES_FILE} (required)")
    texts = {SALES_FILE: sales_path.read_text(encoding="utf-8-sig")}
    for name in REGRESSOR_FILES:
        path = directory / name
        if path.is_file():
            texts[name] = path.read_text(encoding="utf-8-sig")
    return parse_dataset(texts)


def parse_dataset(texts: dict[str, str]) -> ParsedDataset:
    """Parse file contents keyed by file name (so an HTTP upload and a directory share one
    path). Collects all problems before raising."""
    problems: list[Problem] = []
    if SALES_FILE not in texts:
        raise InvalidDataset(f"{SALES_FILE} is required")
    unknown = sorted(set(texts) - {SALES_FILE, *REGRESSOR_FILES})
    if unknown:
        raise InvalidDataset(f"unknown dataset files {unknown}; expected {SALES_FILE} and "
                             f"optionally {', '.join(REGRESSOR_FILES)}")
    sales = _parse_sales(texts[SALES_FILE], problems)
    regressors: list[RegressorColumn] = []
    files: dict[str, dict[str, object]] = {SALES_FILE: {"rows": len(sales)}}
    seen_names: dict[str, str] = {}
    for name, source in REGRESSOR_FILES.items():
        if name not in texts:
            continue
        columns, rows = _parse_regressors(name, source, texts[name], problems)
        for column in columns:
            if column.name in seen_names:
                problems.append(Problem(name, 1, column.name,
                                        f"column also present in {seen_names[column.name]}"))
            seen_names[column.name] = name
        regressors.extend(columns)
        files[name] = {"rows": rows, "columns": [c.name for c in columns]}
    if problems:
        raise DatasetProblems(problems)
    if not sales:
        raise InvalidDataset(f"{SALES_FILE} has no data rows")
    return ParsedDataset(sales=sales, regressors=regressors, files=files)


def _rows(name: str, text: str, required: tuple[str, ...], problems: list[Problem]
          ) -> tuple[list[str], list[tuple[int, list[str]]]] | None:
    reader = csv.reader(text.splitlines())
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        problems.append(Problem(name, 1, None, "file is empty (a header line is required)"))
        return None
    missing = [c for c in required if c not in header]
    if missing:
        problems.append(Problem(name, 1, None, f"missing required column(s) {missing}; "
                                               f"header is {header}"))
        return None
    rows: list[tuple[int, list[str]]] = []
    for line_no, row in enumerate(reader, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue  # blank line
        if len(row) != len(header):
            problems.append(Problem(name, line_no, None,
                                    f"has {len(row)} fields, the header has {len(header)}"))
            continue
        rows.append((line_no, row))
    return header, rows


def _parse_date(name: str, line: int, raw: str, problems: list[Problem]) -> date | None:
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        problems.append(Problem(name, line, "date", f"{raw!r} is not an ISO date (YYYY-MM-DD)"))
        return None


def _parse_number(raw: str) -> float | None:
    """None for an empty cell; raises ValueError for anything not a finite number."""
    text = raw.strip()
    if text == "":
        return None
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _parse_sales(text: str, problems: list[Problem]) -> list[SalesRow]:
    parsed = _rows(SALES_FILE, text, SALES_COLUMNS, problems)
    if parsed is None:
        return []
    header, rows = parsed
    i_date, i_product, i_qty = (header.index(c) for c in SALES_COLUMNS)
    out: list[SalesRow] = []
    first_line: dict[tuple[date, str], int] = {}
    for line, row in rows:
        day = _parse_date(SALES_FILE, line, row[i_date], problems)
        product = row[i_product].strip()
        if not product:
            problems.append(Problem(SALES_FILE, line, "product", "is empty"))
        elif len(product) > MAX_PRODUCT_LENGTH:
            problems.append(Problem(SALES_FILE, line, "product",
                                    f"is {len(product)} characters long (at most "
                                    f"{MAX_PRODUCT_LENGTH})"))
            product = ""
        raw_qty = row[i_qty]
        quantity: float | None
        try:
            quantity = _parse_number(raw_qty)
        except ValueError:
            problems.append(Problem(SALES_FILE, line, "quantity",
                                    f"{raw_qty!r} is not a number"))
            continue
        if quantity is None:
            problems.append(Problem(SALES_FILE, line, "quantity", "is empty"))
            continue
        if quantity < 0:
            problems.append(Problem(SALES_FILE, line, "quantity",
                                    f"{raw_qty.strip()} is negative (must be >= 0)"))
            continue
        if day is None or not product:
            continue
        key = (day, product)
        if key in first_line:
            problems.append(Problem(SALES_FILE, line, "date",
                                    f"duplicate ({day}, {product}); first seen on line "
                                    f"{first_line[key]}"))
            continue
        first_line[key] = line
        out.append(SalesRow(day, product, quantity))
    return out


def _parse_regressors(name: str, source: str, text: str, problems: list[Problem]
                      ) -> tuple[list[RegressorColumn], int]:
    parsed = _rows(name, text, ("date",), problems)
    if parsed is None:
        return [], 0
    header, rows = parsed
    i_date = header.index("date")
    value_columns = [(i, c) for i, c in enumerate(header) if i != i_date]
    values: dict[str, dict[date, float | None]] = {c: {} for _, c in value_columns}
    first_line: dict[date, int] = {}
    for line, row in rows:
        day = _parse_date(name, line, row[i_date], problems)
        if day is not None:
            if day in first_line:
                problems.append(Problem(name, line, "date", f"duplicate date {day}; first "
                                                            f"seen on line {first_line[day]}"))
                continue
            first_line[day] = line
        for i, column in value_columns:
            try:
                value = _parse_number(row[i])
            except ValueError:
                problems.append(Problem(name, line, column, f"{row[i]!r} is not a number"))
                continue
            if day is not None:
                values[column][day] = value
    columns = [RegressorColumn(source, c, values[c]) for _, c in value_columns]
    return columns, len(rows)
