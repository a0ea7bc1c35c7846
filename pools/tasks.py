"""Celery tasks of the pools app: each calls the service of the same name."""

from celery import shared_task

from . import code_services


@shared_task
def codes_expire():
    code_services.codes_expire()
