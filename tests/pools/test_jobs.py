"""The one job protocol (pools/jobs.py), held by every kind of job: imports, assignments,
exports, withdrawals and undos of imports."""

import contextlib
import dataclasses
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import OperationalError, connection
from django.utils import timezone

from imports import assignments, engine
from imports.models import Assignment, Import
from pools import code_services, export_services, jobs
from pools.code_services import code_addition_create
from pools.jobs import (
    Claim,
    job_beat,
    job_claim,
    job_enqueue_on_commit,
    job_finish,
    job_give_back,
    job_queue,
    jobs_recover,
)
from pools.models import AdditionUndo, CodeExport, Withdrawal
from tests.factories import make_pool

pytestmark = pytest.mark.django_db

KINDS = {
    "import": lambda pool: Import.objects.create(pool=pool, source=Import.Source.TEXT),
    "assignment": lambda pool: Assignment.objects.create(pool=pool, file="list.csv"),
    "export": lambda pool: CodeExport.objects.create(pool=pool, file_format="csv"),
    "withdrawal": lambda pool: Withdrawal.objects.create(pool=pool, requested="W1"),
    "undo": lambda pool: AdditionUndo.objects.create(
        pool=pool, addition=code_addition_create(pool=pool)
    ),
}
# Each kind's run, and a step inside its work where an error can strike.
RUNS = {
    "import": (lambda pk: engine.import_run(import_id=pk), "imports.engine._run_rows"),
    "assignment": (
        lambda pk: assignments.assignment_run(assignment_id=pk),
        "imports.assignments._issue_all",
    ),
    "export": (
        lambda pk: export_services.code_export_run(export_id=pk),
        "pools.export_services._write_csv",
    ),
    "withdrawal": (
        lambda pk: code_services.withdrawal_run(withdrawal_id=pk),
        "pools.code_services.withdrawals._withdraw_slice",
    ),
    "undo": (
        lambda pk: code_services.addition_undo_run(undo_id=pk),
        "pools.code_services.additions._undo_slice",
    ),
}


def worker_lost_3(model) -> str:
    """The message of a job of `model` whose worker was lost three times: what to do comes from
    its report (Run again, or asking anew for an undo or a file)."""
    go_on = {
        "AdditionUndo": "Ask for the removal again on the import's report to go on.",
        "CodeExport": "Ask for the file again to go on.",
    }.get(model.__name__, "Run it again to go on.")
    return f"The worker stopped during this job 3 times; what it finished is kept. {go_on}"


@pytest.fixture(params=sorted(KINDS))
def kind(request):
    return request.param


@pytest.fixture
def make_job(kind):
    def make(**fields):
        job = KINDS[kind](make_pool(launched=True))
        if fields:
            type(job).objects.filter(pk=job.pk).update(**fields)
            job.refresh_from_db()
        return job

    return make


@pytest.fixture
def sent(monkeypatch):
    """The ids handed to the broker, by kind, instead of Celery's."""
    handed = []
    for model, kind in list(jobs._KINDS.items()):
        monkeypatch.setitem(
            jobs._KINDS,
            model,
            dataclasses.replace(kind, send=lambda pk, m=model: handed.append((m, pk))),
        )
    return handed


def logged(caplog):
    """The messages pools.jobs logged."""
    return [record.getMessage() for record in caplog.records if record.name == "pools.jobs"]


def stale(job):
    timeout = jobs._kind(type(job)).heartbeat_timeout()
    return timezone.now() - timedelta(seconds=timeout + 1)


def test_a_queued_job_is_claimed_once_then_taken_over_when_its_worker_is_gone(make_job):
    job = make_job()
    model = type(job)

    first = job_claim(model, job.pk)
    assert (first.status, first.attempts) == ("running", 1)
    assert first.started_at == first.heartbeat_at
    assert job_claim(model, job.pk) is Claim.BUSY  # a live worker holds it

    model.objects.filter(pk=job.pk).update(heartbeat_at=stale(job))
    second = job_claim(model, job.pk)
    assert (second.status, second.attempts) == ("running", 2)
    assert second.started_at == first.started_at  # the job's start, not the attempt's

    assert job_claim(model, 10**9) is Claim.GONE


def test_a_job_whose_workers_keep_dying_fails_saying_so(make_job, settings):
    job = make_job()
    model = type(job)
    model.objects.filter(pk=job.pk).update(
        status="running", attempts=settings.JOB_MAX_ATTEMPTS, heartbeat_at=stale(job)
    )

    assert job_claim(model, job.pk) is Claim.GONE
    job.refresh_from_db()
    assert (job.status, job.message) == ("failed", worker_lost_3(model))
    assert job_claim(model, job.pk) is Claim.GONE  # finished: left alone


def test_an_attempt_taken_over_writes_nothing(make_job, caplog):
    job = make_job()
    model = type(job)
    lost = job_claim(model, job.pk)
    model.objects.filter(pk=job.pk).update(heartbeat_at=stale(job))
    winner = job_claim(model, job.pk)

    assert job_beat(lost) is False
    assert job_finish(lost, "failed", message="too late") is False
    assert job_give_back(lost) is False
    assert logged(caplog) == [
        f"{model.__name__} {job.pk}: attempt 1 lost its claim; outcome not recorded"
    ]
    assert job_beat(winner) is True
    assert job_finish(winner, "completed") is True
    job.refresh_from_db()
    assert (job.status, job.message, job.attempts) == ("completed", "", 2)


def test_recovery_queues_dead_workers_jobs_and_fails_those_out_of_attempts(
    make_job, sent, django_capture_on_commit_callbacks
):
    dead = make_job(status="running", attempts=1, message="Running in worker 1.")
    type(dead).objects.filter(pk=dead.pk).update(heartbeat_at=stale(dead))
    silent = make_job(status="running", attempts=1, heartbeat_at=None)
    exhausted = make_job(status="running", attempts=3)
    type(exhausted).objects.filter(pk=exhausted.pk).update(heartbeat_at=stale(exhausted))
    alive = make_job(status="running", attempts=1, heartbeat_at=timezone.now())
    model = type(dead)

    with django_capture_on_commit_callbacks(execute=True):
        assert jobs_recover(model) == 3

    for job in (dead, silent, exhausted, alive):
        job.refresh_from_db()
    assert (dead.status, dead.message, dead.attempts) == ("queued", "", 1)
    assert (silent.status, exhausted.status, alive.status) == ("queued", "failed", "running")
    assert exhausted.message == worker_lost_3(model)
    assert sorted(sent) == sorted([(model, dead.pk), (model, silent.pk)])


def test_a_queued_job_whose_task_was_lost_is_handed_over_once_per_interval(
    make_job, sent, settings, django_capture_on_commit_callbacks, caplog
):
    settings.JOB_QUEUED_TIMEOUT = 60
    lost = make_job(enqueued_at=timezone.now() - timedelta(seconds=61))
    never_sent = make_job(enqueued_at=None, created_at=timezone.now() - timedelta(seconds=61))
    fresh = make_job(enqueued_at=timezone.now() - timedelta(seconds=59))
    model = type(lost)

    with django_capture_on_commit_callbacks(execute=True):
        assert jobs_recover(model) == 2
        assert jobs_recover(model) == 0  # not again within the interval

    assert sorted(sent) == sorted([(model, lost.pk), (model, never_sent.pk)])
    assert sorted(logged(caplog)) == sorted(
        f"{model.__name__} {pk} lost its task: queued again" for pk in (lost.pk, never_sent.pk)
    )
    fresh.refresh_from_db()
    assert fresh.status == "queued"


def test_recovery_leaves_finished_jobs_alone_however_long_ago_they_were_queued(
    make_job, sent, settings, django_capture_on_commit_callbacks
):
    settings.JOB_QUEUED_TIMEOUT = 60
    long_ago = timezone.now() - timedelta(days=1)
    model = type(make_job())
    done = [
        make_job(
            status=status,
            attempts=1,
            enqueued_at=long_ago,
            started_at=long_ago,
            heartbeat_at=long_ago,
            finished_at=long_ago,
        )
        for status in model.FINISHED
    ]

    with django_capture_on_commit_callbacks(execute=True):
        assert jobs_recover(model) == 0

    assert sent == []
    for job, status in zip(done, model.FINISHED, strict=True):
        job.refresh_from_db()
        assert (job.status, job.attempts, job.enqueued_at) == (status, 1, long_ago)


def test_a_broker_that_is_down_never_fails_the_caller_and_the_job_waits_for_it(
    make_job, monkeypatch, settings, django_capture_on_commit_callbacks, caplog
):
    job = make_job(enqueued_at=timezone.now())
    model = type(job)
    kind = jobs._kind(model)

    refused = ConnectionRefusedError("the broker is down")

    def down(pk):
        raise refused

    monkeypatch.setitem(jobs._KINDS, model, dataclasses.replace(kind, send=down))
    with django_capture_on_commit_callbacks(execute=True):
        job_enqueue_on_commit(job)  # does not raise

    job.refresh_from_db()
    assert job.status == "queued"
    # The warning carries the broker's error, for whoever reads the log.
    assert [(r.getMessage(), r.exc_info[1]) for r in caplog.records if r.name == "pools.jobs"] == [
        (
            f"{model.__name__} {job.pk} could not be handed to a worker; it stays queued and is "
            "handed over again later",
            refused,
        )
    ]

    handed = []
    monkeypatch.setitem(
        jobs._KINDS, model, dataclasses.replace(kind, send=lambda pk: handed.append(pk))
    )
    settings.JOB_QUEUED_TIMEOUT = 0
    with django_capture_on_commit_callbacks(execute=True):
        jobs_recover(model)
    assert handed == [job.pk]


def test_every_kind_of_job_is_registered_with_the_protocol():
    assert set(jobs._KINDS) == {Import, Assignment, CodeExport, Withdrawal, AdditionUndo}


def test_a_job_that_must_wait_its_turn_stays_queued(make_job):
    job = make_job()
    model = type(job)
    asked = []

    def wait(job):
        asked.append(job.pk)
        return False

    assert job_claim(model, job.pk, may_start=wait) is Claim.BUSY
    job.refresh_from_db()
    assert (job.status, job.attempts, job.started_at, asked) == ("queued", 0, None, [job.pk])

    claimed = job_claim(model, job.pk, may_start=lambda job: True)
    assert (claimed.status, claimed.attempts) == ("running", 1)


def test_a_worker_that_beats_keeps_its_job_and_sees_what_it_wrote(make_job):
    job = make_job()
    model = type(job)
    held = job_claim(model, job.pk)
    model.objects.filter(pk=job.pk).update(heartbeat_at=stale(job))

    assert job_beat(held, message="Half done.") is True
    assert held.message == "Half done."  # in hand as in the row
    assert job_claim(model, job.pk) is Claim.BUSY
    assert jobs_recover(model) == 0
    job.refresh_from_db()
    assert (job.status, job.attempts, job.message) == ("running", 1, "Half done.")


def test_a_finished_job_says_when_it_ended_and_is_announced_after_commit(
    make_job, monkeypatch, django_capture_on_commit_callbacks
):
    job = make_job()
    model = type(job)
    announced = []
    kind = jobs._kind(model)
    monkeypatch.setitem(
        jobs._KINDS, model, dataclasses.replace(kind, finished=lambda job: announced.append(job))
    )
    held = job_claim(model, job.pk)
    assert held.duration is None  # running: not over yet

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        before = timezone.now()
        assert job_finish(held, "completed") is True
        assert announced == []  # not before the commit
    for callback in callbacks:
        callback()

    assert [(j.pk, j.status) for j in announced] == [(job.pk, "completed")]
    job.refresh_from_db()
    assert before <= job.finished_at <= timezone.now()
    assert job.heartbeat_at == job.finished_at
    assert job.duration == job.finished_at - job.started_at

    # A finish at a given time (an export's expiry is counted from it) records that time.
    again = make_job()
    at = timezone.now() - timedelta(minutes=5)
    assert job_finish(job_claim(model, again.pk), "failed", message="Stopped.", at=at) is True
    again.refresh_from_db()
    assert (again.status, again.finished_at, again.message) == ("failed", at, "Stopped.")


def test_an_announcement_that_fails_leaves_the_job_finished(
    make_job, monkeypatch, django_capture_on_commit_callbacks, caplog
):
    job = make_job()
    model = type(job)

    def broken(job):
        raise ConnectionRefusedError("the mail server is down")

    monkeypatch.setitem(jobs._KINDS, model, dataclasses.replace(jobs._kind(model), finished=broken))
    with django_capture_on_commit_callbacks(execute=True):
        assert job_finish(job_claim(model, job.pk), "completed") is True  # does not raise

    job.refresh_from_db()
    assert job.status == "completed"
    assert "the mail server is down" in caplog.text


def test_a_finish_keeps_the_runs_message_unless_it_says_one_and_a_failure_says_its_own(
    make_job,
):
    done, said, failed = make_job(), make_job(), make_job()
    model = type(done)
    held = {}
    for job in (done, said, failed):
        held[job] = job_claim(model, job.pk)
        job_beat(held[job], message="2 rows were rejected.")

    job_finish(held[done], "completed")
    job_finish(held[said], "completed", message="All done.")
    job_finish(held[failed], "failed")

    for job in (done, said, failed):
        job.refresh_from_db()
    assert (done.message, said.message, failed.message) == (
        "2 rows were rejected.",
        "All done.",
        "",
    )


def test_a_failed_job_run_again_starts_over_and_is_handed_to_a_worker(
    make_job, sent, django_capture_on_commit_callbacks
):
    job = make_job()
    model = type(job)
    old = timezone.now() - timedelta(hours=1)
    model.objects.filter(pk=job.pk).update(
        status="failed",
        message=worker_lost_3(model),
        attempts=3,
        started_at=old,
        finished_at=old,
        enqueued_at=old,
    )
    job.refresh_from_db()

    with django_capture_on_commit_callbacks(execute=True):
        before = timezone.now()
        job_queue(job)
        assert sent == []  # not before the commit
    assert sent == [(model, job.pk)]

    in_hand = (job.status, job.message, job.finished_at, job.attempts, job.enqueued_at)
    job.refresh_from_db()
    assert (job.status, job.message, job.finished_at, job.attempts) == ("queued", "", None, 0)
    assert job.enqueued_at >= before
    assert in_hand == (job.status, job.message, job.finished_at, job.attempts, job.enqueued_at)
    assert job_claim(model, job.pk).attempts == 1


def test_an_attempt_given_back_is_not_counted(make_job):
    job = make_job()
    model = type(job)
    first = job_claim(model, job.pk)
    model.objects.filter(pk=job.pk).update(heartbeat_at=stale(job))
    second = job_claim(model, job.pk)
    before = timezone.now()

    assert job_give_back(second) is True

    job.refresh_from_db()
    assert (job.status, job.attempts) == ("queued", first.attempts)
    assert job.enqueued_at >= before
    assert job_claim(model, job.pk).attempts == 2


def test_a_database_gone_is_no_failure_of_the_job_and_any_other_error_is(
    kind, make_job, monkeypatch
):
    run, step = RUNS[kind]
    gone = make_job()

    def cut_off(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(step, cut_off)
    with pytest.raises(OperationalError):
        run(gone.pk)
    gone.refresh_from_db()
    # Left running, to be taken over once its heartbeat is stale.
    assert (gone.status, gone.attempts, gone.finished_at, gone.message) == ("running", 1, None, "")

    def broken(*args, **kwargs):
        raise RuntimeError("broken")

    failed = make_job()
    monkeypatch.setattr(step, broken)
    with contextlib.suppress(RuntimeError):  # some kinds raise it again once recorded
        run(failed.pk)
    failed.refresh_from_db()
    assert failed.status == "failed"
    assert "broken" in failed.message  # the manager (or whoever they ask) reads what broke


def test_recovery_of_every_kind_counts_them_all(sent, django_capture_on_commit_callbacks):
    dead = [make(make_pool(launched=True)) for make in KINDS.values()]  # one of each kind
    for job in dead:
        type(job).objects.filter(pk=job.pk).update(status="running", attempts=1)

    with django_capture_on_commit_callbacks(execute=True):
        assert jobs_recover() == len(KINDS)

    assert sorted(sent, key=repr) == sorted(((type(j), j.pk) for j in dead), key=repr)


@contextlib.contextmanager
def locked_by_another_session(*jobs_):
    """Hold the jobs' rows locked in a second session (a worker claiming or recovering them),
    while this session gives up on a lock after a second instead of waiting for ever."""
    import psycopg

    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"]
    ) as other:
        table = jobs_[0]._meta.db_table
        other.execute(
            f"SELECT id FROM {table} WHERE id = ANY(%s) FOR UPDATE", [[job.pk for job in jobs_]]
        )
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '1s'")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")
            other.rollback()


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_job_another_worker_has_locked_is_skipped_not_waited_for(make_job, sent):
    queued = make_job()
    dead = [make_job(status="running", attempts=1) for _ in range(3)]  # never beat
    model = type(queued)

    # Outside any transaction, as in a worker.
    with locked_by_another_session(queued, dead[1]):
        assert job_claim(model, queued.pk) is Claim.BUSY
        assert jobs_recover(model) == 2  # the others, before and after the locked one

    for job in (queued, *dead):
        job.refresh_from_db()
    assert [job.status for job in (queued, *dead)] == ["queued", "queued", "running", "queued"]
    assert sorted(sent) == sorted([(model, dead[0].pk), (model, dead[2].pk)])
    assert job_claim(model, queued.pk).attempts == 1  # once let go


def test_the_fields_every_job_shares_are_in_each_kinds_migrations():
    call_command("makemigrations", "pools", "imports", check=True, dry_run=True, verbosity=0)


def test_a_worker_that_beats_after_recovery_listed_its_job_keeps_it(make_job, monkeypatch):
    """Recovery lists the stale jobs, then takes each under its lock: one whose worker beat in
    between (it was slow, not dead) is left to it, and recovery goes on with the others."""
    first, slow, last = (make_job() for _ in range(3))
    model = type(slow)
    held = {job: job_claim(model, job.pk) for job in (first, slow, last)}
    model.objects.filter(pk__in=[job.pk for job in held]).update(heartbeat_at=stale(slow))
    enqueue = jobs.job_enqueue_on_commit

    def enqueue_while_slow_beats(job):
        job_beat(held[slow])
        enqueue(job)

    monkeypatch.setattr(jobs, "job_enqueue_on_commit", enqueue_while_slow_beats)

    assert jobs_recover(model) == 2

    for job in held:
        job.refresh_from_db()
    assert [job.status for job in (first, slow, last)] == ["queued", "running", "queued"]
    assert job_beat(held[slow]) is True
