"""Issuing under concurrency: the service and the HTTP API against a bare SQL loop.

    make bench-issue            (or: .venv/bin/python bench/issue_bench.py)

Needs the local PostgreSQL. Uses its own database (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/promo_bench). A launched pool of BENCH_POOL_CODES codes
(default 1,000,000) is issued from by 8 and then 32 concurrent client processes for
BENCH_SECONDS (default 8) each:
- sql: a bare `UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED)` per issue, in autocommit
  (the limit: no record of who got the code, no counts);
- service: `pools.services.code_issue`, as the Django shell or a task calls it;
- http: POST /api/pools/<pool>/issue with an API key, served by gunicorn.
Before each run the pool is reset to all codes available and vacuumed. After each run it checks
that no code was issued twice and that every issue the clients saw is recorded.
"""

import http.client
import json
import multiprocessing
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POOL_CODES = int(os.environ.get("BENCH_POOL_CODES", "1000000"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "8"))
CLIENTS = (8, 32)
DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/promo_bench"
)
HTTP_PORT = int(os.environ.get("BENCH_HTTP_PORT", "8765"))
os.environ.update(
    DATABASE_URL=DATABASE_URL,
    DJANGO_SETTINGS_MODULE="promo_project.settings",
    LOG_LEVEL="WARNING",
    API_RATE_PER_KEY="100000000/min",
)
sys.path.insert(0, str(ROOT))

import django  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from import_bench import create_database  # noqa: E402

create_database()
django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, connections  # noqa: E402
from rest_framework_api_key.models import APIKey  # noqa: E402

from pools.code_services import code_issue  # noqa: E402
from pools.counters import pool_counts_add  # noqa: E402
from pools.models import Code, Pool  # noqa: E402
from pools.services import campaign_create, pool_create, pool_launch  # noqa: E402

SLUG = "issue-bench"
BARE_SQL = """
UPDATE pools_code SET status = 'issued', issued_to = %(customer)s, issued_at = now()
WHERE id = (
    SELECT id FROM pools_code
    WHERE pool_id = %(pool)s AND status = 'available'
      AND (issue_start IS NULL OR issue_start <= now())
      AND (issue_end IS NULL OR issue_end >= now())
      AND (available_till IS NULL OR available_till >= now())
    ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
)
RETURNING id, code
"""


def prepare_pool() -> Pool:
    pool = Pool.objects.filter(slug=SLUG).first()
    if pool and Code.objects.filter(pool=pool).count() == POOL_CODES:
        return pool
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE pools_codeissue, pools_redemption, pools_code, pools_poolcounter, "
            "imports_rejection, imports_import CASCADE"
        )
    Pool.objects.filter(slug=SLUG).delete()
    pool = pool_create(campaign=campaign_create(name="Issue bench"), slug=SLUG, description="b")
    pool_launch(pool=pool)
    rng = random.Random(5)
    data = "".join(
        f"{pool.pk}\t{rng.getrandbits(60):015X}\tavailable\t\t0\n" for _ in range(POOL_CODES)
    )
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(
            "COPY pools_code (pool_id, code, status, issued_to, times_redeemed) FROM STDIN"
        ) as copy,
    ):
        copy.write(data)
    return pool


def reset(pool: Pool) -> None:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM pools_codeissue WHERE pool_id = %s", [pool.pk])
        cursor.execute(
            "UPDATE pools_code SET status = 'available', issued_to = '', issued_at = NULL "
            "WHERE pool_id = %s AND status <> 'available'",
            [pool.pk],
        )
        cursor.execute("DELETE FROM pools_poolcounter WHERE pool_id = %s", [pool.pk])
        cursor.execute("VACUUM ANALYZE pools_code")
        cursor.execute("VACUUM ANALYZE pools_codeissue")
    pool_counts_add(pool_id=pool.pk, available=POOL_CODES)


def client(mode: str, number: int, pool_id: int, api_key: str, start_at: float, results):
    """Issue codes until the time is up; report (count, latencies in seconds)."""
    latencies = []
    if mode == "sql":
        import psycopg

        conn = psycopg.connect(
            DATABASE_URL.replace("postgres://", "postgresql://"), autocommit=True
        )

        def issue(n):
            conn.execute(BARE_SQL, {"customer": f"c{number}-{n}", "pool": pool_id}).fetchone()

    elif mode == "service":
        connections.close_all()
        pool = Pool.objects.get(pk=pool_id)

        def issue(n):
            code_issue(pool=pool, customer=f"c{number}-{n}")

    else:
        conn = http.client.HTTPConnection("127.0.0.1", HTTP_PORT, timeout=30)
        headers = {"Authorization": f"Api-Key {api_key}", "Content-Type": "application/json"}

        def issue(n):
            body = json.dumps({"customer": f"c{number}-{n}"})
            conn.request("POST", f"/api/pools/{SLUG}/issue", body, headers)
            response = conn.getresponse()
            response.read()
            assert response.status == 200, response.status

    time.sleep(max(0.0, start_at - time.time()))
    deadline = start_at + SECONDS
    n, error = 0, None
    try:
        while time.time() < deadline:
            started = time.perf_counter()
            issue(n)
            latencies.append(time.perf_counter() - started)
            n += 1
    except Exception as failure:  # noqa: BLE001  (reported by the parent)
        error = repr(failure)
    results.put((n, latencies, error))


def run(mode: str, clients: int, pool: Pool, api_key: str) -> tuple[float, float]:
    reset(pool)
    connections.close_all()
    results = multiprocessing.get_context("fork").Queue()
    start_at = time.time() + 2.0
    processes = [
        multiprocessing.get_context("fork").Process(
            target=client, args=(mode, number, pool.pk, api_key, start_at, results)
        )
        for number in range(clients)
    ]
    for process in processes:
        process.start()
    counts, latencies = 0, []
    for _ in processes:
        count, times, error = results.get()
        if error:
            raise RuntimeError(f"{mode} client failed: {error}")
        counts += count
        latencies.extend(times)
    for process in processes:
        process.join()
    rate = counts / SECONDS
    p99 = sorted(latencies)[int(len(latencies) * 0.99)] * 1000 if latencies else float("nan")
    check(pool, mode, counts)
    print(f"{mode:8} {clients:2} clients: {rate:8,.0f} issues/s, p99 {p99:6.1f} ms", flush=True)
    return rate, p99


def check(pool: Pool, mode: str, counts: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pools_code WHERE pool_id = %s AND status = 'issued'", [pool.pk]
        )
        issued = cursor.fetchone()[0]
        cursor.execute(
            "SELECT count(*) FROM (SELECT code_id FROM pools_codeissue WHERE pool_id = %s "
            "GROUP BY code_id HAVING count(*) > 1) twice",
            [pool.pk],
        )
        twice = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM pools_codeissue WHERE pool_id = %s", [pool.pk])
        recorded = cursor.fetchone()[0]
    assert issued == counts, f"{mode}: clients saw {counts} issues, {issued} codes are issued"
    assert twice == 0, f"{mode}: {twice} codes were issued twice"
    if mode != "sql":
        assert recorded == counts, f"{mode}: {recorded} issues recorded for {counts}"


def start_gunicorn() -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "bench",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        # Rate limits and cached keys shared by the server's processes, as in production.
        "CACHE_URL": os.environ.get("BENCH_CACHE_URL", "redis://127.0.0.1:6379/13"),
    }
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "promo_project.wsgi",
            "--bind",
            f"127.0.0.1:{HTTP_PORT}",
            # Sync workers: threads in one process would queue on the interpreter lock.
            "--workers",
            os.environ.get("BENCH_HTTP_WORKERS", "6"),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    for _ in range(100):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", HTTP_PORT, timeout=1)
            conn.request("GET", "/api/schema")
            conn.getresponse().read()
            return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("gunicorn did not start")


def main() -> int:
    call_command("migrate", verbosity=0)
    print(
        f"Pool of {POOL_CODES:,} codes; {SECONDS:g} s per run; PostgreSQL {connection.pg_version}"
    )
    pool = prepare_pool()
    _, api_key = APIKey.objects.create_key(name="issue bench")
    server = start_gunicorn()
    rates = {}
    try:
        for clients in CLIENTS:
            for mode in ("sql", "service", "http"):
                rates[mode, clients] = run(mode, clients, pool, api_key)[0]
    finally:
        server.terminate()
        server.wait(timeout=30)
    print()
    failed = 0
    for clients in CLIENTS:
        for mode, target in (("service", 0.5), ("http", 0.25)):
            ratio = rates[mode, clients] / rates["sql", clients]
            ok = ratio >= target
            failed += not ok
            print(
                f"issue_{mode}_{clients}/sql = {ratio:.2f} (target >= {target}) "
                f"{'ok' if ok else 'MISSED'}"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
