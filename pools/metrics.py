"""Prometheus metrics at /metrics, for alerting and dashboards (docs/operations.md).

Two sources, so that every process of a host answers the same numbers:
- The database, read at each scrape (StateCollector): codes by status per pool, stock and
  low-stock threshold per active pool, jobs by kind and status, the age of the oldest queued and
  running job, import rows per second over the last hour, low-stock alerts sent and waiting, and
  alert e-mails delivered. Any web process, on any host, reads the same rows.
- Events counted where they happen, in prometheus_client's multiprocess mode: every web and
  worker process of a host adds to files under PROMETHEUS_MULTIPROC_DIR (settings), which a
  scrape sums. Requests and their latencies per endpoint, codes issued, redeemed and released
  per pool, refusals per reason. Prometheus scrapes each host's web process for them.

Access: a bearer token (METRICS_TOKEN) or a client address within METRICS_ALLOWED_NETWORKS
(by default this machine only); anything else gets 403, with no figure.
"""

import ipaddress
import time

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Min
from django.http import HttpResponse, HttpResponseForbidden
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

REQUESTS = Counter(
    "promo_http_requests", "Requests answered, per endpoint.", ["endpoint", "method", "status"]
)
LATENCY = Histogram(
    "promo_http_request_duration_seconds",
    "Time to answer a request, per endpoint.",
    ["endpoint", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CODES = Counter(
    "promo_codes", "Codes issued, redeemed, released or marked as issued.", ["pool", "event"]
)
REFUSALS = Counter(
    "promo_code_refusals", "Refused calls of the HTTP API, per reason.", ["pool", "reason"]
)


def code_event(pool, event: str, count: int = 1) -> None:
    """Count `count` codes of `pool` issued/redeemed/released/marked, once the change commits."""
    slug = pool.slug
    transaction.on_commit(lambda: CODES.labels(pool=slug, event=event).inc(count))


class RequestMetricsMiddleware:
    """Counts each request and its time under its URL pattern's name (a bounded set of labels,
    never the path itself)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        endpoint = (match.view_name or match.route) if match else "unmatched"
        LATENCY.labels(endpoint, request.method).observe(time.perf_counter() - started)
        REQUESTS.labels(endpoint, request.method, str(response.status_code)).inc()
        return response


# What the apps above pools add to a scrape (imports: import throughput; notifications: alerts),
# each a function yielding metric families; registered from their ready().
state_collectors: list = []


def state_collector_register(collect) -> None:
    if collect not in state_collectors:
        state_collectors.append(collect)


class StateCollector:
    """What the database says now, read at each scrape."""

    def collect(self):
        from pools import jobs
        from pools.models import Pool
        from pools.selectors import pools_with_counts

        codes = GaugeMetricFamily(
            "promo_pool_codes", "Codes of the pool by status.", labels=["pool", "status"]
        )
        stock = GaugeMetricFamily(
            "promo_pool_stock", "Codes an active pool can still issue.", labels=["pool"]
        )
        threshold = GaugeMetricFamily(
            "promo_pool_low_stock_threshold",
            "The stock below which an active pool's subscribers are e-mailed.",
            labels=["pool"],
        )
        for pool in pools_with_counts(Pool.objects.all()):
            for status in ("available", "issued", "redeemed", "expired", "withdrawn"):
                codes.add_metric([pool.slug, status], getattr(pool, f"codes_{status}"))
            if pool.status == Pool.Status.ACTIVE:
                stock.add_metric([pool.slug], pool.codes_available)
                if pool.notify_below_enabled:
                    threshold.add_metric([pool.slug], pool.notify_below)
        yield from (codes, stock, threshold)

        by_status = GaugeMetricFamily(
            "promo_jobs", "Jobs by kind and status.", labels=["kind", "status"]
        )
        oldest = GaugeMetricFamily(
            "promo_job_oldest_age_seconds",
            "Age of the oldest queued job (since created) and running job (since started).",
            labels=["kind", "status"],
        )
        now = timezone.now()
        # Every kind of job registers itself with pools.jobs (imports, assignments, exports,
        # withdrawals, undos): the same list recovery walks.
        for model in jobs.job_models():
            kind = model._meta.model_name
            for row in model.objects.values("status").annotate(n=Count("pk")):
                by_status.add_metric([kind, row["status"]], row["n"])
            queued = model.objects.filter(status="queued").aggregate(at=Min("created_at"))["at"]
            running = model.objects.filter(status="running").aggregate(at=Min("started_at"))["at"]
            for status, at in (("queued", queued), ("running", running)):
                oldest.add_metric([kind, status], (now - at).total_seconds() if at else 0)
        yield from (by_status, oldest)

        for collect in state_collectors:
            yield from collect()


def _allowed(request) -> bool:
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and constant_time_compare(header, f"Bearer {token}"):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(
        address in ipaddress.ip_network(network, strict=False)
        for network in settings.METRICS_ALLOWED_NETWORKS
    )


def metrics(request):
    if not _allowed(request):
        return HttpResponseForbidden("Metrics are for the monitoring system only.\n")
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(StateCollector())
    return HttpResponse(generate_latest(registry), content_type="text/plain; version=0.0.4")
