"""Memory and time of reading (and optionally importing) a generated sales file.

    python bench/import_memory.py [--products 500] [--days 2000] [--import]
                                  [--database-url URL]

Prints the file's size, the reader's peak traced memory (tracemalloc: Python objects,
not the process RSS) and per-row bytes, and with --import the time of a first import, of
the same import again and of one that changes every row (merge mode, with the import
history), into a fresh SQLite database or, with --database-url, into that database (an
empty one at the head revision: `ovencast db upgrade`; its tenant `bench` must not exist
yet, so that the first import adds every row). The bound it shows is documented in README
"Importing data" (IMPORT_MAX_ROWS x about 20 bytes).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import tracemalloc
from datetime import date, timedelta
from pathlib import Path

from ovencast.datasets import service as datasets_service
from ovencast.datasets.reader import ParsedDataset, read_dataset_dir
from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.settings import Settings
from ovencast.tenants import service as tenants_service


def write_sales(directory: Path, products: int, days: int, *, shift: int = 0) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    start = date(2015, 1, 1)
    with (directory / "sales.csv").open("w", encoding="utf-8") as out:
        out.write("date,product,quantity\n")
        for product in range(products):
            for day in range(days):
                out.write(f"{start + timedelta(days=day)},product_{product:05d},"
                          f"{(day * 7 + product + shift) % 53}\n")
    return directory


def measure_read(directory: Path) -> ParsedDataset:
    tracemalloc.start()
    started = time.perf_counter()
    dataset = read_dataset_dir(directory)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    rows = len(dataset.sales)
    size = (directory / "sales.csv").stat().st_size
    print(f"file: {size / 1e6:.1f} MB, {rows} rows")
    print(f"read: {seconds:.1f} s, peak traced memory {peak / 1e6:.1f} MB "
          f"({peak / rows:.0f} bytes a row)")
    return dataset


async def measure_imports(home: Path, first: ParsedDataset, changed: ParsedDataset, *,
                          database_url: str | None) -> None:
    database = Database.open(Settings(ovencast_home=home, database_url=database_url))
    await database.ready()
    try:
        for label, dataset in (("first import", first), ("same again", first),
                               ("every row changed", changed)):
            started = time.perf_counter()
            async with unit_of_work(database.sessions) as session:
                tenant = await tenants_service.ensure_tenant(session, "bench")
                summary = await datasets_service.import_dataset(session, tenant, dataset,
                                                                source="bench")
            print(f"{label}: {time.perf_counter() - started:.1f} s "
                  f"(+{summary.sales.added} ~{summary.sales.changed} -{summary.sales.removed})")
    finally:
        await database.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=500)
    parser.add_argument("--days", type=int, default=2000)
    parser.add_argument("--import", dest="do_import", action="store_true",
                        help="also time imports into a fresh SQLite database")
    parser.add_argument("--database-url", default=None,
                        help="import into this database instead (e.g. postgresql+asyncpg://"
                             "user@host/db, migrated to head, without a tenant `bench`)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        dataset = measure_read(write_sales(root / "a", args.products, args.days))
        if args.do_import:
            changed = read_dataset_dir(write_sales(root / "b", args.products, args.days,
                                                   shift=1))
            asyncio.run(measure_imports(root / "home", dataset, changed,
                                        database_url=args.database_url))


if __name__ == "__main__":
    main()
