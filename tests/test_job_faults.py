"""Faults a real worker meets, for every kind of job (import, assignment, export, withdrawal,
undo of an import): the worker SIGKILLed mid-job, the broker restarted empty (its queued task
lost) or down when the job was started, and PostgreSQL restarted mid-job. Each job finishes by
itself, through the one recovery of pools/jobs.py run by the beat, with every row dealt with
exactly once. The broker is a redis-server of the test's own and, for the restart, so is the
PostgreSQL cluster (the shared servers stay up)."""

import csv
from dataclasses import dataclass

import pytest
from django.db import connection
from django.urls import reverse

from imports.assignments import assignment_start
from imports.models import Assignment, Import
from imports.services import import_file_start
from pools.code_services import (
    addition_undo_start,
    code_addition_create,
    codes_withdraw,
    withdrawal_file_start,
)
from pools.counters import pool_counts_add
from pools.export_services import code_export_filters, code_export_start
from pools.models import AdditionUndo, Code, CodeExport, CodeIssue, Withdrawal
from pools.selectors import pool_stock
from tests.factories import make_manager, make_pool
from tests.imports.files import csv_upload
from tests.worker import (
    PrivatePostgres,
    Worker,
    default_database_on,
    require_services,
    wait_for,
    worker_env,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# Small steps, so that a job takes some seconds and a fault lands in the middle of it; a dead
# worker is noticed within seconds.
KNOBS = {
    "IMPORT_BATCH_SIZE": 500,
    "ASSIGN_BATCH_SIZE": 200,
    "EXPORT_CHUNK_ROWS": 300,
    "WITHDRAW_SLICE": 300,
    "UNDO_SLICE": 300,
    "JOB_HEARTBEAT_TIMEOUT": 3,
    "EXPORT_HEARTBEAT_TIMEOUT": 3,
    "JOB_QUEUED_TIMEOUT": 2,
    "JOB_RECOVERY_SECONDS": 1,
    "IMPORT_BUSY_RETRY": 1,
    "CELERY_VISIBILITY_TIMEOUT": 3600,  # a redelivery by the broker is not what is tested
}
ROWS = 30_000


def insert_codes(pool, count: int, prefix: str, addition=None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO pools_code (pool_id, code, status, times_redeemed, issued_to, addition_id)"
            " SELECT %s, %s || g, 'available', 0, '', %s FROM generate_series(1, %s) g",
            [pool.pk, prefix, addition.pk if addition else None, count],
        )
    pool_counts_add(pool_id=pool.pk, available=count)


@dataclass
class Kind:
    """How to start a job of one kind of ROWS rows, how far it got, and what exactly once
    means for it."""

    model: type
    start: callable
    done: callable  # rows dealt with and committed so far
    check: callable


def start_import(client):
    pool = make_pool()
    text = "Code\n" + "".join(f"I{i:06d}\n" for i in range(ROWS))
    return import_file_start(pool=pool, file=csv_upload(text))


def check_import(job):
    assert (job.rows_read, job.codes_added, job.duplicates_in_file) == (ROWS, ROWS, 0)
    assert Code.objects.filter(pool=job.pool).count() == ROWS


def start_assignment(client):
    pool = make_pool(launched=True)
    insert_codes(pool, ROWS + 100, "A")
    customers = "Customer\n" + "".join(f"c{i}\n" for i in range(ROWS))
    return assignment_start(pool=pool, file=csv_upload(customers))


def check_assignment(job):
    assert (job.customers_read, job.codes_issued, job.already_held) == (ROWS, ROWS, 0)
    issues = CodeIssue.objects.filter(pool=job.pool)
    assert issues.count() == issues.values("customer").distinct().count() == ROWS
    assert issues.values("code").distinct().count() == ROWS
    assert Code.objects.filter(pool=job.pool, status="issued").count() == ROWS


def start_export(client):
    pool = make_pool()
    insert_codes(pool, ROWS, "E")
    return code_export_start(
        filters=code_export_filters(pool=pool.pk), file_format="csv", user=make_manager()
    )


def check_export(export):
    with export.file.open("rb") as file:
        rows = list(csv.reader(file.read().decode("utf-8-sig").splitlines()))
    codes = [row[0] for row in rows[1:]]
    assert len(codes) == len(set(codes)) == ROWS


def start_withdrawal(client):
    pool = make_pool(launched=True)
    insert_codes(pool, ROWS, "W")
    return codes_withdraw(pool=pool, codes=[f"W{i}" for i in range(1, ROWS + 1)])


def check_withdrawal(withdrawal):
    assert (withdrawal.codes_withdrawn, withdrawal.from_stock) == (ROWS, ROWS)
    assert Code.objects.filter(pool=withdrawal.pool, status="withdrawn").count() == ROWS
    assert pool_stock(pool=withdrawal.pool) == 0


def start_withdrawal_list(client):
    pool = make_pool(launched=True)
    insert_codes(pool, ROWS, "L")
    text = "code\n" + "".join(f"L{i}\n" for i in range(1, ROWS + 1))
    return withdrawal_file_start(pool=pool, file=csv_upload(text, "leaked.csv"))


def check_withdrawal_list(withdrawal):
    check_withdrawal(withdrawal)
    assert (withdrawal.codes_requested, withdrawal.list_read) == (ROWS, True)
    assert withdrawal.list_file.name == ""  # read once, then deleted


def start_undo(client):
    pool = make_pool(launched=True)
    addition = code_addition_create(pool=pool)
    insert_codes(pool, ROWS, "U", addition)
    return addition_undo_start(addition=addition)


def check_undo(undo):
    assert (undo.removed, undo.kept) == (ROWS, 0)
    assert not Code.objects.filter(pool=undo.pool).exists()
    assert pool_stock(pool=undo.pool) == 0


KINDS = {
    "import": Kind(Import, start_import, lambda job: job.rows_read, check_import),
    "assignment": Kind(Assignment, start_assignment, lambda job: job.rows_done, check_assignment),
    "export": Kind(CodeExport, start_export, lambda job: job.rows_done, check_export),
    "withdrawal": Kind(Withdrawal, start_withdrawal, lambda job: job.codes_done, check_withdrawal),
    "withdrawal list": Kind(
        Withdrawal, start_withdrawal_list, lambda job: job.codes_done, check_withdrawal_list
    ),
    "undo": Kind(AdditionUndo, start_undo, lambda job: job.progress_done, check_undo),
}


@pytest.fixture(params=sorted(KINDS))
def kind(request):
    return KINDS[request.param]


@pytest.fixture
def broker(private_redis):
    """The broker of this test's jobs and workers, which it may stop and start."""
    return private_redis


@pytest.fixture
def workers(broker, tmp_path):
    started = []

    def start(*, beat: bool = True, **overrides):
        env = worker_env(broker.url(), **{**KNOBS, **overrides})
        worker = Worker(env, tmp_path / f"worker-{len(started)}.log", beat=beat).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def reread(job):
    """The job's row now, over a connection that may have been cut (a restarted database)."""
    try:
        job.refresh_from_db()
    except Exception:
        connection.close()
        return None
    return job


def mid_way(kind: Kind, job) -> bool:
    row = reread(job)
    return row is not None and row.status == "running" and 0 < kind.done(row) < ROWS * 0.7


def finished(job) -> bool:
    row = reread(job)
    return row is not None and row.is_finished


def assert_done_exactly_once(kind: Kind, job):
    job.refresh_from_db()
    assert job.status == "completed", job.message
    assert kind.done(job) == ROWS
    kind.check(job)


def test_a_job_whose_worker_is_killed_is_finished_by_another(kind, workers, client):
    first = workers(beat=False)
    job = kind.start(client)
    wait_for(lambda: mid_way(kind, job), timeout=60, interval=0.01, what="the job under way")
    first.kill()

    workers()  # with the beat, whose recovery takes the dead worker's job over
    wait_for(lambda: finished(job), timeout=120, what="the job taken over to finish")

    assert_done_exactly_once(kind, job)
    assert job.attempts == 2


def test_a_job_whose_task_the_broker_lost_runs_once_the_beat_finds_it(
    kind, broker, workers, client
):
    job = kind.start(client)
    broker.stop()  # restarted without persistence: the queued task is gone
    broker.start()

    workers()
    wait_for(lambda: finished(job), timeout=120, what="the job handed over again to finish")

    assert_done_exactly_once(kind, job)
    assert job.attempts == 1
    assert job.enqueued_at > job.created_at  # handed over again by the recovery


def test_a_job_started_while_the_broker_is_down_runs_once_it_is_back(kind, broker, workers, client):
    broker.stop()
    job = kind.start(client)  # no error: the job waits, queued
    job.refresh_from_db()
    assert job.status == "queued"
    broker.start()

    workers()
    wait_for(lambda: finished(job), timeout=120, what="the job to run once the broker is back")
    assert_done_exactly_once(kind, job)


def test_a_long_withdrawal_asked_in_the_admin_while_the_broker_is_down_is_queued(
    broker, client, settings
):
    pool = make_pool(launched=True)
    insert_codes(pool, 1_500, "B")
    client.force_login(make_manager())
    broker.stop()

    response = client.post(
        reverse("admin:pools_pool_withdraw", args=[pool.pk]),
        {"codes": "\n".join(f"B{i}" for i in range(1, 1_501)), "reason": "leaked"},
    )

    assert response.status_code == 302
    assert Withdrawal.objects.get().status == "queued"


@pytest.fixture
def restartable_database(django_db_blocker):
    require_services()
    cluster = PrivatePostgres().start()
    try:
        with default_database_on(cluster, django_db_blocker):
            yield cluster
    finally:
        cluster.remove()


def test_a_job_under_way_when_postgresql_restarts_finishes_by_itself(
    kind, restartable_database, workers, client
):
    workers(DATABASE_URL=restartable_database.url())
    job = kind.start(client)
    wait_for(lambda: mid_way(kind, job), timeout=60, interval=0.01, what="the job under way")
    restartable_database.stop()
    restartable_database.start()
    connection.close()

    wait_for(lambda: finished(job), timeout=120, what="the job to finish after the restart")
    assert_done_exactly_once(kind, job)
