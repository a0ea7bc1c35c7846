"""Import throughput and memory, measured side by side on the same data in one run.

    make bench-import            (or: .venv/bin/python bench/import_bench.py [throughput|memory])
    make bench-tiny              (every benchmark at a tiny size, as CI runs them)

Needs the local PostgreSQL and Redis; uses the benchmarks' own database and Redis database
(bench/common.py). Generated files are cached under bench/.cache. Sizes: BENCH_ROWS (default
1,000,000; tiny 3,000) for the throughput; BENCH_SMALL_ROWS and BENCH_BIG_ROWS (default 100,000
and 20,000,000; tiny 3,000 and 30,000) for the memory.

What it measures, each against a baseline on the same rows and the same table, which is emptied
before every run so that both start alike, BENCH_REPEAT times (at least 3) for the median:
- a code-only CSV and a five-column CSV with dates, uploaded and imported end to end by a real
  Celery worker, against a plain COPY of the already clean rows into the codes table;
- the same CSVs (first BENCH_IE_ROWS rows: 100,000; tiny 500) through django-import-export's bulk
  import (use_bulk=True), compared in rows per second;
- an XLSX with the five columns, end to end, against the same COPY;
- the peak memory of a fresh worker importing BENCH_BIG_ROWS rows against BENCH_SMALL_ROWS rows.
BENCH_FORMATS (default csv,csv5,xlsx) picks the throughput part's files.
"""

import argparse
import csv
import os
import random
import shutil
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import common

# Read before Django is set up, so that --help and a wrong argument touch no database.
_parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
_parser.add_argument("part", nargs="?", choices=("throughput", "full", "memory"))
_parser.add_argument("--tiny", action="store_true", help="a few thousand rows, as CI runs it")
ARGUMENTS = _parser.parse_args()

ROWS = common.size("BENCH_ROWS", 1_000_000, 3_000)
SMALL_ROWS = common.size("BENCH_SMALL_ROWS", 100_000, 3_000)
BIG_ROWS = common.size("BENCH_BIG_ROWS", 20_000_000, 30_000)
# The codes already in the pool that the "full" part imports into.
FULL_POOL = common.size("BENCH_FULL_POOL", 10_000_000, 10_000)
# django-import-export is slow (2,000 rows/s): it gets the first rows of the same file.
IE_ROWS = min(ROWS, common.size("BENCH_IE_ROWS", 100_000, 500))
CACHE = common.CACHE
# The throughput part's files, a subset to measure one alone: csv (code only), csv5, xlsx.
FORMATS = [f for f in os.environ.get("BENCH_FORMATS", "csv,csv5,xlsx").split(",") if f]

common.setup()

from big_pool import big_pool  # noqa: E402
from django.core.files import File  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from imports.models import Import  # noqa: E402
from imports.services import import_file_start  # noqa: E402
from imports.validation import clean_row  # noqa: E402
from pools.models import Code, CodeIssue, Pool, PoolCounter, Redemption  # noqa: E402
from pools.services import campaign_create, pool_create  # noqa: E402
from tests.worker import Worker, point_app_at  # noqa: E402

COLUMNS = ("Code", "Issue-start", "Issue-end", "Available-from", "Available-till")


# Data


def random_code(rng) -> str:
    return f"{rng.getrandbits(60):015X}"


def make_csv(path: Path, rows: int, *, dated: bool, seed: int) -> Path:
    if path.exists():
        return path
    rng = random.Random(seed)
    start = datetime(2026, 1, 1)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS if dated else COLUMNS[:1])
        for _ in range(rows):
            if not dated:
                writer.writerow([random_code(rng)])
                continue
            issue = start + timedelta(minutes=rng.randrange(525_600))
            until = issue + timedelta(days=rng.randrange(1, 90))
            writer.writerow(
                [
                    random_code(rng),
                    f"{issue:%Y-%m-%d %H:%M:%S}",
                    f"{until:%Y-%m-%d %H:%M:%S}",
                    f"{issue:%Y-%m-%d %H:%M:%S}",
                    f"{until:%Y-%m-%d %H:%M:%S}",
                ]
            )
    tmp.rename(path)
    return path


def make_xlsx(path: Path, source_csv: Path) -> Path:
    if path.exists():
        return path
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Codes")
    with open(source_csv, newline="") as f:
        reader = csv.reader(f)
        sheet.append(next(reader))
        for code, *dates in reader:
            sheet.append([code, *(datetime.fromisoformat(d) for d in dates)])
    tmp = path.with_suffix(".tmp")
    workbook.save(tmp)
    tmp.rename(path)
    return path


def head_csv(source: Path, rows: int) -> bytes:
    with open(source, "rb") as f:
        return b"".join(line for _, line in zip(range(rows + 1), f, strict=False))


# Measurements


def fresh_pool():
    """Return a new, empty pool; the codes table holds nothing else but the big pools that the
    benchmarks keep (bench/big_pool.py)."""
    kept = list(Pool.objects.filter(slug__startswith="bench-").values_list("pk", flat=True))
    with connection.cursor() as cursor:
        if not kept:
            # CASCADE: issues and redemptions reference codes; PostgreSQL finds them all.
            cursor.execute(f"TRUNCATE {Code._meta.db_table} CASCADE")
        else:
            # No VACUUM: on tens of millions of codes it takes minutes; autovacuum comes by.
            # (The throughput part is best run in a database without the big pools.)
            # Issues and redemptions (the issuing benchmarks leave some in a shared database)
            # reference codes: they go first.
            codes = Code._meta.db_table
            cursor.execute(
                f"DELETE FROM {Redemption._meta.db_table} r USING {codes} c "
                "WHERE r.code_id = c.id AND NOT c.pool_id = ANY(%s)",
                [kept],
            )
            cursor.execute(
                f"DELETE FROM {CodeIssue._meta.db_table} WHERE NOT pool_id = ANY(%s)", [kept]
            )
            cursor.execute(f"DELETE FROM {codes} WHERE NOT pool_id = ANY(%s)", [kept])
    campaign = campaign_create(name=f"Bench {time.monotonic_ns()}")
    return pool_create(campaign=campaign, description="benchmark")


def remove_codes_above(pool, top: int) -> None:
    """Delete the pool's codes with ids above `top` (those a run added)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {Code._meta.db_table} WHERE pool_id = %s AND id > %s", [pool.pk, top]
        )
    PoolCounter.objects.filter(pool=pool).exclude(shard=0).delete()


def copy_seconds(source: Path, pool=None) -> float:
    """Time a plain COPY of the file's rows, already cleaned, into the codes table (a new pool's
    codes, or `pool`'s)."""
    pool = pool or fresh_pool()
    tz = timezone.get_default_timezone()
    lines = []
    with open(source, newline="") as f:
        reader = csv.reader(f)
        width = len(next(reader))
        for number, cells in enumerate(reader, start=2):
            row = clean_row(number, (*cells, *[None] * (5 - width)), tz)
            dates = "\t".join(d or "\\N" for d in row[2:])
            lines.append(f"{pool.pk}\t{row[1]}\tavailable\t{dates}\t\t0\n")
    data = "".join(lines).encode()
    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE %s", [timezone.get_default_timezone_name()])
        started = time.perf_counter()
        with cursor.cursor.copy(
            f"COPY {Code._meta.db_table} (pool_id, code, status, issue_start, issue_end, "
            "available_from, available_till, issued_to, times_redeemed) FROM STDIN"
        ) as copy:
            for start in range(0, len(data), 1 << 20):
                copy.write(data[start : start + (1 << 20)])
        seconds = time.perf_counter() - started
        cursor.execute("SET TIME ZONE 'UTC'")
    return seconds


def worker_import_seconds(source: Path, expected: int, pool=None) -> float:
    """Time an upload from storing the file to the worker's finished report (into a new pool,
    or into `pool`)."""
    pool = pool or fresh_pool()
    started = time.perf_counter()
    with open(source, "rb") as f:
        job = import_file_start(pool=pool, file=File(f, name=source.name))
    while True:
        job.refresh_from_db()
        if job.is_finished:
            break
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    assert job.status == Import.Status.COMPLETED, (job.status, job.message)
    assert job.codes_added == expected, (job.codes_added, expected)
    return seconds


def import_export_seconds(data: bytes) -> float:
    """Time django-import-export's own bulk import of the rows (what a user reaches for first)."""
    import tablib
    from import_export import resources

    pool = fresh_pool()

    class CodeImportResource(resources.ModelResource):
        class Meta:
            model = Code
            use_bulk = True
            batch_size = 1000
            fields = (
                "pool",
                "code",
                "issue_start",
                "issue_end",
                "available_from",
                "available_till",
            )
            import_id_fields = ()

        def before_import_row(self, row, **kwargs):
            row["pool"] = pool.pk

    text = data.decode()
    header = {
        c: f
        for c, f in zip(
            COLUMNS,
            ["code", "issue_start", "issue_end", "available_from", "available_till"],
            strict=True,
        )
    }
    first, rest = text.split("\n", 1)
    renamed = ",".join(header[c] for c in first.strip().split(",")) + "\n" + rest
    dataset = tablib.Dataset().load(renamed, format="csv")
    started = time.perf_counter()
    result = CodeImportResource().import_data(dataset, raise_errors=True)
    seconds = time.perf_counter() - started
    assert not result.has_errors() and not result.has_validation_errors()
    assert Code.objects.filter(pool=pool).count() == len(dataset)
    return seconds


def peak_rss(source: Path, expected: int) -> int:
    """Run one import in a fresh solo worker and return the worker's peak memory."""
    env = {**os.environ, "DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": "bench"}
    worker = Worker(env, CACHE / "worker-memory.log", pool="solo").start()
    try:
        worker_import_seconds(source, expected)
        return worker.peak_rss()
    finally:
        worker.stop()


# Runs


def main() -> int:
    part = ARGUMENTS.part
    # Uploads of earlier runs are not needed again.
    shutil.rmtree(CACHE / "media", ignore_errors=True)
    point_app_at(common.REDIS_URL)
    print(
        f"Rows: {ROWS:,}; memory: {SMALL_ROWS:,} and {BIG_ROWS:,} rows; "
        f"{common.REPEAT} repetitions; PostgreSQL {connection.pg_version}",
        flush=True,
    )
    if part in (None, "throughput"):
        throughput()
    if part in (None, "full"):
        into_full_pool()
    if part in (None, "memory"):
        memory()
    return common.report()


def throughput():
    codes_csv = make_csv(CACHE / f"codes-{ROWS}.csv", ROWS, dated=False, seed=1)
    dated_csv = make_csv(CACHE / f"dated-{ROWS}.csv", ROWS, dated=True, seed=2)
    sources = {"csv": codes_csv, "csv5": dated_csv}
    if "xlsx" in FORMATS:
        print("Writing the XLSX file (cached after the first run)…", flush=True)
        sources["xlsx"] = make_xlsx(CACHE / f"dated-{ROWS}.xlsx", dated_csv)
    worker = Worker({**os.environ}, CACHE / "worker.log").start()
    try:
        for name in FORMATS:
            source = sources[name]
            baseline_csv = dated_csv if name == "xlsx" else source
            to_copy, to_import_export = [], []
            for repetition in range(1, common.REPEAT + 1):
                copy = copy_seconds(baseline_csv)
                ours = worker_import_seconds(source, ROWS)
                to_copy.append(ours / copy)
                print(
                    f"{name} #{repetition}: COPY {copy:.2f} s, import through the worker "
                    f"{ours:.2f} s ({ROWS / ours:,.0f} rows/s)",
                    flush=True,
                )
                if name == "xlsx":
                    continue
                ie = import_export_seconds(head_csv(source, IE_ROWS))
                to_import_export.append((ROWS / ours) / (IE_ROWS / ie))
                print(
                    f"{name} #{repetition}: django-import-export {IE_ROWS:,} rows in {ie:.2f} s "
                    f"({IE_ROWS / ie:,.0f} rows/s)",
                    flush=True,
                )
            # Into an empty pool, the common case: a codes-only CSV at most 1.3× a plain COPY.
            limit = {"xlsx": 2.5, "csv": 1.3}.get(name, 2.0)
            figure = f"import_{name}_{ROWS // 1000}k" + ("_empty" if name == "csv" else "")
            common.figure(f"{figure}/copy", to_copy, "<=", limit)
            if to_import_export:
                common.figure(
                    f"import_{name}_rows_per_s/import_export", to_import_export, ">=", 20.0
                )
    finally:
        worker.stop()


def into_full_pool():
    """A code-only CSV imported into a pool that holds FULL_POOL codes already, against a plain
    COPY of the same rows into that same table; the rows added are deleted after each run."""
    source = make_csv(CACHE / f"codes-{ROWS}.csv", ROWS, dated=False, seed=1)
    pool = big_pool(FULL_POOL, slug=f"bench-{common.label(FULL_POOL)}")
    top = Code.objects.filter(pool=pool).order_by("-id").values_list("id", flat=True)[0]
    worker = Worker({**os.environ}, CACHE / "worker.log").start()
    ratios = []
    try:
        for repetition in range(1, common.REPEAT + 1):
            copy = copy_seconds(source, pool)
            remove_codes_above(pool, top)
            ours = worker_import_seconds(source, ROWS, pool)
            remove_codes_above(pool, top)
            ratios.append(ours / copy)
            print(
                f"into {FULL_POOL:,} #{repetition}: COPY {copy:.2f} s, import through the "
                f"worker {ours:.2f} s ({ROWS / ours:,.0f} rows/s)",
                flush=True,
            )
    finally:
        worker.stop()
    full = common.label(FULL_POOL)
    common.figure(f"import_csv_{ROWS // 1000}k_into_{full}/copy_into_{full}", ratios, "<=", 2.0)


def memory():
    small = make_csv(CACHE / f"codes-{SMALL_ROWS}.csv", SMALL_ROWS, dated=False, seed=3)
    big = make_csv(CACHE / f"codes-{BIG_ROWS}.csv", BIG_ROWS, dated=False, seed=4)
    ratios = []
    for repetition in range(1, common.REPEAT + 1):
        small_rss = peak_rss(small, SMALL_ROWS)
        big_rss = peak_rss(big, BIG_ROWS)
        ratios.append(big_rss / small_rss)
        print(
            f"memory #{repetition}: worker peak {small_rss / 2**20:.0f} MiB for "
            f"{SMALL_ROWS:,} rows, {big_rss / 2**20:.0f} MiB for {BIG_ROWS:,} rows",
            flush=True,
        )
    common.figure(
        f"worker_rss_{common.label(BIG_ROWS)}/{common.label(SMALL_ROWS)}", ratios, "<=", 1.5
    )


if __name__ == "__main__":
    sys.exit(main())
