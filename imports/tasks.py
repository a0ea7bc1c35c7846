"""Celery tasks: each loads nothing but ids and calls the service of the same name.

A worker writes what a manager later reads (an import's notes and rejected rows' reasons, an
assignment's message), so each job runs in the language of the staff member who started it.
"""

from celery import shared_task
from django.conf import settings
from django.utils import translation

from . import assignments, engine
from .models import Assignment, Import
from .signals import staff_language


def _starter_language(model, job_id: int) -> str:
    job = model.objects.filter(pk=job_id).select_related("created_by").first()
    return staff_language(job.created_by if job else None)


@shared_task(bind=True, max_retries=None)
def import_run(self, import_id: int):
    with translation.override(_starter_language(Import, import_id)):
        outcome = engine.import_run(import_id=import_id)
    if outcome is engine.RunOutcome.BUSY:
        # Another worker holds the job or its pool; a dead one's heartbeat soon goes stale.
        raise self.retry(countdown=settings.IMPORT_BUSY_RETRY)


@shared_task
def assignment_run(assignment_id: int):
    with translation.override(_starter_language(Assignment, assignment_id)):
        assignments.assignment_run(assignment_id=assignment_id)


def import_send(import_id: int) -> None:
    import_run.delay(import_id)


def assignment_send(assignment_id: int) -> None:
    assignment_run.delay(assignment_id)
