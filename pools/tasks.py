"""Celery tasks of the pools app: each calls the service of the same name; and the receivers
that queue them (connected in apps.py)."""

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings

from . import code_services, export_services


@shared_task
def codes_expire():
    code_services.codes_expire()


@shared_task
def code_export_run(export_id: int):
    export_services.code_export_run(export_id=export_id)


@shared_task
def code_exports_clean():
    for export_id in export_services.code_exports_clean():
        code_export_run.delay(export_id)


def code_export_enqueue(sender, export_id: int, **kwargs) -> None:
    """Hand a queued export to a worker; connected to signals.export_queued in apps.py."""
    code_export_run.delay(export_id)


@worker_ready.connect
def _recover_exports_on_start(**kwargs):
    # A worker killed outright left its exports running: run again those already stale, and
    # look again once the others' heartbeats have gone stale.
    code_exports_clean.delay()
    code_exports_clean.apply_async(countdown=settings.EXPORT_HEARTBEAT_TIMEOUT + 1)


@shared_task
def withdrawal_run(withdrawal_id: int):
    code_services.withdrawal_run(withdrawal_id=withdrawal_id)


def withdrawal_enqueue(sender, withdrawal_id: int, **kwargs) -> None:
    """Hand a queued withdrawal to a worker; connected to signals.withdrawal_queued."""
    withdrawal_run.delay(withdrawal_id)
