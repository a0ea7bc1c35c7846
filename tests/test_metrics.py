"""/metrics, scraped after a scripted run and read against the database."""

import pytest
from django.db.models import Count
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from imports.models import Import
from imports.services import import_text_start
from pools.code_services import code_issue, code_redeem, code_release
from pools.models import Code
from tests.factories import make_api_key, make_codes, make_pool, post

pytestmark = [
    # Events are counted once their transaction commits.
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("fresh_rate_limits"),
]


def scrape(**headers) -> dict:
    answer = Client().get("/metrics", HTTP_HOST="10.0.0.7", **headers)
    assert answer.status_code == 200, answer.content
    samples = {}
    for family in text_string_to_metric_families(answer.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0)


def test_figures_after_a_scripted_run_agree_with_the_database():
    pool = make_pool(launched=True, notify_below_enabled=True, notify_below=50)
    make_codes(pool, [f"M-{n}" for n in range(10)])
    _, key = make_api_key(name="shop")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    before = scrape()

    issued = [code_issue(pool=pool, customer=f"c{n}", idempotency_key=f"k{n}") for n in range(3)]
    code_redeem(code=issued[0].code, customer="c0", pool=pool)
    code_release(pool=pool, code=issued[1].code, idempotency_key="k1")
    refused = post(
        api, "/api/codes/redeem", {"code": "NO-SUCH", "customer": "c9", "pool": pool.slug}
    )
    import_text_start(pool=pool, text="M-100\nM-101\n")
    after = scrape()

    by_status = dict(Code.objects.filter(pool=pool).values_list("status").annotate(n=Count("pk")))
    for status in ("available", "issued", "redeemed", "withdrawn"):
        assert value(after, "promo_pool_codes", pool=pool.slug, status=status) == by_status.get(
            status, 0
        ), status
    assert value(after, "promo_pool_stock", pool=pool.slug) == by_status["available"]
    assert value(after, "promo_pool_low_stock_threshold", pool=pool.slug) == 50

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("promo_codes_total", pool=pool.slug, event="issued") == 3
    assert delta("promo_codes_total", pool=pool.slug, event="redeemed") == 1
    assert delta("promo_codes_total", pool=pool.slug, event="released") == 1
    assert refused.status_code == 404
    assert delta("promo_code_refusals_total", pool=pool.slug, reason="unknown_code") == 1
    assert (
        delta("promo_http_requests_total", endpoint="api-code-redeem", method="POST", status="404")
        == 1
    )
    for status, count in Import.objects.values_list("status").annotate(n=Count("pk")):
        assert value(after, "promo_jobs", kind="import", status=status) == count


def test_only_the_monitoring_system_reads_the_figures(settings):
    settings.METRICS_TOKEN = "scrape-secret"

    outsider = Client().get("/metrics", HTTP_HOST="10.0.0.7", REMOTE_ADDR="203.0.113.9")
    wrong = Client().get(
        "/metrics",
        HTTP_HOST="10.0.0.7",
        REMOTE_ADDR="203.0.113.9",
        HTTP_AUTHORIZATION="Bearer guess",
    )
    assert (outsider.status_code, wrong.status_code) == (403, 403)
    assert b"promo_" not in outsider.content

    scrape(REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer scrape-secret")
    settings.METRICS_ALLOWED_NETWORKS = ["203.0.113.0/24"]
    scrape(REMOTE_ADDR="203.0.113.9")
