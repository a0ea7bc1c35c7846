"""Faults a real worker meets: a queued task lost by the broker (a private redis-server,
restarted without persistence by the test; the shared one stays up)."""

import pytest
import redis as redis_client

from imports.models import Import
from imports.services import import_file_start
from pools.models import Code
from tests.factories import finished, make_pool
from tests.imports.files import csv_upload
from tests.worker import Worker, wait_for
from tests.worker import worker_env as make_worker_env

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_queued_task_lost_by_the_broker_is_queued_again_and_runs_exactly_once(
    private_redis, tmp_path
):
    rows = 20_000
    pool = make_pool()
    job = import_file_start(
        pool=pool, file=csv_upload("Code\n" + "".join(f"L{i:06d}\n" for i in range(rows)))
    )
    assert redis_client.Redis.from_url(private_redis.url()).llen("celery") == 1
    # Restarted without persistence before a worker took the task: the task is gone.
    private_redis.stop()
    private_redis.start()
    assert redis_client.Redis.from_url(private_redis.url()).llen("celery") == 0

    log = tmp_path / "worker.log"
    env = make_worker_env(
        private_redis.url(),
        JOB_QUEUED_TIMEOUT=2,
        JOB_RECOVERY_SECONDS=1,
        IMPORT_BATCH_SIZE=2000,
    )
    worker = Worker(env, log, beat=True).start()
    try:
        wait_for(lambda: finished(job), timeout=90, what="the import queued again to finish")
    finally:
        worker.stop()

    assert job.status == Import.Status.COMPLETED, job.message
    assert (job.rows_read, job.codes_added, job.duplicates_in_file, job.attempts) == (
        rows,
        rows,
        0,
        1,
    )
    assert Code.objects.filter(pool=pool).count() == rows
    assert job.enqueued_at > job.created_at  # queued again by the recovery
