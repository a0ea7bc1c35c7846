"""/healthz and /readyz, as a load balancer or an orchestrator probes them."""

import json
import subprocess
import sys
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from pools.health import ServiceBeat, service_seen
from tests.worker import Worker, wait_for, worker_env

# The checks run in threads of their own (side by side), with connections of their own: they
# see only what is committed.
pytestmark = pytest.mark.django_db(transaction=True)

DEAD = "127.0.0.1:9"  # the discard port: nothing listens there


def probe(path: str, client=None):
    # A load balancer probes by address, not by the site's name.
    answer = (client or Client()).get(path, HTTP_HOST="10.0.0.7")
    return answer.status_code, json.loads(answer.content)


def test_ready_when_every_part_answers_and_a_worker_and_the_beat_were_seen():
    service_seen(ServiceBeat.WORKER)
    service_seen(ServiceBeat.BEAT)

    status, body = probe("/readyz")

    assert (status, body["status"]) == (200, "ready"), body
    assert set(body["parts"]) == {"database", "cache", "broker", "worker", "beat"}


def test_not_ready_until_a_worker_and_the_beat_are_seen(settings):
    status, body = probe("/readyz")
    assert status == 503
    assert "never seen" in body["parts"]["worker"]
    assert "never seen" in body["parts"]["beat"]
    assert body["parts"]["database"] == "ok"

    service_seen(ServiceBeat.WORKER)
    service_seen(ServiceBeat.BEAT)
    ServiceBeat.objects.filter(role=ServiceBeat.WORKER).update(
        seen_at=timezone.now() - timedelta(seconds=settings.READY_WORKER_SECONDS + 5)
    )

    status, body = probe("/readyz")
    assert status == 503
    assert "last seen" in body["parts"]["worker"]
    assert body["parts"]["beat"] == "ok"


def test_alive_without_anything_else_and_not_ready_naming_each_part_down(tmp_path):
    """A separate process whose database, cache and broker all point at a port nobody serves."""
    script = (
        "import django, json; django.setup()\n"
        "from django.test import Client\n"
        "client = Client()\n"
        "for path in ('/healthz', '/readyz'):\n"
        "    answer = client.get(path, HTTP_HOST='10.0.0.7')\n"
        "    print(json.dumps([answer.status_code, json.loads(answer.content)]))\n"
    )
    environ = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "promo_project.settings",
        "DATABASE_URL": f"postgres://postgres@{DEAD}/nowhere",
        "CACHE_URL": f"redis://{DEAD}/0",
        "CELERY_BROKER_URL": f"redis://{DEAD}/0",
        "PROMO_VAR_DIR": str(tmp_path),
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "probe",
    }
    out = subprocess.run(
        [sys.executable, "-c", script], env=environ, capture_output=True, text=True, timeout=120
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("[")]
    assert len(lines) == 2, out.stderr[-3000:]
    (alive_status, alive), (ready_status, ready) = map(json.loads, lines)

    assert (alive_status, alive) == (200, {"status": "alive"})
    assert ready_status == 503
    parts = ready["parts"]
    assert all(parts[part] != "ok" for part in ("database", "cache", "broker"))
    assert "database is unreachable" in parts["worker"]
    # Nothing secret: no address, no user name.
    assert "127.0.0.1" not in json.dumps(ready) and "postgres" not in json.dumps(ready)


@pytest.mark.integration
def test_a_real_worker_and_beat_make_it_ready_and_their_loss_makes_it_red(
    broker_url, tmp_path, settings
):
    settings.READY_WORKER_SECONDS = 3
    settings.READY_BEAT_SECONDS = 3
    worker = Worker(
        worker_env(broker_url, HEARTBEAT_SECONDS=1), tmp_path / "worker.log", beat=True
    ).start()
    try:
        wait_for(lambda: probe("/readyz")[0] == 200, timeout=60, what="/readyz to turn green")
    finally:
        worker.stop()

    wait_for(lambda: probe("/readyz")[0] == 503, timeout=30, what="/readyz to turn red")
    parts = probe("/readyz")[1]["parts"]
    assert "last seen" in parts["worker"] and "last seen" in parts["beat"]
    assert parts["database"] == parts["broker"] == "ok"
