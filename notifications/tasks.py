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


@shared_task
def pools_check_stock():
    services.pools_check_stock()


def alert_enqueue(sender, alert, **kwargs) -> None:
    _enqueue(alert_send, alert.pk)


def import_notice_enqueue(sender, job, **kwargs) -> None:
    _enqueue(import_notice_send, job.pk)


def _enqueue(task, *args) -> None:
    """Queue `task`; if the broker cannot be reached, log it and go on.

    These are sent after a commit, from inside whatever committed: an API request that issued
    the code which crossed the threshold. A Redis outage must not turn that issue into an error
    (the code is issued; a retry without an idempotency key would spend another) (issue 11).
    """
    try:
        task.delay(*args)
    except Exception:  # kombu's OperationalError and whatever a broker's client raises
        logger.exception("Could not queue %s%r: the broker is unreachable", task.name, args)
