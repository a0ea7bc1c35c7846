"""Celery tasks: each loads nothing but ids and calls the service of the same name."""

from celery import shared_task
from django.conf import settings

from . import assignments, engine


@shared_task(bind=True, max_retries=None)
def import_run(self, import_id: int):
    if engine.import_run(import_id=import_id) is engine.RunOutcome.BUSY:
        # Another worker holds the job or its pool; a dead one's heartbeat soon goes stale.
        raise self.retry(countdown=settings.IMPORT_BUSY_RETRY)


@shared_task
def assignment_run(assignment_id: int):
    assignments.assignment_run(assignment_id=assignment_id)


def import_send(import_id: int) -> None:
    import_run.delay(import_id)


def assignment_send(assignment_id: int) -> None:
    assignment_run.delay(assignment_id)
