"""Health and readiness, for a load balancer or an orchestrator (docs/operations.md).

- `/healthz`: the process answers. Touches nothing else (no database), so a database outage does
  not get every web process restarted.
- `/readyz`: this process can do its work: PostgreSQL and the cache answer, the broker takes a
  connection, a worker was seen in the last READY_WORKER_SECONDS and the beat sent its periodic
  tasks in the last READY_BEAT_SECONDS. 200 when all hold, else 503; the JSON names each part
  and, for a failing one, what is wrong in a few words (never an address or a password).
Both answer without a login, outside the API's rate limits, and whatever the Host header says (a
load balancer probes by address): ProbeMiddleware, first in the list, answers them before the
host check, the HTTPS redirect, sessions or languages are reached.

The database and cache checks are django-health-check's; the broker, worker and beat checks are
ours: a worker or a beat is "seen" through a heartbeat row each writes (ServiceBeat), because the
zero-setup file broker cannot answer Celery's ping and a ping would cost a second per probe.
"""

import dataclasses
import socket

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import DatabaseError, connection, models
from django.http import JsonResponse
from django.utils import timezone
from health_check.base import HealthCheck
from health_check.checks import Cache, Database
from health_check.exceptions import ServiceUnavailable
from health_check.views import HealthCheckView


class ServiceBeat(models.Model):
    """When a worker last ran the heartbeat task, and when the beat last sent its tasks."""

    WORKER = "worker"
    BEAT = "beat"

    role = models.CharField(max_length=20, primary_key=True)
    seen_at = models.DateTimeField()
    hostname = models.CharField(max_length=255, blank=True)

    def __str__(self):
        return f"{self.role} seen at {self.seen_at:%Y-%m-%d %H:%M:%S} on {self.hostname}"


def service_seen(role: str) -> None:
    ServiceBeat.objects.update_or_create(
        role=role, defaults={"seen_at": timezone.now(), "hostname": socket.gethostname()}
    )


@dataclasses.dataclass
class Broker(HealthCheck):
    """The broker takes a connection (Redis in production, the file broker under `make run`)."""

    def run(self):
        from promo_project.celery import app

        try:
            with app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=2)
        except Exception as error:  # kombu raises the transport's own errors
            raise ServiceUnavailable("unreachable") from error


@dataclasses.dataclass
class Seen(HealthCheck):
    """A worker (or the beat) wrote its heartbeat recently enough."""

    role: str = ServiceBeat.WORKER

    def run(self):
        within = (
            settings.READY_WORKER_SECONDS
            if self.role == ServiceBeat.WORKER
            else settings.READY_BEAT_SECONDS
        )
        try:
            beat = ServiceBeat.objects.filter(role=self.role).first()
        except DatabaseError as error:
            raise ServiceUnavailable("unknown: the database is unreachable") from error
        finally:
            # Checks run in threads of their own: their connection would outlive the probe.
            connection.close()
        if beat is None:
            raise ServiceUnavailable("never seen")
        age = (timezone.now() - beat.seen_at).total_seconds()
        if age > within:
            raise ServiceUnavailable(f"last seen {age:.0f} s ago (more than {within} s)")


PARTS = {
    "database": Database(),
    "cache": Cache(),
    "broker": Broker(),
    "worker": Seen(role=ServiceBeat.WORKER),
    "beat": Seen(role=ServiceBeat.BEAT),
}


class ReadyView(HealthCheckView):
    checks = tuple(PARTS.values())

    def get_checks(self):
        return self.checks

    def render_to_response(self, context=None, status=200, **kwargs):
        return self.render_to_response_json(status)

    def render_to_response_text(self, status):
        return self.render_to_response_json(status)

    def render_to_response_json(self, status):
        names = {id(check): name for name, check in PARTS.items()}
        parts = {
            names[id(result.check)]: "ok" if result.error is None else str(result.error)
            for result in self.results
        }
        ready = all(value == "ok" for value in parts.values())
        return JsonResponse(
            {"status": "ready" if ready else "not ready", "parts": parts},
            status=200 if ready else 503,
        )


def healthz(request):
    return JsonResponse({"status": "alive"})


readyz = ReadyView.as_view()


def _metrics(request):
    from pools.metrics import metrics

    return metrics(request)


# django-health-check's view is asynchronous (its checks run side by side); the WSGI server is not.
# /metrics is scraped by address too (pools/metrics.py guards it).
PROBES = {"/healthz": healthz, "/readyz": async_to_sync(readyz), "/metrics": _metrics}


class ProbeMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        probe = PROBES.get(request.path_info)
        if probe is not None and request.method in ("GET", "HEAD"):
            return probe(request)
        return self.get_response(request)
