"""Issuing under concurrency: the service and the HTTP API against a bare SQL loop.

    make bench-issue            (or: .venv/bin/python bench/issue_bench.py)
    make bench-tiny             (every benchmark at a tiny size, as CI runs them)

Needs the local PostgreSQL and Redis; uses the benchmarks' own database and Redis database
(bench/common.py). A launched pool of BENCH_POOL_CODES codes (default 1,000,000; tiny 20,000) is
issued from by BENCH_CLIENTS concurrent client processes (default 8 and then 32; tiny 2 and 8)
for BENCH_SECONDS (default 8; tiny 1) each, BENCH_REPEAT times (at least 3) for the median:
- sql: a bare `UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED)` per issue, in autocommit
  (the limit: no record of who got the code, no counts);
- service: `pools.services.code_issue`, as the Django shell or a task calls it;
- http: POST /api/pools/<pool>/issue with an API key, served by gunicorn (BENCH_HTTP_WORKERS
  sync workers, default 6, tiny 2; the Redis cache shared by them, as in production).
Before each run the pool is reset to all codes available and vacuumed. After each run it checks
that no code was issued twice and that every issue the clients saw is recorded.
"""

import argparse
import contextlib
import http.client
import json
import multiprocessing
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import common

# Read before Django is set up, so that --help and a wrong argument touch no database.
_parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
_parser.add_argument("--tiny", action="store_true", help="a second per run, as CI runs it")
_parser.parse_args()

POOL_CODES = common.size("BENCH_POOL_CODES", 1_000_000, 20_000)
SECONDS = common.size("BENCH_SECONDS", 8.0, 1.0)
CLIENTS = [
    int(n) for n in os.environ.get("BENCH_CLIENTS", "2,8" if common.TINY else "8,32").split(",")
]
HTTP_WORKERS = common.size("BENCH_HTTP_WORKERS", 6, 2)
HTTP_PORT = int(os.environ.get("BENCH_HTTP_PORT", "8765"))
# Clients that have not started within this long after forking have failed.
START_TIMEOUT = 60

common.setup(API_RATE_PER_KEY="100000000/min", API_ISSUE_RATE_PER_KEY="100000000/min")

from django.db import connection, connections  # noqa: E402

from pools.api_keys import api_key_create  # noqa: E402
from pools.code_services import code_issue  # noqa: E402
from pools.counters import pool_counts_add  # noqa: E402
from pools.models import ApiOperation, Code, Pool  # noqa: E402
from pools.services import campaign_create, pool_create, pool_launch  # noqa: E402

SLUG = "issue-bench"
MODES = ("sql", "service", "http")
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


def issuer(mode: str, number: int, pool_id: int, api_key: str):
    """Return a function that issues one code the way the mode says."""
    if mode == "sql":
        import psycopg

        conn = psycopg.connect(
            common.DATABASE_URL.replace("postgres://", "postgresql://"), autocommit=True
        )
        return lambda n: conn.execute(
            BARE_SQL, {"customer": f"c{number}-{n}", "pool": pool_id}
        ).fetchone()
    if mode == "service":
        connections.close_all()
        pool = Pool.objects.get(pk=pool_id)
        return lambda n: code_issue(pool=pool, customer=f"c{number}-{n}")

    conn = http.client.HTTPConnection("127.0.0.1", HTTP_PORT, timeout=30)
    headers = {"Authorization": f"Api-Key {api_key}", "Content-Type": "application/json"}

    def issue(n):
        body = json.dumps({"customer": f"c{number}-{n}"})
        conn.request("POST", f"/api/pools/{SLUG}/issue", body, headers)
        response = conn.getresponse()
        response.read()
        assert response.status == 200, response.status

    return issue


def client(mode: str, number: int, pool_id: int, api_key: str, ready, results):
    """Issue codes for SECONDS once every client is ready; report (count, latencies, error)."""
    n, latencies, error = 0, [], None
    try:
        issue = issuer(mode, number, pool_id, api_key)
        ready.wait(START_TIMEOUT)
        deadline = time.perf_counter() + SECONDS
        while (started := time.perf_counter()) < deadline:
            issue(n)
            latencies.append(time.perf_counter() - started)
            n += 1
    except Exception as failure:  # noqa: BLE001  (reported by the parent)
        error = failure
        ready.abort()  # neither the parent nor the other clients wait for this one
    results.put((n, latencies, repr(error) if error else None))


def run(mode: str, clients: int, pool: Pool, api_key: str, repetition: int) -> float:
    """Run the clients once; print and return the issues per second."""
    reset(pool)
    connections.close_all()
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    # Every client connects before any starts issuing: forking 32 of them on two cores takes
    # a while, and a late one would find the others done.
    ready = context.Barrier(clients + 1)
    processes = [
        context.Process(target=client, args=(mode, number, pool.pk, api_key, ready, results))
        for number in range(clients)
    ]
    for process in processes:
        process.start()
    # A client that failed breaks the barrier; its error comes with the results.
    with contextlib.suppress(threading.BrokenBarrierError):
        ready.wait(START_TIMEOUT)
    counts, latencies, errors = 0, [], []
    for _ in processes:
        count, times, error = results.get(timeout=START_TIMEOUT + SECONDS)
        counts += count
        latencies.extend(times)
        if error:
            errors.append(error)
    for process in processes:
        process.join()
    if errors:
        # The clients that were only told to stop say BrokenBarrierError: show the cause first.
        errors.sort(key=lambda error: "BrokenBarrierError" in error)
        raise RuntimeError(f"{mode} client failed: {errors[0]}")
    rate = counts / SECONDS
    p99 = sorted(latencies)[int(len(latencies) * 0.99)] * 1000 if latencies else float("nan")
    check(pool, mode, counts)
    print(
        f"{mode:8} {clients:2} clients #{repetition}: {rate:8,.0f} issues/s, p99 {p99:6.1f} ms",
        flush=True,
    )
    return rate


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
        # CACHE_URL (the benchmarks' Redis, from common.setup) holds the rate limits and cached
        # keys shared by the server's processes, as in production.
    }
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "promo_project.wsgi",
            "--bind",
            f"127.0.0.1:{HTTP_PORT}",
            # Sync workers: threads in one process would queue on the interpreter lock.
            "--workers",
            str(HTTP_WORKERS),
            "--log-level",
            "warning",
        ],
        cwd=common.ROOT,
        env=env,
    )
    for _ in range(100):
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited ({server.returncode}): is port {HTTP_PORT} busy?")
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
    print(
        f"Pool of {POOL_CODES:,} codes; {SECONDS:g} s per run; {', '.join(map(str, CLIENTS))} "
        f"clients; {common.REPEAT} repetitions; PostgreSQL {connection.pg_version}",
        flush=True,
    )
    pool = prepare_pool()
    _, api_key = api_key_create(name="issue bench", operations=ApiOperation.values)
    server = start_gunicorn()
    try:
        for clients in CLIENTS:
            rates = {mode: [] for mode in MODES}
            # Repetitions take turns with the modes, so that a slow minute hits all of them.
            for repetition in range(1, common.REPEAT + 1):
                for mode in MODES:
                    rates[mode].append(run(mode, clients, pool, api_key, repetition))
            for mode, target in (("service", 0.5), ("http", 0.25)):
                ratios = [ours / sql for ours, sql in zip(rates[mode], rates["sql"], strict=True)]
                common.figure(f"issue_{mode}_{clients}/sql", ratios, ">=", target)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return common.report()


if __name__ == "__main__":
    sys.exit(main())
