"""Import throughput and memory, measured side by side on the same data in one run.

    make bench-import            (or: .venv/bin/python bench/import_bench.py [throughput|memory])

Needs the local PostgreSQL and Redis. Uses its own database (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/promo_bench, created if missing) and Redis database 14.
Generated files are cached under bench/.cache. BENCH_ROWS (default 1,000,000) and
BENCH_BIG_ROWS (default 10,000,000) scale it down for a quick look.

What it measures, each against a baseline on the same rows and the same table, which is emptied
before every run so that both start alike:
- a code-only CSV and a five-column CSV with dates, uploaded and imported end to end by a real
  Celery worker, against a plain COPY of the already clean rows into the codes table;
- the same CSVs (first 100,000 rows) through django-import-export's bulk import (use_bulk=True),
  compared in rows per second;
- an XLSX with the five columns, end to end, against the same COPY;
- the worker's peak memory importing BENCH_BIG_ROWS rows against 100,000 rows.
"""

import csv
import os
import random
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
BIG_ROWS = int(os.environ.get("BENCH_BIG_ROWS", "10000000"))
IE_ROWS = min(100_000, ROWS)
DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/promo_bench"
)
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/14")

os.environ.update(
    DATABASE_URL=DATABASE_URL,
    CELERY_BROKER_URL=BROKER_URL,
    MEDIA_ROOT=str(CACHE / "media"),
    PROMO_VAR_DIR=str(CACHE / "var"),
    DJANGO_SETTINGS_MODULE="promo_project.settings",
    LOG_LEVEL="WARNING",
)
sys.path.insert(0, str(ROOT))


def create_database():
    import psycopg

    base, name = DATABASE_URL.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


create_database()
import django  # noqa: E402

django.setup()

from django.core.files import File  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from imports.models import Import  # noqa: E402
from imports.services import import_file_start  # noqa: E402
from imports.validation import clean_row  # noqa: E402
from pools.models import Code  # noqa: E402
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
    """Return a new pool, with the codes table (and every table that references it) empty."""
    with connection.cursor() as cursor:
        # CASCADE: issues and redemptions reference codes; PostgreSQL finds them all.
        cursor.execute(f"TRUNCATE {Code._meta.db_table} CASCADE")
    campaign = campaign_create(name=f"Bench {time.monotonic_ns()}")
    return pool_create(campaign=campaign, description="benchmark")


def copy_seconds(source: Path) -> float:
    """Time a plain COPY of the file's rows, already cleaned, into the codes table."""
    pool = fresh_pool()
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


def worker_import_seconds(source: Path, expected: int) -> float:
    """Time an upload from storing the file to the worker's finished report."""
    pool = fresh_pool()
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


# Report


results: list[tuple[str, float, str, float]] = []


def figure(name: str, value: float, op: str, target: float) -> None:
    results.append((name, value, op, target))


def main() -> int:
    CACHE.mkdir(parents=True, exist_ok=True)
    call_command("migrate", verbosity=0)
    import redis

    redis.Redis.from_url(BROKER_URL).flushdb()
    point_app_at(BROKER_URL)
    print(f"Rows: {ROWS:,}; big file: {BIG_ROWS:,}; PostgreSQL {connection.pg_version}")
    if "memory" not in sys.argv[1:]:
        throughput()
    if "throughput" not in sys.argv[1:]:
        memory()

    print()
    failed = 0
    for name, value, op, target in results:
        ok = value <= target if op == "<=" else value >= target
        failed += not ok
        print(f"{name} = {value:.2f} (target {op} {target}) {'ok' if ok else 'MISSED'}")
    return 1 if failed else 0


def throughput():
    codes_csv = make_csv(CACHE / f"codes-{ROWS}.csv", ROWS, dated=False, seed=1)
    dated_csv = make_csv(CACHE / f"dated-{ROWS}.csv", ROWS, dated=True, seed=2)
    print("Writing the XLSX file (cached after the first run)…", flush=True)
    dated_xlsx = make_xlsx(CACHE / f"dated-{ROWS}.xlsx", dated_csv)
    worker = Worker({**os.environ}, CACHE / "worker.log").start()
    try:
        for name, source in (("csv", codes_csv), ("csv5", dated_csv), ("xlsx", dated_xlsx)):
            baseline_csv = dated_csv if name == "xlsx" else source
            copy = copy_seconds(baseline_csv)
            ours = worker_import_seconds(source, ROWS)
            print(
                f"{name}: COPY {copy:.2f} s, import through the worker {ours:.2f} s "
                f"({ROWS / ours:,.0f} rows/s)",
                flush=True,
            )
            limit = 3.0 if name == "xlsx" else 2.0
            figure(f"import_{name}_{ROWS // 1000}k/copy", ours / copy, "<=", limit)
            if name != "xlsx":
                ie = import_export_seconds(head_csv(source, IE_ROWS))
                print(
                    f"{name}: django-import-export {IE_ROWS:,} rows in {ie:.2f} s "
                    f"({IE_ROWS / ie:,.0f} rows/s)",
                    flush=True,
                )
                figure(
                    f"import_{name}_rows_per_s/import_export",
                    (ROWS / ours) / (IE_ROWS / ie),
                    ">=",
                    20.0,
                )
    finally:
        worker.stop()


def memory():
    small = make_csv(CACHE / "codes-100000.csv", 100_000, dated=False, seed=3)
    big = make_csv(CACHE / f"codes-{BIG_ROWS}.csv", BIG_ROWS, dated=False, seed=4)
    small_rss = peak_rss(small, 100_000)
    big_rss = peak_rss(big, BIG_ROWS)
    print(
        f"worker peak memory: {small_rss / 2**20:.0f} MiB for 100,000 rows, "
        f"{big_rss / 2**20:.0f} MiB for {BIG_ROWS:,} rows",
        flush=True,
    )
    figure(f"worker_rss_{BIG_ROWS // 1_000_000}m/100k", big_rss / small_rss, "<=", 1.5)


if __name__ == "__main__":
    sys.exit(main())
