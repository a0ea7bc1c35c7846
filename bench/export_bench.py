"""Export jobs against PostgreSQL's bare COPY … TO of the same rows, run by a real worker.

    make bench-export            (or: .venv/bin/python bench/export_bench.py)
    make bench-tiny              (every benchmark at a tiny size, as CI runs them)

Needs the local PostgreSQL and Redis; uses the benchmarks' own database and Redis database
(bench/common.py). The pools are built in SQL once and kept (bench/big_pool.py): one of
BENCH_POOL_CODES (default 20,000,000; tiny 20,000) codes, whose available half is exported,
and one of 2 × BENCH_XLSX_ROWS (default 1,000,000; tiny 1,000) for XLSX against CSV.

Figures, each the median of BENCH_REPEAT runs (at least 3):
- export_csv_10m/copy_to: the export job end to end (queued, taken by a worker, the file
  written and the job marked completed) against a bare `COPY (SELECT … WHERE pool, status) TO
  STDOUT (FORMAT csv)` of the same rows' columns into a file, unformatted and unordered;
- export_xlsx_1m/export_csv_1m: the XLSX job against the CSV job on the same codes (reported).
"""

import argparse
import os
import sys
import time

import common

_parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
_parser.add_argument("part", nargs="?", choices=("csv", "xlsx"))
_parser.add_argument("--tiny", action="store_true", help="a few thousand rows, as CI runs it")
PART = _parser.parse_args().part

POOL_CODES = common.size("BENCH_POOL_CODES", 20_000_000, 20_000)
XLSX_ROWS = common.size("BENCH_XLSX_ROWS", 1_000_000, 1_000)

common.setup()

from big_pool import big_pool  # noqa: E402
from django.db import connection  # noqa: E402

from pools.export_services import code_export_start  # noqa: E402
from pools.models import Code, CodeExport  # noqa: E402
from tests.worker import Worker, point_app_at  # noqa: E402

CACHE = common.CACHE


def copy_to_seconds(filters: dict) -> float:
    """Time a bare COPY of the rows' columns to a file."""
    columns = ", ".join(
        f.column for f in Code._meta.concrete_fields if f.name in Code.LISTED_FIELDS
    )
    started = time.perf_counter()
    sql = (
        f"COPY (SELECT {columns} FROM {Code._meta.db_table} WHERE pool_id = %s"
        " AND status = %s) TO STDOUT (FORMAT csv)"
    )
    with (
        connection.cursor() as cursor,
        open(CACHE / "copy-to.csv", "wb") as file,
        cursor.cursor.copy(sql, [filters["pool"], filters["status"]]) as copy,
    ):
        for data in copy:
            file.write(data)
    return time.perf_counter() - started


def job_seconds(filters: dict, file_format: str, expected: int) -> float:
    """Time an export job from its start to the worker's completed row."""
    started = time.perf_counter()
    export = code_export_start(filters=filters, file_format=file_format)
    while True:
        export.refresh_from_db()
        if export.is_finished:
            break
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    assert export.status == CodeExport.Status.COMPLETED, export.message
    assert export.rows_done == expected, (export.rows_done, expected)
    export.file.delete(save=False)
    return seconds


def main() -> int:
    point_app_at(common.REDIS_URL)
    big = big_pool(POOL_CODES, slug=f"bench-{common.label(POOL_CODES)}")
    small = big_pool(2 * XLSX_ROWS, slug=f"bench-{common.label(2 * XLSX_ROWS)}")
    rows = POOL_CODES // 2
    print(
        f"Export of {rows:,} codes of a pool of {POOL_CODES:,}; XLSX and CSV of {XLSX_ROWS:,}; "
        f"{common.REPEAT} repetitions",
        flush=True,
    )
    env = {**os.environ, "DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": "bench"}
    worker = Worker(env, CACHE / "worker-export.log").start()
    try:
        to_copy, xlsx_to_csv = [], []
        filters = {"pool": big.pk, "status": "available"}
        for repetition in range(1, common.REPEAT + 1 if PART != "xlsx" else 1):
            copy = copy_to_seconds(filters)
            job = job_seconds(filters, "csv", rows)
            to_copy.append(job / copy)
            print(
                f"csv #{repetition}: COPY TO {copy:.2f} s, export job {job:.2f} s "
                f"({rows / job:,.0f} rows/s)",
                flush=True,
            )
        if to_copy:
            common.figure(f"export_csv_{common.label(rows)}/copy_to", to_copy, "<=", 1.5)
        small_filters = {"pool": small.pk, "status": "available"}
        for repetition in range(1, common.REPEAT + 1 if PART != "csv" else 1):
            csv_job = job_seconds(small_filters, "csv", XLSX_ROWS)
            xlsx_job = job_seconds(small_filters, "xlsx", XLSX_ROWS)
            xlsx_to_csv.append(xlsx_job / csv_job)
            print(
                f"xlsx #{repetition}: CSV job {csv_job:.2f} s, XLSX job {xlsx_job:.2f} s "
                f"({XLSX_ROWS / xlsx_job:,.0f} rows/s)",
                flush=True,
            )
        label = common.label(XLSX_ROWS)
        if xlsx_to_csv:
            common.figure(f"export_xlsx_{label}/export_csv_{label}", xlsx_to_csv, "reported", 0)
    finally:
        worker.stop()
    return common.report()


if __name__ == "__main__":
    sys.exit(main())
