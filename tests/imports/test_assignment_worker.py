"""Assignments run by a real Celery worker on the local Redis and PostgreSQL."""

import pytest
from django.db.models import Count

from imports.assignments import assignment_start
from imports.models import Assignment
from pools.models import Code, CodeIssue
from tests.factories import finished, make_pool
from tests.imports.files import csv_upload
from tests.worker import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CUSTOMERS = 60_000
KNOBS = {
    # Small slices: set-based issuing gets through 60,000 customers in a few seconds, and the
    # kill must land in the first half.
    "ASSIGN_BATCH_SIZE": 200,
    "JOB_HEARTBEAT_TIMEOUT": 3,
    "CELERY_VISIBILITY_TIMEOUT": 5,
}


def customer_list(first: int, last: int):
    return csv_upload("Customer,Email\n" + "".join(f"c{i},c{i}@x\n" for i in range(first, last)))


def pool_with_codes(count: int):
    pool = make_pool(launched=True)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO pools_code (pool_id, code, status, times_redeemed, issued_to)"
            " SELECT %s, 'K' || g, 'available', 0, '' FROM generate_series(1, %s) g",
            [pool.pk, count],
        )
    from pools.counters import pool_counts_add

    pool_counts_add(pool_id=pool.pk, available=count)
    return pool


def assert_one_code_each(pool, customers: int):
    assert CodeIssue.objects.filter(pool=pool).count() == customers
    assert Code.objects.filter(pool=pool, status="issued").count() == customers
    twice = (CodeIssue.objects.filter(pool=pool).values("customer").annotate(n=Count("id"))).filter(
        n__gt=1
    )
    assert not twice.exists()
    assert not CodeIssue.objects.values("code").annotate(n=Count("id")).filter(n__gt=1).exists()


def test_assignment_killed_mid_job_resumes_without_a_second_code_for_anyone(worker_factory):
    worker = worker_factory(**KNOBS)
    pool = pool_with_codes(CUSTOMERS + 1000)
    job = assignment_start(pool=pool, file=customer_list(0, CUSTOMERS))

    def mid_way():
        job.refresh_from_db()
        return job.status == Assignment.Status.RUNNING and 0 < job.rows_done < CUSTOMERS // 2

    wait_for(mid_way, timeout=60, what="the assignment to be under way")
    worker.kill()
    job.refresh_from_db()
    assert job.status == Assignment.Status.RUNNING
    worker_factory(**KNOBS)

    wait_for(lambda: finished(job), timeout=180, what="a new worker to finish the assignment")
    assert job.status == Assignment.Status.COMPLETED, job.message
    assert (job.customers_read, job.codes_issued, job.already_held) == (CUSTOMERS, CUSTOMERS, 0)
    assert_one_code_each(pool, CUSTOMERS)
    with job.result.open("rb") as stored:
        lines = stored.read().decode().splitlines()
    assert len(lines) == CUSTOMERS + 1 and all(line.split(",")[2] for line in lines[1:])


def test_overlapping_assignments_at_the_same_time_give_each_customer_one_code(worker_factory):
    worker_factory(**{**KNOBS, "ASSIGN_BATCH_SIZE": 200})
    worker_factory(**{**KNOBS, "ASSIGN_BATCH_SIZE": 200})
    pool = pool_with_codes(20_000)
    first = assignment_start(pool=pool, file=customer_list(0, 6000))
    second = assignment_start(pool=pool, file=customer_list(3000, 9000))

    wait_for(lambda: finished(first) and finished(second), timeout=120, what="both to finish")
    assert first.status == second.status == Assignment.Status.COMPLETED
    assert first.codes_issued + second.codes_issued == 9000
    assert first.already_held + second.already_held == 3000
    assert_one_code_each(pool, 9000)
