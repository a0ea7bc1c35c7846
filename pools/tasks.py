"""Celery tasks of the pools app: each calls the service of the same name; and the functions
that hand a job's id to them (registered with pools.jobs in apps.py)."""

from celery import shared_task
from celery.signals import beat_embedded_init, beat_init, before_task_publish, worker_ready
from django.conf import settings

from . import code_services, export_services, health, jobs


@shared_task
def codes_expire():
    code_services.codes_expire()


@shared_task
def code_export_run(export_id: int):
    export_services.code_export_run(export_id=export_id)


@shared_task
def code_exports_clean():
    export_services.code_exports_clean()


@shared_task
def withdrawal_run(withdrawal_id: int):
    code_services.withdrawal_run(withdrawal_id=withdrawal_id)


@shared_task
def addition_undo_run(undo_id: int):
    code_services.addition_undo_run(undo_id=undo_id)


@shared_task
def jobs_recover():
    jobs.jobs_recover()


@shared_task(ignore_result=True, expires=60)
def service_heartbeat():
    """Sent by the beat every HEARTBEAT_SECONDS; the worker that runs it is seen (/readyz)."""
    health.service_seen(health.ServiceBeat.WORKER)


_in_beat = False


@beat_init.connect
@beat_embedded_init.connect
def _this_process_is_the_beat(**kwargs):
    global _in_beat
    _in_beat = True


@before_task_publish.connect
def _beat_seen(sender=None, **kwargs):
    if _in_beat and sender == "pools.tasks.service_heartbeat":
        health.service_seen(health.ServiceBeat.BEAT)


def code_export_send(export_id: int) -> None:
    code_export_run.delay(export_id)


def withdrawal_send(withdrawal_id: int) -> None:
    withdrawal_run.delay(withdrawal_id)


def addition_undo_send(undo_id: int) -> None:
    addition_undo_run.delay(undo_id)


@worker_ready.connect
def _recover_on_start(**kwargs):
    # A worker killed outright left its jobs running: take back those whose heartbeat is already
    # stale, and look again once the others' heartbeats have gone stale (a restarted worker is
    # usually back sooner than the beat's next pass).
    jobs.jobs_recover()
    longest = max(settings.JOB_HEARTBEAT_TIMEOUT, settings.EXPORT_HEARTBEAT_TIMEOUT)
    jobs_recover.apply_async(countdown=settings.JOB_HEARTBEAT_TIMEOUT + 1)
    if longest > settings.JOB_HEARTBEAT_TIMEOUT:
        jobs_recover.apply_async(countdown=longest + 1)
