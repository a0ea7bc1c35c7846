"""Celery tasks: each loads nothing but ids and calls the service of the same name, and the
receivers that queue them (connected in apps.py)."""

import smtplib

from celery import shared_task

from . import services

# A mail server that refuses or cannot be reached is tried again with growing pauses.
RETRY_ON = (smtplib.SMTPException, OSError)


@shared_task(autoretry_for=RETRY_ON, retry_backoff=5, retry_backoff_max=600, max_retries=10)
def alert_send(alert_id: int):
    services.alert_send(alert_id=alert_id)


@shared_task(autoretry_for=RETRY_ON, retry_backoff=5, retry_backoff_max=600, max_retries=10)
def import_notice_send(import_id: int):
    services.import_notice_send(import_id=import_id)


@shared_task
def pools_check_stock():
    services.pools_check_stock()


def alert_enqueue(sender, alert, **kwargs) -> None:
    alert_send.delay(alert.pk)


def import_notice_enqueue(sender, job, **kwargs) -> None:
    import_notice_send.delay(job.pk)
