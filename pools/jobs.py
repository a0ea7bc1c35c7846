"""What a job is, for every kind: an import, an assignment, an export, a withdrawal, the undo of
an import. One row owns the job (its id is the task number); the worker's task only carries the
id. The protocol, the same for every kind:

- **Queue**: the row is created `queued` with `enqueued_at`, and handed to the broker once the
  transaction commits (job_enqueue_on_commit). A broker that is down is logged, never raised:
  the request that queued the job answers as usual, and jobs_recover hands the job over again
  once no task has touched it for JOB_QUEUED_TIMEOUT seconds.
- **Claim**: a worker takes the job by a conditional update (job_claim): a queued job, or a
  running one whose heartbeat has gone stale (its worker died). Each claim is a new attempt;
  after JOB_MAX_ATTEMPTS attempts that each lost their worker, the job fails with a message
  saying so, keeping what it finished. Two tasks for one job never both run it: the second finds
  it running with a fresh heartbeat, or finished.
- **Hold**: every write of a running job is conditional on the attempt that holds it
  (job_held): a worker thought dead whose job was taken over writes nothing more.
- **Beat**: each committed step refreshes the heartbeat with its progress (job_beat).
- **Finish**: completed or failed, with a message a manager can act on (job_finish); the kind's
  announcement (an e-mail, say) is sent after commit, and is also found again by the outbox.
- **Recover**: one beat task (jobs_recover) queues again every kind's jobs whose worker died
  and hands over again the queued jobs whose task the broker lost.

Each kind registers itself (job_kind_register, from its app's ready()) with the function that
hands a job's id to the broker; pools knows nothing of the kinds above it.

**Language**: a job's report is read by staff, in their language, but a worker has no request to
tell it. What a job counts is stored as numbers and worded when shown; the few texts a job
stores (why it failed, its outcome) are written inside job_speaking(job): in the language of the
staff member who started it (job_language), which the notifications app tells pools how to find
(staff_language_register, from its ready(): pools imports nothing above it).
"""

import logging
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import InterfaceError, OperationalError, models, transaction
from django.db.models import F, Q
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

logger = logging.getLogger(__name__)

QUEUED, RUNNING, FAILED = "queued", "running", "failed"


def worker_lost(job) -> str:
    """Return the message of a job that lost its workers too often, with the way on its report
    offers, in the language of whoever started it."""
    with job_speaking(job):
        return ngettext(
            "The worker stopped during this job %(attempts)s time; what it finished is kept. "
            "%(go_on)s",
            "The worker stopped during this job %(attempts)s times; what it finished is kept. "
            "%(go_on)s",
            job.attempts,
        ) % {"attempts": job.attempts, "go_on": job.GO_ON}


# How pools finds a staff member's language (user -> language code); set by the app that
# remembers it (notifications), None until then: the default language.
_staff_language: Callable | None = None


def staff_language_register(language_of: Callable) -> None:
    """Tell pools how to find the language a staff member reads in (called from the ready() of
    the app that remembers it)."""
    global _staff_language
    _staff_language = language_of


def staff_language(user) -> str:
    """Return the language `user` reads in (the default for nobody, or before registration)."""
    if _staff_language is None or user is None:
        return settings.LANGUAGE_CODE
    return _staff_language(user)


def job_language(job) -> str:
    """Return the language of the staff member who started `job` (the default if nobody did)."""
    return staff_language(getattr(job, "created_by", None))


@contextmanager
def job_speaking(job):
    """Write the texts a job stores in the language of whoever started it."""
    with translation.override(job_language(job)):
        yield


# A database that went away (restarted, or cut off) is no failure of the job: the attempt ends
# without recording an outcome (it could not), the job stays running, and once its heartbeat is
# stale recovery runs it again from its last committed step. Each kind's run lets these through
# before it records any other error as the job's failure.
DATABASE_GONE = (OperationalError, InterfaceError)


class Job(models.Model):
    """The fields every job has besides its status (each kind declares `status` with its own
    choices, which include queued, running and failed, and lists its finished statuses in
    FINISHED)."""

    FINISHED: tuple = ()
    # What a job that failed tells its reader to do, as its report offers it.
    GO_ON = _("Run it again to go on.")

    message = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Refreshed with every committed step; a running job whose heartbeat stops is taken over.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Claims so far: each is an attempt, and every write of a running job names the one it holds.
    attempts = models.PositiveSmallIntegerField(default=0)
    # When the job was last handed to the broker, or a task last found it waiting its turn: a
    # queued job left alone longer than JOB_QUEUED_TIMEOUT lost its task and is handed over again.
    enqueued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def duration(self):
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None


@dataclass(frozen=True)
class JobKind:
    model: type[Job]
    # Hands a job's id to the broker (a Celery task's delay).
    send: Callable[[int], None]
    # Seconds without a heartbeat after which a running job's worker is taken for dead.
    heartbeat_timeout: Callable[[], int]
    # Called after commit with a job that just finished (completed or failed).
    finished: Callable[[Job], None] | None = None


_KINDS: dict[type, JobKind] = {}


def job_kind_register(
    model: type[Job],
    *,
    send: Callable[[int], None],
    heartbeat_timeout: Callable[[], int] | None = None,
    finished: Callable[[Job], None] | None = None,
) -> None:
    """Register a kind of job: how its jobs are handed to a worker, when its worker is taken for
    dead (default JOB_HEARTBEAT_TIMEOUT), and what is announced when one finishes."""
    _KINDS[model] = JobKind(
        model, send, heartbeat_timeout or (lambda: settings.JOB_HEARTBEAT_TIMEOUT), finished
    )


def job_models() -> list[type[Job]]:
    """Every kind of job registered, as its model."""
    return list(_KINDS)


def _kind(model) -> JobKind:
    return _KINDS[model._meta.concrete_model]


class ClaimLost(Exception):
    """Another attempt took the job over (this worker was thought dead): the step this attempt
    was committing is rolled back, and the attempt ends without a word."""


class Claim(Enum):
    BUSY = "busy"  # a live worker holds the job, or it must wait its turn: try again later
    GONE = "gone"  # finished already, or deleted


def job_enqueue_on_commit(job: Job) -> None:
    """Hand the job to a worker once the current transaction commits (at once outside one).

    Never raises: with the broker down the job stays queued, and jobs_recover hands it over
    again once the broker is back."""
    kind = _kind(type(job))
    job_id = job.pk

    def send():
        try:
            kind.send(job_id)
        except Exception:
            logger.warning(
                "%s %s could not be handed to a worker; it stays queued and is handed over "
                "again later",
                kind.model.__name__,
                job_id,
                exc_info=True,
            )

    transaction.on_commit(send)


def job_queue(job: Job, **fields) -> None:
    """Queue the job (again): a new one, or a failed one a manager runs again (its attempts
    start over); hand it to a worker after commit."""
    now = timezone.now()
    values = {
        "status": QUEUED,
        "message": "",
        "finished_at": None,
        "attempts": 0,
        "enqueued_at": now,
        **fields,
    }
    type(job).objects.filter(pk=job.pk).update(**values)
    for name, value in values.items():
        setattr(job, name, value)
    job_enqueue_on_commit(job)


@transaction.atomic
def job_run_again(job: Job, *, refused: str) -> Job:
    """Queue a failed job again, its row locked (its committed steps are not redone); raise
    ValidationError(`refused`) if it has not failed."""
    job = type(job).objects.select_for_update().get(pk=job.pk)
    if job.status != FAILED:
        raise ValidationError(refused, code="not_rerunnable")
    job_queue(job)
    return job


def _stale_before(kind: JobKind):
    return timezone.now() - timedelta(seconds=kind.heartbeat_timeout())


@transaction.atomic
def job_claim(model: type[Job], job_id: int, *, may_start=None) -> Job | Claim:
    """Take the job for this worker as a new attempt, and return it; or say why not.

    A queued job is taken; a running one only if its heartbeat is stale (its worker died), and
    failed instead once JOB_MAX_ATTEMPTS attempts have each lost their worker. `may_start(job)`,
    called with the job's row locked, may answer False to leave it queued (it must wait its turn).
    """
    kind = _kind(model)
    # Skip locked: a worker does not wait for another that is claiming the same job.
    job = model.objects.select_for_update(skip_locked=True).filter(pk=job_id).first()
    if job is None:
        return Claim.BUSY if model.objects.filter(pk=job_id).exists() else Claim.GONE
    if job.is_finished:
        return Claim.GONE
    if job.status == RUNNING:
        if job.heartbeat_at is not None and job.heartbeat_at >= _stale_before(kind):
            return Claim.BUSY
        if job.attempts >= settings.JOB_MAX_ATTEMPTS:
            job_finish(job, FAILED, message=worker_lost(job))
            return Claim.GONE
    elif job.status != QUEUED:
        return Claim.GONE
    if may_start is not None and not may_start(job):
        return Claim.BUSY
    now = timezone.now()
    job.status = RUNNING
    job.attempts += 1
    job.started_at = job.started_at or now
    job.heartbeat_at = now
    job.save(update_fields=["status", "attempts", "started_at", "heartbeat_at"])
    return job


def job_held(job: Job):
    """The job's row while this attempt holds it: empty once another attempt took it over (this
    worker was thought dead), or it finished."""
    return type(job).objects.filter(pk=job.pk, status=RUNNING, attempts=job.attempts)


def job_beat(job: Job, **fields) -> bool:
    """Refresh the heartbeat and write `fields` (progress) if this attempt still holds the job;
    return whether it does."""
    fields["heartbeat_at"] = timezone.now()
    held = job_held(job).update(**fields)
    for name, value in fields.items():
        if not hasattr(value, "resolve_expression"):
            setattr(job, name, value)
    return bool(held)


def job_step(job: Job, **fields) -> None:
    """Record a step's progress with the heartbeat, in the caller's transaction (the one that
    commits the step's work); raise ClaimLost, which rolls that transaction back, if this
    attempt no longer holds the job."""
    if not job_beat(job, **fields):
        raise ClaimLost


def job_finish(job: Job, status: str, *, message: str = "", at=None, **fields) -> bool:
    """End the job held by this attempt with `status` (and `message`, `fields`) at `at` (now);
    announce it after commit. Return False, writing nothing, if another attempt holds it now."""
    now = at or timezone.now()
    values = {"status": status, "finished_at": now, "heartbeat_at": now, **fields}
    if message or status == FAILED:
        values["message"] = message
    with transaction.atomic():
        if not job_held(job).update(**values):
            logger.warning(
                "%s %s: attempt %s lost its claim; outcome not recorded",
                type(job).__name__,
                job.pk,
                job.attempts,
            )
            return False
        job.refresh_from_db()
        finished = _kind(type(job)).finished
        if finished is not None:
            transaction.on_commit(lambda: finished(job), robust=True)
    return True


def job_give_back(job: Job) -> bool:
    """Put the job held by this attempt back in the queue without counting the attempt (it
    waited on something not its own fault, such as a dead worker's locks)."""
    return bool(
        job_held(job).update(status=QUEUED, attempts=F("attempts") - 1, enqueued_at=timezone.now())
    )


def job_touch_queued(job: Job) -> None:
    """Record that a task holds this queued job (it waits for its turn), so that it is not
    taken for lost."""
    type(job).objects.filter(pk=job.pk, status=QUEUED).update(enqueued_at=timezone.now())


def jobs_recover(*models_: type[Job]) -> int:
    """Queue again the running jobs whose worker died (failing those at JOB_MAX_ATTEMPTS), and
    hand over again the queued jobs that no task has touched for JOB_QUEUED_TIMEOUT seconds (the
    broker lost the task, or was down when it was queued); of every kind, or of `models_`.
    Return how many jobs were recovered.

    Runs from the beat and when a worker starts. Each job at most once per pass and per
    interval: the conditional updates let one caller through, and a task that was not lost after
    all finds the job claimed or finished and does nothing.
    """
    recovered = 0
    for kind in list(_KINDS.values()):
        if models_ and kind.model not in models_:
            continue
        recovered += _recover_dead(kind) + _recover_lost(kind)
    return recovered


def _recover_dead(kind: JobKind) -> int:
    model = kind.model
    recovered = 0
    # A running job without a heartbeat never had a live worker's: it is dead too.
    dead = Q(heartbeat_at__lt=_stale_before(kind)) | Q(heartbeat_at__isnull=True)
    for job_id in model.objects.filter(dead, status=RUNNING).values_list("pk", flat=True):
        with transaction.atomic():
            job = model.objects.select_for_update(skip_locked=True).filter(pk=job_id).first()
            if job is None or job.status != RUNNING:
                continue
            if job.heartbeat_at is not None and job.heartbeat_at >= _stale_before(kind):
                continue
            if job.attempts >= settings.JOB_MAX_ATTEMPTS:
                job_finish(job, FAILED, message=worker_lost(job))
            else:
                # What the dead worker said while running no longer holds.
                job_held(job).update(status=QUEUED, message="", enqueued_at=timezone.now())
                job_enqueue_on_commit(job)
            recovered += 1
    return recovered


def _recover_lost(kind: JobKind) -> int:
    model = kind.model
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.JOB_QUEUED_TIMEOUT)
    lost = Q(enqueued_at__lt=cutoff) | Q(enqueued_at__isnull=True, created_at__lt=cutoff)
    recovered = 0
    for job_id, enqueued_at in model.objects.filter(lost, status=QUEUED).values_list(
        "pk", "enqueued_at"
    ):
        with transaction.atomic():
            if model.objects.filter(pk=job_id, status=QUEUED, enqueued_at=enqueued_at).update(
                enqueued_at=now
            ):
                logger.warning("%s %s lost its task: queued again", model.__name__, job_id)
                job_enqueue_on_commit(model(pk=job_id))
                recovered += 1
    return recovered
