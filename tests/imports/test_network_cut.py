"""A worker cut off by the network, alive but unreachable: it runs in a network namespace the
test makes (ip netns, a veth pair), on a PostgreSQL cluster and a redis-server of the test's own
(reachable from the namespace; the shared servers listen on 127.0.0.1 only and stay untouched).
The test cuts the link while the worker holds an open transaction, checks that another worker
takes the import over and completes it exactly once (its waits on the cut-off worker's locks
not counted as lost attempts), then restores the link and checks that nothing the cut-off
worker does afterwards changes the import. (With the keepalives the cut-off worker usually
notices its dead session itself, during the cut; its attempt to record a failure then fails or
matches no row. test_services covers a late finish over a live connection.)"""

import os
import re
import shutil
import subprocess
import time

import pytest
from django.db import connections

from imports.models import Import
from imports.services import import_file_start
from pools.models import Code
from tests.factories import finished as _finished
from tests.factories import make_pool
from tests.imports.files import ROWS, big_csv
from tests.worker import (
    PrivatePostgres,
    PrivateRedis,
    Worker,
    default_database_on,
    point_app_at,
    redis_url,
    require_services,
    wait_for,
    worker_env,
)

pytestmark = pytest.mark.integration

SUFFIX = os.getpid() % 10000
NAMESPACE = f"promo-cut-{SUFFIX}"
HOST_LINK, NS_LINK = f"pcut{SUFFIX}h", f"pcut{SUFFIX}n"
SUBNET = f"10.{200 + SUFFIX % 50}.{SUFFIX % 250}"
HOST_IP, NS_IP = f"{SUBNET}.1", f"{SUBNET}.2"

KNOBS = {
    "IMPORT_BATCH_SIZE": 5000,
    "JOB_HEARTBEAT_TIMEOUT": 3,
    "IMPORT_BUSY_RETRY": 1,
    "IMPORT_LOCK_TIMEOUT": 1,
    "JOB_RECOVERY_SECONDS": 1,
    "CELERY_VISIBILITY_TIMEOUT": 5,
    # Keepalives and idle-transaction limit of the workers' sessions: a dead peer is noticed
    # in about 6 seconds here instead of about 30.
    "DATABASE_DEAD_PEER_SECONDS": 6,
}


def ip(*args, namespace=None):
    command = ["ip", "netns", "exec", namespace, "ip", *args] if namespace else ["ip", *args]
    subprocess.run(command, check=True, capture_output=True, text=True)


@pytest.fixture
def namespace():
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("needs root and iproute2 to make a network namespace")
    made = subprocess.run(["ip", "netns", "add", NAMESPACE], capture_output=True, text=True)
    if made.returncode:
        pytest.skip(f"`ip netns add` failed: {made.stderr.strip()}")
    try:
        ip("link", "add", HOST_LINK, "type", "veth", "peer", "name", NS_LINK)
        ip("link", "set", NS_LINK, "netns", NAMESPACE)
        ip("addr", "add", f"{HOST_IP}/24", "dev", HOST_LINK)
        ip("link", "set", HOST_LINK, "up")
        ip("addr", "add", f"{NS_IP}/24", "dev", NS_LINK, namespace=NAMESPACE)
        ip("link", "set", NS_LINK, "up", namespace=NAMESPACE)
        ip("link", "set", "lo", "up", namespace=NAMESPACE)
        yield NAMESPACE
    finally:
        subprocess.run(["ip", "link", "del", HOST_LINK], capture_output=True)
        subprocess.run(["ip", "netns", "del", NAMESPACE], capture_output=True)


@pytest.fixture
def private_postgres(namespace):
    """A throw-away PostgreSQL cluster listening on 127.0.0.1 and the veth's host address."""
    cluster = PrivatePostgres(listen=(HOST_IP,), trust=(f"{SUBNET}.0/24",)).start()
    try:
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture
def on_private_postgres(private_postgres, django_db_blocker):
    """Point this process's default database at the private cluster, migrated."""
    require_services()
    with default_database_on(private_postgres, django_db_blocker):
        yield private_postgres.port


def open_transactions_from(address: str) -> int:
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE client_addr = %s AND backend_xid IS NOT NULL",
            [address],
        )
        return cursor.fetchone()[0]


def test_worker_cut_off_by_the_network_is_taken_over_and_changes_nothing_when_back(
    namespace, on_private_postgres, tmp_path, settings
):
    port = on_private_postgres
    redis = PrivateRedis(tmp_path, bind=(HOST_IP,)).start()
    point_app_at(redis.url())
    workers = []
    try:
        cut_log = tmp_path / "cut-off-worker.log"
        cut_env = worker_env(
            redis.url(HOST_IP),
            DATABASE_URL=f"postgres://postgres@{HOST_IP}:{port}/promo",
            **KNOBS,
        )
        workers.append(Worker(cut_env, cut_log, prefix=("ip", "netns", "exec", namespace)).start())
        pool = make_pool()
        job = import_file_start(pool=pool, file=big_csv())
        wait_for(
            lambda: Import.objects.filter(pk=job.pk, rows_done__gt=0).exists(),
            timeout=60,
            what="the cut-off worker to commit a batch",
        )
        # Cut while the worker holds an open transaction (uncommitted codes, locked counters),
        # the worst case for the worker that takes over.
        in_transaction = wait_for(
            lambda: open_transactions_from(NS_IP), timeout=30, interval=0.005, what="a batch"
        )
        ip("link", "set", HOST_LINK, "down")
        cut_at = time.monotonic()

        takeover_log = tmp_path / "takeover-worker.log"
        workers.append(Worker(worker_env(redis.url(), **KNOBS), takeover_log, beat=True).start())
        wait_for(lambda: _finished(job), timeout=180, what="the takeover to finish the import")
        took = time.monotonic() - cut_at

        assert job.status == Import.Status.COMPLETED, job.message
        assert (job.rows_read, job.codes_added, job.duplicates_in_file) == (ROWS, ROWS, 0)
        assert (job.already_in_pool, job.rows_rejected) == (0, 0)
        # The takeover's waits on the lost worker's locks did not count as lost attempts.
        assert job.attempts == 2
        assert Code.objects.filter(pool=pool).count() == ROWS
        finished = (job.status, job.message, job.finished_at, job.codes_added)

        ip("link", "set", HOST_LINK, "up")
        # The cut-off worker's task ends one way or another once it is back (its session was
        # ended by PostgreSQL): whatever it then tries, the import stays as the takeover left it.
        wait_for(
            lambda: re.search(
                r"import_run\[[^\]]+\] (succeeded|raised|retry)", cut_log.read_text()
            ),
            timeout=180,
            what="the cut-off worker's task to end",
        )
        job.refresh_from_db()
        assert (job.status, job.message, job.finished_at, job.codes_added) == finished
        print(
            f"cut {'inside' if in_transaction else 'outside'} a transaction; "
            f"taken over and completed {took:.0f} s after the cut; lock waits given back: "
            f"{takeover_log.read_text().count('waits on a lock')}"
        )
    finally:
        for worker in workers:
            worker.stop()
        redis.stop()
        point_app_at(redis_url())
