"""Structured logs: one JSON object per line on request, the request id carried into its tasks."""

import json
import subprocess
import sys

import pytest
from django.urls import reverse

from imports.models import Import
from tests.factories import finished, make_pool
from tests.worker import Worker, wait_for, worker_env


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_json_lines_on_request_and_plain_text_by_default(tmp_path):
    script = (
        "import django, logging; django.setup()\n"
        "logging.getLogger('pools').warning('stock of %s is low', 'spring')\n"
    )
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "promo_project.settings"}
    env["PROMO_VAR_DIR"] = str(tmp_path)

    as_json = subprocess.run(
        [sys.executable, "-c", script],
        env={**env, "LOG_FORMAT": "json"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    plain = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )

    (line,) = [entry for entry in json_lines(as_json.stderr) if entry["logger"] == "pools"]
    assert (line["event"], line["level"]) == ("stock of spring is low", "warning")
    assert "timestamp" in line
    assert "stock of spring is low" in plain.stderr and not json_lines(plain.stderr)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_requests_id_is_on_the_log_lines_of_the_task_it_queued(
    broker_url, tmp_path, manager_client, caplog
):
    log = tmp_path / "worker.log"
    worker = Worker(worker_env(broker_url, LOG_FORMAT="json"), log).start()
    try:
        pool = make_pool()
        caplog.set_level("INFO", logger="django_structlog")
        manager_client.post(
            f"{reverse('admin:imports_import_add')}?pool={pool.pk}",
            {"kind": "paste", "paste-text": "L1\nL2"},
        )
        (request_id,) = {
            record.msg["request_id"]
            for record in caplog.records
            if isinstance(record.msg, dict) and record.msg.get("event") == "request_finished"
        }
        job = Import.objects.get(pool=pool)
        wait_for(lambda: finished(job), timeout=60, what="the import to finish")
    finally:
        worker.stop()

    task_lines = [
        line
        for line in json_lines(log.read_text())
        if line.get("event") in ("task_started", "task_succeeded")
    ]
    assert task_lines, log.read_text()[-3000:]
    assert {line.get("request_id") for line in task_lines} == {request_id}


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_worker_says_it_is_ready_whatever_the_log_level(broker_url, tmp_path):
    """LOG_LEVEL quiets the product's lines; the worker's own (ready, task received) follow its
    command line, which process managers and the benchmarks wait on."""
    worker = Worker(worker_env(broker_url, LOG_LEVEL="WARNING"), tmp_path / "worker.log").start()
    worker.stop()

    assert " ready." in (tmp_path / "worker.log").read_text()
