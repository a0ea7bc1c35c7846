"""Assignments issued on two connections at once (PostgreSQL, single-use codes): slices commit
in file order, a customer in two slices in flight gets one code, the pool's turn, the lock
timeout. Run in-process, outside a test transaction, so that the lanes' connections see the
rows (the job's own worker tests run them through Celery)."""

import threading
import time

import psycopg
import pytest
from django.db import connection, connections
from django.db.models import F
from django.utils import timezone

from imports import assignments
from imports.assignments import assignment_rerun, assignment_run
from imports.models import Assignment
from pools.models import CodeIssue, Pool
from pools.services import pool_pause, pool_resume
from tests.factories import make_codes, make_pool, on_next_stock_change, result_rows, watching_pool
from tests.imports.files import csv_upload

pytestmark = [
    pytest.mark.postgresql,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("fails_if_stuck"),
]


@pytest.fixture(autouse=True)
def _two_lanes(settings):
    settings.ASSIGN_CONNECTIONS = 2
    settings.ASSIGN_BATCH_SIZE = 2


def queued(pool, customers: list[str]) -> Assignment:
    text = "Customer\n" + "".join(f"{c}\n" for c in customers)
    upload = csv_upload(text, name="list.csv")
    return Assignment.objects.create(
        pool=pool, file=upload, file_name="list.csv", progress_total=len(text)
    )


def held() -> dict[str, str]:
    return dict(
        CodeIssue.objects.filter(released_at__isnull=True).values_list("customer", "code__code")
    )


def run_in_thread(job_id: int) -> threading.Thread:
    """assignment_run in a thread of its own (its own connection, closed when it ends)."""

    def run():
        try:
            assignment_run(assignment_id=job_id)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def other_connection():
    settings = connection.settings_dict
    return psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        host=settings["HOST"],
        port=settings["PORT"] or 5432,
        autocommit=True,
    )


def test_side_by_side_slices_give_each_customer_one_code_and_the_list_its_codes():
    pool = make_pool(launched=True)
    make_codes(pool, [f"C{i}" for i in range(20)])
    # c2 and c5 each in two slices issued side by side; c1 in two slices one apart.
    customers = ["c1", "c2", "c2", "c3", "c4", "c1", "c5", "c6", "c5", "c7"]

    job = assignment_run(assignment_id=queued(pool, customers).pk)

    assert job.status == Assignment.Status.COMPLETED, job.message
    assert (job.rows_done, job.customers_read, job.codes_issued, job.already_held) == (
        10,
        10,
        7,
        3,
    )
    codes = held()
    assert sorted(codes) == [f"c{i}" for i in range(1, 8)]
    assert len(set(codes.values())) == 7
    assert result_rows(job) == [["Customer", "Code"]] + [[c, codes[c]] for c in customers]


def test_a_customer_left_short_in_one_slice_is_short_in_the_next_and_counted_once():
    pool = make_pool(launched=True)
    make_codes(pool, ["ONLY"])

    job = assignment_run(assignment_id=queued(pool, ["c1", "c2", "c2"]).pk)

    assert job.status == Assignment.Status.COMPLETED_WITH_SHORTFALL, job.message
    assert (job.customers_read, job.codes_issued, job.already_held, job.shortfall) == (
        3,
        1,
        0,
        1,
    )
    assert job.short_sample == ["c2"]
    assert result_rows(job) == [["Customer", "Code"], ["c1", "ONLY"], ["c2", ""], ["c2", ""]]


def test_a_pool_paused_mid_job_leaves_the_first_rows_issued_and_a_run_after_resume_ends_it():
    pool = watching_pool()
    make_codes(pool, [f"P{i}" for i in range(12)])
    customers = [f"c{i}" for i in range(10)]

    with on_next_stock_change(lambda pool: pool_pause(pool=Pool.objects.get(pk=pool.pk))):
        job = assignment_run(assignment_id=queued(pool, customers).pk)

    assert job.status == Assignment.Status.FAILED
    assert job.message.startswith("The pool stopped issuing (The pool is paused")
    # Slices commit in file order: what was issued is the list's first rows_done rows, and
    # the slice issued beside the one refused was rolled back with it.
    assert job.rows_done in (2, 4)
    assert sorted(held()) == sorted(customers[: job.rows_done])
    assert job.codes_issued == job.rows_done

    pool_resume(pool=Pool.objects.get(pk=pool.pk))
    assignment_rerun(job=job)
    job = assignment_run(assignment_id=job.pk)

    assert job.status == Assignment.Status.COMPLETED, job.message
    assert (job.customers_read, job.codes_issued) == (10, 10)
    codes = held()
    assert result_rows(job) == [["Customer", "Code"]] + [[c, codes[c]] for c in customers]


def test_an_assignment_waits_for_another_of_the_same_pool_with_its_heartbeat_kept(monkeypatch):
    monkeypatch.setattr(assignments, "POOL_TURN_POLL_SECONDS", 0.05)
    pool = make_pool(launched=True)
    make_codes(pool, ["A", "B"])
    job = queued(pool, ["c1", "c2"])
    Assignment.objects.filter(pk=job.pk).update(status=Assignment.Status.QUEUED)
    with other_connection() as other:
        other.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [f"assignment:{pool.pk}"])
        runner = run_in_thread(job.pk)
        first_beat = None
        for _ in range(200):
            job.refresh_from_db()
            if first_beat is None and job.heartbeat_at:
                first_beat = job.heartbeat_at
            elif first_beat and job.heartbeat_at != first_beat:
                break
            time.sleep(0.02)
        assert job.heartbeat_at != first_beat, "the waiting job kept no heartbeat"
        assert (job.status, job.rows_done, held()) == (Assignment.Status.RUNNING, 0, {})
        other.execute(
            "SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [f"assignment:{pool.pk}"]
        )
        runner.join(timeout=30)
    job.refresh_from_db()
    assert job.status == Assignment.Status.COMPLETED, job.message
    assert sorted(held()) == ["c1", "c2"]


def test_a_job_taken_over_while_waiting_for_its_pool_issues_nothing(monkeypatch):
    monkeypatch.setattr(assignments, "POOL_TURN_POLL_SECONDS", 0.05)
    pool = make_pool(launched=True)
    make_codes(pool, ["A", "B"])
    job = queued(pool, ["c1", "c2"])
    with other_connection() as other:
        other.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [f"assignment:{pool.pk}"])
        runner = run_in_thread(job.pk)
        for _ in range(200):
            if Assignment.objects.filter(pk=job.pk, heartbeat_at__isnull=False).exists():
                break
            time.sleep(0.02)
        # Another worker takes the job over (this one was thought dead): a new attempt.
        Assignment.objects.filter(pk=job.pk).update(attempts=F("attempts") + 1)
        runner.join(timeout=30)
        other.execute(
            "SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [f"assignment:{pool.pk}"]
        )
    assert not runner.is_alive()
    job.refresh_from_db()
    assert (job.status, job.rows_done, held()) == (Assignment.Status.RUNNING, 0, {})
    assert not job.result  # nor a list with codes


def test_an_assignment_that_failed_lets_the_next_one_of_its_pool_run(monkeypatch):
    """A worker's connection outlives its jobs: one that failed on an unexpected error gives
    its pool's turn back, so that the next assignment of the pool, in another worker, runs."""
    monkeypatch.setattr(assignments, "POOL_TURN_POLL_SECONDS", 0.05)
    pool = make_pool(launched=True)
    make_codes(pool, ["A", "B"])
    broken, job = queued(pool, ["c1"]), queued(pool, ["c2"])
    real_issue = assignments._issue_in_order

    def breaks(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(assignments, "_issue_in_order", breaks)
    with pytest.raises(RuntimeError):
        assignment_run(assignment_id=broken.pk)  # on this thread's connection, kept open
    monkeypatch.setattr(assignments, "_issue_in_order", real_issue)

    runner = run_in_thread(job.pk)
    runner.join(timeout=10)
    if runner.is_alive():  # still waiting for the pool: end it as a takeover would
        Assignment.objects.filter(pk=job.pk).update(attempts=F("attempts") + 1)
        runner.join(timeout=10)
    broken.refresh_from_db()
    job.refresh_from_db()
    assert (broken.status, broken.message) == (Assignment.Status.FAILED, "out of memory")
    assert job.status == Assignment.Status.COMPLETED, "it waited for the failed one's pool"
    assert held() == {"c2": "A"}


def test_a_slice_that_waits_too_long_for_a_lock_is_done_again(monkeypatch):
    monkeypatch.setattr(assignments, "LOCK_TIMEOUT", "100ms")
    pool = make_pool(launched=True)
    make_codes(pool, [f"C{i}" for i in range(6)])
    job = queued(pool, ["c1", "c2", "c3", "c4"])
    claimed, locked = threading.Event(), threading.Event()
    real_claim = assignments.job_claim

    def claim_then_wait(*args, **kwargs):
        taken = real_claim(*args, **kwargs)
        claimed.set()
        locked.wait(timeout=10)
        return taken

    monkeypatch.setattr(assignments, "job_claim", claim_then_wait)
    issues = []
    real_issue = assignments._SliceIssuer.issue

    def issue(self, customers, **kwargs):
        issues.append(customers)
        return real_issue(self, customers, **kwargs)

    monkeypatch.setattr(assignments._SliceIssuer, "issue", issue)
    runner = run_in_thread(job.pk)
    assert claimed.wait(timeout=10)
    with other_connection() as other, other.transaction():
        # Holds the job's row once the job is claimed: each slice's count update waits on it
        # past the lock timeout.
        other.execute("SELECT id FROM imports_assignment WHERE id = %s FOR UPDATE", [job.pk])
        locked.set()
        time.sleep(0.25)
    runner.join(timeout=30)

    job.refresh_from_db()
    assert job.status == Assignment.Status.COMPLETED, job.message
    assert issues > [["c1", "c2"], ["c3", "c4"]], "no slice was done again"
    assert job.codes_issued == 4
    assert sorted(held()) == ["c1", "c2", "c3", "c4"]


# 4: the stop is seen among the last slices in flight; 6: while more slices are still to be sent.
@pytest.mark.parametrize("count", [4, 6])
def test_a_job_taken_over_mid_run_stops_after_its_committed_slices_and_records_nothing_more(count):
    """This worker was thought dead and another attempt took the job over after the first
    slice: this one commits nothing more, and neither stores a list nor ends the job."""
    pool = watching_pool()
    make_codes(pool, [f"T{i}" for i in range(6)])
    job = queued(pool, [f"c{i}" for i in range(1, count + 1)])
    started = timezone.now()
    seen = {}

    def take_over(pool):
        # After the first slice committed (its stock change is announced after commit).
        seen.update(Assignment.objects.values("rows_done", "heartbeat_at").get(pk=job.pk))
        Assignment.objects.filter(pk=job.pk).update(attempts=F("attempts") + 1)

    with on_next_stock_change(take_over):
        returned = assignment_run(assignment_id=job.pk)

    assert seen["rows_done"] == 2 and seen["heartbeat_at"] >= started  # the slice beat
    job.refresh_from_db()
    assert (returned.status, job.status, job.attempts) == (
        Assignment.Status.RUNNING,
        Assignment.Status.RUNNING,
        2,
    )
    assert (job.rows_done, job.codes_issued, job.finished_at, job.result.name) == (
        2,
        2,
        None,
        "",
    )
    assert sorted(held()) == ["c1", "c2"]


def test_with_one_connection_configured_the_slices_are_issued_on_the_callers_own(settings):
    settings.ASSIGN_CONNECTIONS = 1
    pool = watching_pool()
    make_codes(pool, ["O1", "O2", "O3"])
    announced_in = []

    with on_next_stock_change(lambda pool: announced_in.append(threading.current_thread())):
        job = assignment_run(assignment_id=queued(pool, ["c1", "c2", "c3"]).pk)

    assert job.status == Assignment.Status.COMPLETED, job.message
    assert announced_in == [threading.main_thread()]
    assert result_rows(job) == [["Customer", "Code"], ["c1", "O1"], ["c2", "O2"], ["c3", "O3"]]


def test_the_next_slice_is_issued_while_the_one_before_it_waits_to_commit(monkeypatch):
    """The point of two lanes: a slice's statements run while the slice before it has not
    committed yet (here it waits for the job's row, held by another connection)."""
    pool = make_pool(launched=True)
    make_codes(pool, [f"C{i}" for i in range(4)])
    job = queued(pool, ["c1", "c2", "c3", "c4"])
    claimed, locked = threading.Event(), threading.Event()
    real_claim, real_issue = assignments.job_claim, assignments._SliceIssuer.issue
    issued = []

    def claim_then_wait(*args, **kwargs):
        taken = real_claim(*args, **kwargs)
        claimed.set()
        locked.wait(timeout=10)
        return taken

    def issue(self, customers, **kwargs):
        outcome = real_issue(self, customers, **kwargs)
        issued.append(customers)
        return outcome

    monkeypatch.setattr(assignments, "job_claim", claim_then_wait)
    monkeypatch.setattr(assignments._SliceIssuer, "issue", issue)
    runner = run_in_thread(job.pk)
    assert claimed.wait(timeout=10)
    with other_connection() as other, other.transaction():
        other.execute("SELECT id FROM imports_assignment WHERE id = %s FOR UPDATE", [job.pk])
        locked.set()
        for _ in range(250):
            if len(issued) == 2:
                break
            time.sleep(0.02)
        issued_while_held = sorted(issued)
        committed = Assignment.objects.get(pk=job.pk).rows_done
    runner.join(timeout=30)

    assert (issued_while_held, committed) == ([["c1", "c2"], ["c3", "c4"]], 0)
    job.refresh_from_db()
    assert job.status == Assignment.Status.COMPLETED, job.message
    assert sorted(held()) == ["c1", "c2", "c3", "c4"]
