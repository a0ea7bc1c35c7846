"""Celery tasks of the pools app: each calls the service of the same name."""

from celery import shared_task

from . import code_services


@shared_task
def codes_expire():
    code_services.codes_expire()


@shared_task
def withdrawal_run(withdrawal_id: int):
    code_services.withdrawal_run(withdrawal_id=withdrawal_id)


def withdrawal_enqueue(sender, withdrawal_id: int, **kwargs) -> None:
    """Hand a queued withdrawal to a worker; connected to signals.withdrawal_queued."""
    withdrawal_run.delay(withdrawal_id)
