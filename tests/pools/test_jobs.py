"""The one job protocol (pools/jobs.py), held by every kind of job: imports, assignments,
exports, withdrawals and undos of imports."""

import dataclasses
from datetime import timedelta

import pytest
from django.utils import timezone

from imports.models import Assignment, Import
from pools import jobs
from pools.code_services import code_addition_create
from pools.jobs import Claim, job_beat, job_claim, job_enqueue_on_commit, job_finish, jobs_recover
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
WORKER_LOST_3 = (
    "The worker stopped during this job 3 times; what it finished is kept. Run it again to go on."
)


@pytest.fixture(params=sorted(KINDS))
def make_job(request):
    def make(**fields):
        job = KINDS[request.param](make_pool(launched=True))
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
    assert (job.status, job.message) == ("failed", WORKER_LOST_3)
    assert job_claim(model, job.pk) is Claim.GONE  # finished: left alone


def test_an_attempt_taken_over_writes_nothing(make_job):
    job = make_job()
    model = type(job)
    lost = job_claim(model, job.pk)
    model.objects.filter(pk=job.pk).update(heartbeat_at=stale(job))
    winner = job_claim(model, job.pk)

    assert job_beat(lost) is False
    assert job_finish(lost, "failed", message="too late") is False
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
    assert exhausted.message == WORKER_LOST_3
    assert sorted(sent) == sorted([(model, dead.pk), (model, silent.pk)])


def test_a_queued_job_whose_task_was_lost_is_handed_over_once_per_interval(
    make_job, sent, settings, django_capture_on_commit_callbacks
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
    fresh.refresh_from_db()
    assert fresh.status == "queued"


def test_a_broker_that_is_down_never_fails_the_caller_and_the_job_waits_for_it(
    make_job, monkeypatch, settings, django_capture_on_commit_callbacks, caplog
):
    job = make_job(enqueued_at=timezone.now())
    model = type(job)
    kind = jobs._kind(model)

    def down(pk):
        raise ConnectionRefusedError("the broker is down")

    monkeypatch.setitem(jobs._KINDS, model, dataclasses.replace(kind, send=down))
    with django_capture_on_commit_callbacks(execute=True):
        job_enqueue_on_commit(job)  # does not raise

    job.refresh_from_db()
    assert job.status == "queued"
    assert f"{model.__name__} {job.pk} could not be handed to a worker" in caplog.text

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
