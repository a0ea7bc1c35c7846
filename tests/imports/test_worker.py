"""Imports run by a real Celery worker process on the local Redis and PostgreSQL."""

import os
import signal

import pytest
from django.db.models import Sum
from django.urls import reverse

from imports.models import Import
from imports.services import import_file_start
from pools.models import Code
from tests.factories import finished, make_manager, make_pool
from tests.imports.files import ROWS, big_csv, csv_upload, running_mid_way
from tests.worker import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_upload_from_the_admin_is_imported_by_the_worker_and_reported(client, worker_factory):
    worker_factory()
    client.force_login(make_manager())
    pool = make_pool()

    client.post(
        f"{reverse('admin:imports_import_add')}?pool={pool.pk}",
        {"kind": "upload", "upload-file": csv_upload("Code;Issue-end\nW1;\nW2;31.12.2026\nW1;\n")},
    )
    job = Import.objects.get()
    wait_for(lambda: finished(job), timeout=60, what="the import to finish")

    report = client.get(reverse("admin:imports_import_change", args=[job.pk]))
    assert report.context["job"].status == Import.Status.COMPLETED_WITH_ERRORS
    assert (job.codes_added, job.duplicates_in_file, job.attempts) == (2, 1, 1)
    assert "The same code is in an earlier row." in report.content.decode()
    assert sorted(Code.objects.values_list("code", flat=True)) == ["W1", "W2"]


def assert_imported_exactly_once(job, pool):
    assert job.status == Import.Status.COMPLETED, job.message
    assert job.attempts >= 2
    assert (job.rows_read, job.codes_added, job.duplicates_in_file) == (ROWS, ROWS, 0)
    assert (job.already_in_pool, job.rows_rejected) == (0, 0)
    assert Code.objects.filter(pool=pool).count() == ROWS
    assert pool.counters.aggregate(total=Sum("available"))["total"] == ROWS


KNOBS = {
    "IMPORT_BATCH_SIZE": 2000,
    "JOB_HEARTBEAT_TIMEOUT": 3,
    "IMPORT_BUSY_RETRY": 1,
    "CELERY_VISIBILITY_TIMEOUT": 5,
}


def test_worker_child_killed_mid_import_resumes_without_duplicates(worker_factory):
    worker = worker_factory(**KNOBS)
    pool = make_pool()
    job = import_file_start(pool=pool, file=big_csv())
    wait_for(lambda: running_mid_way(job), timeout=60, what="the import to be under way")

    for pid in worker.child_pids():
        os.kill(pid, signal.SIGKILL)

    wait_for(lambda: finished(job), timeout=120, what="the redelivered import to finish")
    assert_imported_exactly_once(job, pool)


def test_whole_worker_killed_mid_import_is_taken_over_by_a_new_worker(worker_factory):
    worker = worker_factory(**KNOBS)
    pool = make_pool()
    job = import_file_start(pool=pool, file=big_csv())
    wait_for(lambda: running_mid_way(job), timeout=60, what="the import to be under way")

    worker.kill()
    job.refresh_from_db()
    assert job.status == Import.Status.RUNNING
    worker_factory(**KNOBS)

    wait_for(lambda: finished(job), timeout=120, what="the new worker to finish the import")
    assert_imported_exactly_once(job, pool)
