"""Running a live pool: finding codes on a big pool, and undoing a big import.

    make bench-live                 (or: .venv/bin/python bench/live_pool_bench.py)
    BENCH_SIZE=tiny make bench-live (a few seconds: what CI runs)

Needs the local PostgreSQL. Uses its own database (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/promo_bench_live). Full size: a pool of 10,000,000 codes
(BENCH_POOL_CODES), 1% of them issued to customers, and an import of 1,000,000 codes
(BENCH_UNDO_CODES) to undo. Each figure is the median of 3 runs (BENCH_REPEAT):
- search_customer/full_scan, search_prefix/full_scan: the codes list's search (the query the
  admin runs, by customer id and by code prefix), timed with EXPLAIN ANALYZE, against the same
  query with index scans turned off (a full scan of the same table);
- undo_1000k/delete: `code_addition_undo` of the import, against a plain `DELETE` of the same
  rows in one statement (the rows are put back between runs).
"""

import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TINY = os.environ.get("BENCH_SIZE") == "tiny"
POOL_CODES = int(os.environ.get("BENCH_POOL_CODES", "20000" if TINY else "10000000"))
UNDO_CODES = int(os.environ.get("BENCH_UNDO_CODES", "5000" if TINY else "1000000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/promo_bench_live"
)
# Targets: search in at most 1/50 of a full scan; undo in at most 3x a DELETE.
SEARCH_TARGET = 1 / 50
UNDO_TARGET = 3.0
os.environ.update(DATABASE_URL=DATABASE_URL, DJANGO_SETTINGS_MODULE="promo_project.settings")
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

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from pools.admin import CodeAdmin  # noqa: E402
from pools.code_services import code_addition_create, code_addition_undo  # noqa: E402
from pools.counters import pool_counts_add  # noqa: E402
from pools.models import Code, CodeAddition, Pool  # noqa: E402
from pools.services import campaign_create, pool_create, pool_launch  # noqa: E402

BIG = "live-bench-big"
UNDO = "live-bench-undo"
ISSUED_EVERY = 100  # 1% of the big pool's codes are issued, each to its own customer


def sql(statement, params=None):
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else None


def launched_pool(slug) -> Pool:
    pool = Pool.objects.filter(slug=slug).first()
    if pool is None:
        pool = pool_create(campaign=campaign_create(name=slug), slug=slug, description=slug)
        pool_launch(pool=pool)
    return pool


def prepare_big_pool() -> Pool:
    """A pool of POOL_CODES codes, 1% issued; kept between runs of the same size."""
    pool = launched_pool(BIG)
    if Code.objects.filter(pool=pool).count() == POOL_CODES:
        return pool
    print(f"filling a pool with {POOL_CODES:,} codes (once) ...", flush=True)
    sql("DELETE FROM pools_codeissue WHERE pool_id = %s", [pool.pk])
    sql("DELETE FROM pools_code WHERE pool_id = %s", [pool.pk])
    sql(
        """
        INSERT INTO pools_code (pool_id, code, status, issued_to, issued_at, times_redeemed)
        SELECT %(pool)s, 'LP' || upper(substr(md5(i::text), 1, 12)),
            CASE WHEN i %% %(every)s = 0 THEN 'issued' ELSE 'available' END,
            CASE WHEN i %% %(every)s = 0 THEN 'cust-' || i ELSE '' END,
            CASE WHEN i %% %(every)s = 0 THEN now() END, 0
        FROM generate_series(1, %(n)s) AS i
        """,
        {"pool": pool.pk, "n": POOL_CODES, "every": ISSUED_EVERY},
    )
    sql(
        """
        INSERT INTO pools_codeissue (pool_id, code_id, customer, idempotency_key, marked,
            issued_at)
        SELECT pool_id, id, issued_to, '', false, issued_at FROM pools_code
        WHERE pool_id = %s AND status = 'issued'
        """,
        [pool.pk],
    )
    sql("VACUUM ANALYZE pools_code")
    sql("VACUUM ANALYZE pools_codeissue")
    return pool


def explain_ms(queryset, *, full_scan: bool) -> float:
    """Return planning plus execution time of the queryset's query, by EXPLAIN ANALYZE."""
    query, params = queryset.query.sql_with_params()
    switches = ("enable_indexscan", "enable_bitmapscan", "enable_indexonlyscan")
    with connection.cursor() as cursor:
        for switch in switches:
            cursor.execute(f"SET {switch} = {'off' if full_scan else 'on'}")
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {query}", params)
        plan = cursor.fetchone()[0]
        for switch in switches:
            cursor.execute(f"RESET {switch}")
    plan = plan[0] if isinstance(plan, list) else json.loads(plan)[0]
    return plan["Planning Time"] + plan["Execution Time"]


def search_ms(pool, term: str, *, full_scan: bool) -> float:
    """Time what the codes list runs for a search: the customer's codes, then one page of the
    matching codes (newest first) and the bounded count."""
    admin = CodeAdmin(Code, None)
    # get_search_results first reads the customer's issues: time that query too.
    from pools.models import CodeIssue

    issues = CodeIssue.objects.filter(customer=term).values_list("code_id", flat=True)[:1000]
    total = explain_ms(issues, full_scan=full_scan)
    found, _ = admin.get_search_results(None, Code.objects.filter(pool=pool), term)
    total += explain_ms(found.order_by("-id")[:100], full_scan=full_scan)
    total += explain_ms(found.values("id")[:10001], full_scan=full_scan)
    return total


def median_of(measure) -> float:
    return statistics.median(measure() for _ in range(REPEAT))


def fill_addition(pool: Pool, addition: CodeAddition) -> None:
    sql(
        """
        INSERT INTO pools_code (pool_id, addition_id, code, status, issued_to, times_redeemed)
        SELECT %(pool)s, %(addition)s, 'UNDO' || i, 'available', '', 0
        FROM generate_series(1, %(n)s) AS i
        """,
        {"pool": pool.pk, "addition": addition.pk, "n": UNDO_CODES},
    )
    pool_counts_add(pool_id=pool.pk, available=UNDO_CODES)
    sql("VACUUM ANALYZE pools_code")


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main():
    call_command("migrate", verbosity=0)
    pool = prepare_big_pool()
    results = []

    customer = f"cust-{ISSUED_EVERY * 7}"
    prefix = Code.objects.filter(pool=pool, status="available").order_by("id").first().code[:7]
    for name, term in (("customer", customer), ("prefix", prefix)):
        indexed = median_of(lambda t=term: search_ms(pool, t, full_scan=False))
        scan = median_of(lambda t=term: search_ms(pool, t, full_scan=True))
        matches = CodeAdmin(Code, None).get_search_results(None, Code.objects.all(), term)[0]
        print(
            f"search by {name} ({term!r}, {matches.count():,} codes) on {POOL_CODES:,} codes: "
            f"{indexed:,.2f} ms with the indexes, {scan:,.2f} ms by full scan"
        )
        results.append((f"search_{name}/full_scan", indexed / scan, "<=", SEARCH_TARGET))

    undo_pool = launched_pool(UNDO)
    sql("DELETE FROM pools_code WHERE pool_id = %s", [undo_pool.pk])
    undos, deletes = [], []
    for _ in range(REPEAT):
        addition = code_addition_create(pool=undo_pool)
        fill_addition(undo_pool, addition)
        undos.append(timed(lambda a=addition: code_addition_undo(addition=a)))
        assert not Code.objects.filter(addition=addition).exists()
        fill_addition(undo_pool, addition)
        deletes.append(
            timed(lambda a=addition: sql("DELETE FROM pools_code WHERE addition_id = %s", [a.pk]))
        )
        pool_counts_add(pool_id=undo_pool.pk, available=-UNDO_CODES)
    undo, delete = statistics.median(undos), statistics.median(deletes)
    print(
        f"undo of an import of {UNDO_CODES:,} codes: {undo:.2f} s in slices, "
        f"plain DELETE {delete:.2f} s"
    )
    results.append((f"undo_{UNDO_CODES // 1000}k/delete", undo / delete, "<=", UNDO_TARGET))

    print()
    if TINY:
        print("tiny size: the script runs end to end; the targets speak of the full size")
    failed = False
    for name, value, _, target in results:
        ok = value <= target
        failed |= not ok
        verdict = "ok" if ok else ("(tiny)" if TINY else "MISSED")
        print(f"{name} = {value:.4f} (target <= {target:.4f}) {verdict}")
    return 1 if failed and not TINY else 0


if __name__ == "__main__":
    sys.exit(main())
