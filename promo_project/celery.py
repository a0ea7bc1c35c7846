import os
from pathlib import Path

from celery import Celery
from celery.signals import celeryd_init, setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "promo_project.settings")

app = Celery("promo_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def _django_logging(loglevel=None, **kwargs):
    """Workers log through Django's LOGGING (plain or JSON lines, with the request id of the
    request that queued the task) instead of Celery's own set-up; Celery's own lines (ready,
    task received) at the level the worker's command line asks, whatever LOG_LEVEL says."""
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
    if loglevel:
        logging.getLogger("celery").setLevel(loglevel)


def _structured_task_logs():
    from django_structlog.celery.steps import DjangoStructLogInitStep

    app.steps["worker"].add(DjangoStructLogInitStep)


_structured_task_logs()


@app.on_after_configure.connect
def _make_file_broker_folders(sender, **kwargs):
    """The zero-setup file broker needs its folders before the first message."""
    options = sender.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        if options.get(key):
            Path(options[key]).mkdir(parents=True, exist_ok=True)


@celeryd_init.connect
def _worker_database_options(**kwargs):
    """Give the worker's PostgreSQL sessions keepalives and bounded idle transactions
    (settings.WORKER_DATABASE_OPTIONS), before any connection is opened."""
    from django.conf import settings

    add_database_options(settings.DATABASES["default"], settings.WORKER_DATABASE_OPTIONS)


def add_database_options(database: dict, extra: dict) -> None:
    """Merge `extra` into a PostgreSQL database's OPTIONS; server settings (`options`, "-c …")
    are appended to those already there."""
    if "postgresql" not in database["ENGINE"]:
        return
    options = database.setdefault("OPTIONS", {})
    extra = dict(extra)
    extra["options"] = " ".join(filter(None, [options.get("options", ""), extra["options"]]))
    options.update(extra)
