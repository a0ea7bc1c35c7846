"""Mailings: issuing in batches against single issues, sustained single issuing, and
assigning a customer list through the worker against a plain COPY.

    make bench-mailing          (or: .venv/bin/python bench/mailing_bench.py)
    make bench-tiny             (every benchmark at a tiny size, as CI runs them)

Needs the local PostgreSQL and Redis; uses the benchmarks' own database and Redis database
(bench/common.py: BENCH_DATABASE_URL, BENCH_REDIS_URL). Parts (BENCH_PARTS, default all):
- batch: BENCH_CLIENTS (8; tiny 2) client processes for BENCH_SECONDS (8; tiny 1) each, through
  the service (code_issue against code_issue_batch of BENCH_BATCH customers, 1,000; tiny 100)
  and over HTTP (POST …/issue against …/issue-batch, gunicorn with 6 sync workers), taking
  turns, BENCH_REPEAT times. Figures: batch/single codes per second, target >= 20.
- sustained: the clients issue one code at a time through the service for BENCH_SUSTAIN_SECONDS
  (300; tiny 6); the figure is the rate of the run's last BENCH_SUSTAIN_WINDOW seconds (30; tiny
  1; at most half the run) over its first's, target >= 0.8. The pool is vacuumed before each
  run, not during it.
- assign: a CSV of BENCH_CUSTOMERS customers (1,000,000; tiny 5,000) assigned from a pool by
  one Celery worker, end to end (upload to the list with codes written), against a plain COPY of
  the same rows into the codes table. Figure: assignment / COPY time, target <= 3.
After every run it checks that no code went to two customers and that every code a client was
told about (or every customer of the list) is recorded.
"""

import argparse
import contextlib
import http.client
import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import common

_parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
_parser.add_argument("--tiny", action="store_true", help="seconds per part, as CI runs it")
_parser.parse_args()

POOL_CODES = common.size("BENCH_POOL_CODES", 2_000_000, 50_000)
SECONDS = common.size("BENCH_SECONDS", 8.0, 1.0)
CLIENTS = common.size("BENCH_CLIENTS", 8, 2)
BATCH = common.size("BENCH_BATCH", 1000, 100)
SUSTAIN_SECONDS = common.size("BENCH_SUSTAIN_SECONDS", 300.0, 6.0)
# The issue's figure compares the first and the last 30 seconds, whatever the run's length.
SUSTAIN_WINDOW = min(common.size("BENCH_SUSTAIN_WINDOW", 30.0, 1.0), SUSTAIN_SECONDS / 2)
CUSTOMERS = common.size("BENCH_CUSTOMERS", 1_000_000, 5_000)
PARTS = os.environ.get("BENCH_PARTS", "batch,sustained,assign").split(",")
HTTP_WORKERS = common.size("BENCH_HTTP_WORKERS", 6, 2)
HTTP_PORT = int(os.environ.get("BENCH_HTTP_PORT", "8766"))
START_TIMEOUT = 60

common.setup(API_RATE_PER_KEY="100000000/min", API_ISSUE_RATE_PER_KEY="100000000/min")

from django.core.files.uploadedfile import SimpleUploadedFile  # noqa: E402
from django.db import connection, connections  # noqa: E402

from pools.api_keys import api_key_create  # noqa: E402
from pools.code_services import code_issue, code_issue_batch  # noqa: E402
from pools.counters import pool_counts_add  # noqa: E402
from pools.models import ApiOperation, Code, Pool  # noqa: E402
from pools.services import campaign_create, pool_create, pool_launch  # noqa: E402

SLUG = "mailing-bench"


def prepare_pool(slug: str, codes: int) -> Pool:
    pool = Pool.objects.filter(slug=slug).first()
    if pool and Code.objects.filter(pool=pool).count() == codes:
        return pool
    if pool:
        with connection.cursor() as cursor:
            for table in ("pools_codeissue", "pools_poolcounter"):
                cursor.execute(f"DELETE FROM {table} WHERE pool_id = %s", [pool.pk])
            cursor.execute("DELETE FROM imports_assignment WHERE pool_id = %s", [pool.pk])
            cursor.execute("DELETE FROM pools_code WHERE pool_id = %s", [pool.pk])
        pool.delete()
    pool = pool_create(campaign=campaign_create(name=slug), slug=slug, description="bench")
    pool_launch(pool=pool)
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(
            "COPY pools_code (pool_id, code, status, issued_to, times_redeemed) FROM STDIN"
        ) as copy,
    ):
        for start in range(0, codes, 100_000):
            copy.write(
                "".join(
                    f"{pool.pk}\tM{n:012d}\tavailable\t\t0\n"
                    for n in range(start, min(codes, start + 100_000))
                )
            )
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
    pool_counts_add(pool_id=pool.pk, available=Code.objects.filter(pool=pool).count())


def check(pool: Pool, what: str, told: int) -> None:
    """No code went to two customers; every code a client was told about is recorded."""
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
        cursor.execute(
            "SELECT count(*) FROM (SELECT customer FROM pools_codeissue WHERE pool_id = %s "
            "GROUP BY customer HAVING count(*) > 1) twice",
            [pool.pk],
        )
        customers_twice = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM pools_codeissue WHERE pool_id = %s", [pool.pk])
        recorded = cursor.fetchone()[0]
    assert twice == 0, f"{what}: {twice} codes were issued twice"
    assert customers_twice == 0, f"{what}: {customers_twice} customers got two codes"
    assert issued == told == recorded, f"{what}: told {told}, issued {issued}, recorded {recorded}"


# Clients


def issuer(mode: str, number: int, pool_id: int, api_key: str):
    """Return a function that issues the n-th call's codes and returns how many it got."""
    if mode.endswith("service"):
        connections.close_all()
        pool = Pool.objects.get(pk=pool_id)
        if mode == "single-service":

            def single(n):
                code_issue(pool=pool, customer=f"c{number}-{n}")
                return 1

            return single

        def batch(n):
            customers = [f"c{number}-{n}-{i}" for i in range(BATCH)]
            return len(
                code_issue_batch(
                    pool=pool, customers=customers, idempotency_key=f"k{number}-{n}"
                ).issued
            )

        return batch

    conn = http.client.HTTPConnection("127.0.0.1", HTTP_PORT, timeout=60)
    headers = {"Authorization": f"Api-Key {api_key}", "Content-Type": "application/json"}

    def call(n):
        if mode == "single-http":
            body, path = {"customer": f"c{number}-{n}"}, "issue"
        else:
            customers = [f"c{number}-{n}-{i}" for i in range(BATCH)]
            body = {"customers": customers, "idempotency_key": f"k{number}-{n}"}
            path = "issue-batch"
        conn.request("POST", f"/api/pools/{SLUG}/{path}", json.dumps(body), headers)
        response = conn.getresponse()
        data = response.read()
        assert response.status == 200, (response.status, data[:300])
        return 1 if mode == "single-http" else len(json.loads(data)["issued"])

    return call


def client(mode, number, pool_id, api_key, seconds, ready, results):
    """Issue for `seconds` once every client is ready; report (codes, [(time, codes)], error)."""
    total, marks, error = 0, [], None
    try:
        issue = issuer(mode, number, pool_id, api_key)
        ready.wait(START_TIMEOUT)
        started = time.perf_counter()
        deadline = started + seconds
        n = 0
        while time.perf_counter() < deadline:
            got = issue(n)
            total += got
            marks.append((time.perf_counter() - started, got))
            n += 1
    except Exception as failure:  # noqa: BLE001  (reported by the parent)
        error = failure
        ready.abort()
    results.put((total, marks, repr(error) if error else None))


def run(mode: str, pool: Pool, api_key: str, seconds: float) -> tuple[int, list]:
    reset(pool)
    connections.close_all()
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    ready = context.Barrier(CLIENTS + 1)
    processes = [
        context.Process(
            target=client, args=(mode, number, pool.pk, api_key, seconds, ready, results)
        )
        for number in range(CLIENTS)
    ]
    for process in processes:
        process.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        ready.wait(START_TIMEOUT)
    total, marks, errors = 0, [], []
    for _ in processes:
        count, times, error = results.get(timeout=START_TIMEOUT + seconds + 60)
        total += count
        marks.extend(times)
        if error:
            errors.append(error)
    for process in processes:
        process.join()
    if errors:
        errors.sort(key=lambda error: "BrokenBarrierError" in error)
        raise RuntimeError(f"{mode} client failed: {errors[0]}")
    check(pool, mode, total)
    return total, marks


def start_gunicorn() -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "bench",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
    }
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "promo_project.wsgi",
            "--bind",
            f"127.0.0.1:{HTTP_PORT}",
            "--workers",
            str(HTTP_WORKERS),
            "--timeout",
            "120",
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


# Parts


def part_batch(pool: Pool) -> None:
    _, api_key = api_key_create(name="mailing bench", operations=ApiOperation.values)
    server = start_gunicorn()
    modes = ("single-service", "batch-service", "single-http", "batch-http")
    rates = {mode: [] for mode in modes}
    try:
        for repetition in range(1, common.REPEAT + 1):
            for mode in modes:
                total, _ = run(mode, pool, api_key, SECONDS)
                rates[mode].append(total / SECONDS)
                print(
                    f"{mode:15} {CLIENTS} clients #{repetition}: {total / SECONDS:9,.0f} codes/s",
                    flush=True,
                )
    finally:
        server.terminate()
        server.wait(timeout=30)
    for kind in ("service", "http"):
        ratios = [
            b / s for b, s in zip(rates[f"batch-{kind}"], rates[f"single-{kind}"], strict=True)
        ]
        common.figure(f"batch_{kind}/single_{kind}", ratios, ">=", 20)


def part_sustained(pool: Pool) -> None:
    window = SUSTAIN_WINDOW
    ratios = []
    for repetition in range(1, common.REPEAT + 1):
        total, marks = run("single-service", pool, "", SUSTAIN_SECONDS)
        first = sum(got for at, got in marks if at < window) / window
        last = sum(got for at, got in marks if SUSTAIN_SECONDS - window <= at) / window
        ratios.append(last / first)
        print(
            f"sustained {CLIENTS} clients {SUSTAIN_SECONDS:g} s #{repetition}: {total:,} codes; "
            f"first {window:g} s {first:,.0f}/s, last {window:g} s {last:,.0f}/s",
            flush=True,
        )
    common.figure("sustained_last/first", ratios, ">=", 0.8)


def customers_csv() -> bytes:
    return (
        "Customer,Email\n" + "".join(f"cust{n},c{n}@example.com\n" for n in range(CUSTOMERS))
    ).encode()


def copy_seconds(data: bytes) -> float:
    """A plain COPY of the same rows into the codes table (a scratch pool), timed."""
    scratch = pool_create(campaign=campaign_create(name="copy"), description="copy scratch")
    rows = "".join(
        f"{scratch.pk}\t{line.split(',')[0]}\tissued\t{line.split(',')[1]}\t0\n"
        for line in data.decode().splitlines()[1:]
    )
    connections.close_all()
    with connection.cursor() as cursor:
        started = time.perf_counter()
        with cursor.cursor.copy(
            "COPY pools_code (pool_id, code, status, issued_to, times_redeemed) FROM STDIN"
        ) as copy:
            copy.write(rows)
        elapsed = time.perf_counter() - started
        cursor.execute("DELETE FROM pools_code WHERE pool_id = %s", [scratch.pk])
    scratch.delete()
    return elapsed


def start_worker() -> subprocess.Popen:
    log = open(common.CACHE / "mailing-worker.log", "ab")  # noqa: SIM115
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "celery"),
            "-A",
            "promo_project",
            "worker",
            "--concurrency=1",
            "--loglevel=WARNING",
        ],
        cwd=common.ROOT,
        env=os.environ.copy(),
        stdout=log,
        stderr=log,
    )


def part_assign(pool: Pool) -> None:
    from imports.assignments import assignment_start
    from imports.models import Assignment

    data = customers_csv()
    worker = start_worker()
    ratios = []
    try:
        time.sleep(3)  # the worker connects
        for repetition in range(1, common.REPEAT + 1):
            copy = copy_seconds(data)
            reset(pool)
            connections.close_all()
            started = time.perf_counter()
            job = assignment_start(
                pool=pool, file=SimpleUploadedFile("customers.csv", data, "text/csv")
            )
            while not job.is_finished:
                time.sleep(0.2)
                job.refresh_from_db()
                if time.perf_counter() - started > 3600:
                    raise RuntimeError("the assignment did not finish within an hour")
            elapsed = time.perf_counter() - started
            assert job.status == Assignment.Status.COMPLETED, (job.status, job.message)
            assert job.codes_issued == CUSTOMERS, job.codes_issued
            check(pool, "assign", CUSTOMERS)
            with job.result.open("rb") as stored:
                lines = stored.read().decode().splitlines()
            assert len(lines) == CUSTOMERS + 1 and all(line.count(",") == 2 for line in lines)
            assert all(line.rsplit(",", 1)[1] for line in lines[1:]), "a customer has no code"
            ratios.append(elapsed / copy)
            print(
                f"assign {CUSTOMERS:,} customers #{repetition}: {elapsed:6.1f} s; "
                f"COPY of the same rows {copy:5.2f} s",
                flush=True,
            )
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    common.figure("assign/copy", ratios, "<=", 3)


def main() -> int:
    print(
        f"Pool of {POOL_CODES:,} codes; {CLIENTS} clients; batches of {BATCH:,}; "
        f"{SECONDS:g} s per run; sustained {SUSTAIN_SECONDS:g} s; {CUSTOMERS:,} customers; "
        f"{common.REPEAT} repetitions; PostgreSQL {connection.pg_version}",
        flush=True,
    )
    pool = prepare_pool(SLUG, POOL_CODES)
    if "batch" in PARTS:
        part_batch(pool)
    if "sustained" in PARTS:
        part_sustained(pool)
    if "assign" in PARTS:
        part_assign(pool)
    return common.report()


if __name__ == "__main__":
    sys.exit(main())
