"""Celery tasks: each loads nothing but ids and calls the service of the same name, and the
receivers that queue them (connected in apps.py)."""

import logging
import smtplib

from celery import shared_task

from . import services

logger = logging.getLogger(__name__)

# A mail server that refuses or cannot be reached is tried again with growing pauses.
RETRY_ON = (smtplib.SMTPException, OSError)


@shared_task(autoretry_for=RETRY_ON, retry_backoff=5, retry_backoff_max=600, max_retries=10)
def alert_send(alert_id: int):
    services.alert_send(alert_id=alert_id)


@shared_task(autoretry_for=RETRY_ON, retry_backoff=5, retry_backoff_max=600, max_retries=10)
def import_notice_send(import_id: int):
    services.import_notice_send(import_id=import_id)


@shared_task(autoretry_for=RETRY_ON, retry_backoff=5, retry_backoff_max=600, max_retries=10)
def refill_stopped_send(import_id: int):
    services.refill_stopped_send(import_id=import_id)


@shared_task(autoretry_for=RETRY_ON, retry_backoff=5, retry_backoff_max=600, max_retries=10)
def export_notice_send(export_id: int):
    services.export_notice_send(export_id=export_id)


@shared_task
def pools_check_stock():
    services.pools_check_stock()


@shared_task
def notifications_send_due():
    """The outbox: queue again the notices and alerts whose queueing failed."""
    due = services.notifications_due()
    for import_id in due.imports:
        import_notice_send.delay(import_id)
    for alert_id in due.alerts:
        alert_send.delay(alert_id)
    for export_id in due.exports:
        export_notice_send.delay(export_id)


def alert_enqueue(sender, alert, **kwargs) -> None:
    _enqueue(alert_send, alert.pk)


def import_notice_enqueue(sender, job, **kwargs) -> None:
    _enqueue(import_notice_send, job.pk)


def refill_stopped_enqueue(sender, job, **kwargs) -> None:
    _enqueue(refill_stopped_send, job.pk)


def export_notice_enqueue(sender, export, **kwargs) -> None:
    _enqueue(export_notice_send, export.pk)


def _enqueue(task, object_id: int) -> None:
    """Queue a notice; with the broker down, leave it to the outbox (notifications_send_due)
    rather than fail whatever announced it (an import that finished, say)."""
    try:
        task.delay(object_id)
    except Exception:  # kombu and redis raise several kinds for a broker that is down
        logger.warning("Could not queue %s(%s); the outbox sends it later", task.name, object_id)
