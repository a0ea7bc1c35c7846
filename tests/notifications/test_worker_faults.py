"""Side effects never change an import's outcome: the broker stops while an import finishes
(a private redis-server, stopped and started by the test; the shared one stays up)."""

import pytest

from imports.models import Import
from imports.services import import_file_start
from notifications.services import notifications_due
from pools.models import Code
from tests.factories import finished, make_manager, make_pool
from tests.imports.files import ROWS, big_csv, running_mid_way
from tests.worker import Worker, wait_for
from tests.worker import worker_env as make_worker_env

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_broker_stopped_while_an_import_finishes_then_the_notice_arrives_once(
    inbox, private_redis, tmp_path, settings
):
    settings.NOTICE_RETRY_SECONDS = 1
    log = tmp_path / "worker.log"
    env = make_worker_env(
        private_redis.url(),
        IMPORT_BATCH_SIZE=2000,
        NOTICE_RETRY_SECONDS=1,
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=settings.EMAIL_PORT,
        SITE_URL=settings.SITE_URL,
    )
    worker = Worker(env, log, beat=True).start()
    try:
        ann = make_manager("ann", email="ann@example.com")
        pool = make_pool()
        job = import_file_start(pool=pool, file=big_csv(), user=ann)
        wait_for(lambda: running_mid_way(job), timeout=60, what="the import to be under way")

        private_redis.stop()

        wait_for(lambda: finished(job), timeout=120, what="the import to finish")
        assert job.status == Import.Status.COMPLETED, job.message
        assert (job.codes_added, job.attempts) == (ROWS, 1)
        assert Code.objects.filter(pool=pool).count() == ROWS
        assert job.finished_notice_sent_at is None and not inbox.messages
        # Due in the outbox (once NOTICE_RETRY_SECONDS have passed since it finished).
        wait_for(lambda: notifications_due()[0] == [job.pk], timeout=10, what="the notice due")

        private_redis.start()

        wait_for(lambda: inbox.to("ann@example.com"), timeout=60, what="the import notice")
        rounds = log.read_text().count("notifications_send_due") // 3  # sent, received, done
        wait_for(
            lambda: log.read_text().count("notifications_send_due") // 3 >= rounds + 3,
            timeout=60,
            what="three more rounds of the outbox",
        )
        (notice,) = inbox.to("ann@example.com")
        assert notice["Subject"] == f"Import #{job.pk} into {pool.slug}: Completed"
        job.refresh_from_db()
        assert job.status == Import.Status.COMPLETED and job.finished_notice_sent_at
    finally:
        worker.stop()
