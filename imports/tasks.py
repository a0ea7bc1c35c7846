"""Celery tasks: each loads nothing but ids and calls the service of the same name."""

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings

from . import assignments, engine


@shared_task(bind=True, max_retries=None)
def import_run(self, import_id: int):
    if engine.import_run(import_id=import_id) is engine.RunOutcome.BUSY:
        # Another worker holds the job or its pool; a dead one's heartbeat soon goes stale.
        raise self.retry(countdown=settings.IMPORT_BUSY_RETRY)


@shared_task
def imports_recover_stale():
    engine.imports_recover_stale()


def import_enqueue(sender, import_id: int, **kwargs) -> None:
    """Hand a queued import to a worker; connected to signals.import_queued in apps.py."""
    import_run.delay(import_id)


@shared_task
def assignment_run(assignment_id: int):
    assignments.assignment_run(assignment_id=assignment_id)


@shared_task
def assignments_recover_stale():
    assignments.assignments_recover_stale()


def assignment_enqueue(sender, assignment_id: int, **kwargs) -> None:
    """Hand a queued assignment to a worker; connected to signals.assignment_queued."""
    assignment_run.delay(assignment_id)


@worker_ready.connect
def _recover_on_start(**kwargs):
    # A worker that was killed outright left its imports running. Take back those whose
    # heartbeat is already stale, and look again once the others' heartbeats have gone stale
    # (a restarted worker is usually back sooner than that).
    engine.imports_recover_stale()
    imports_recover_stale.apply_async(countdown=settings.IMPORT_HEARTBEAT_TIMEOUT + 1)
    assignments.assignments_recover_stale()
    assignments_recover_stale.apply_async(countdown=settings.IMPORT_HEARTBEAT_TIMEOUT + 1)
