"""A low-stock alert starts when the stock crosses the threshold, whatever the path that takes
it across: a bulk issue commits up to the crossing first (see pools' issue_room)."""

import pytest

from imports.assignments import assignment_start
from notifications.models import LowStockAlert
from notifications.services import subscription_add
from pools.code_services import code_issue_batch
from pools.models import Code
from tests.factories import alerting_pool, make_manager
from tests.imports.files import csv_upload

# Real commits: the alert is checked once each part of the issue has committed, as in
# production (inside a test's transaction nothing commits before the end).
pytestmark = pytest.mark.django_db(transaction=True)


def the_alert_text(inbox) -> str:
    (message,) = inbox.to("ann@example.com")
    return message.get_body(("plain",)).get_content()


def test_an_assignment_alerts_when_the_stock_crosses_the_threshold_not_at_0(inbox, settings):
    settings.ASSIGN_BATCH_SIZE = 5000  # the whole list would be one slice
    ann = make_manager("ann", email="ann@example.com")
    pool = alerting_pool(threshold=5, codes=12)
    subscription_add(user=ann, pool=pool)
    customers = "".join(f"c{n}\n" for n in range(12))

    job = assignment_start(pool=pool, file=csv_upload(f"Customer\n{customers}"))
    job.refresh_from_db()

    assert (job.codes_issued, job.shortfall) == (12, 0)
    alert = LowStockAlert.objects.get()
    assert (alert.stock, alert.threshold) == (4, 5)
    assert "Codes left to issue: 4 (you are alerted below 5)" in the_alert_text(inbox)
    assert not Code.objects.filter(status=Code.Status.AVAILABLE).exists()


def test_a_batch_alerts_when_the_stock_crosses_the_threshold(inbox):
    ann = make_manager("ann", email="ann@example.com")
    pool = alerting_pool(threshold=5, codes=12)
    subscription_add(user=ann, pool=pool)

    outcome = code_issue_batch(
        pool=pool, customers=[f"c{n}" for n in range(10)], idempotency_key="mail-1"
    )

    assert (len(outcome.issued), outcome.short) == (10, [])
    alert = LowStockAlert.objects.get()
    assert (alert.stock, alert.threshold) == (4, 5)
    assert "Codes left to issue: 4 (you are alerted below 5)" in the_alert_text(inbox)


def test_a_batch_from_a_pool_at_its_threshold_alerts_at_the_first_code_below_it(inbox):
    ann = make_manager("ann", email="ann@example.com")
    pool = alerting_pool(threshold=5, codes=5)
    subscription_add(user=ann, pool=pool)

    outcome = code_issue_batch(pool=pool, customers=["c1", "c2", "c3"], idempotency_key="m")

    assert (len(outcome.issued), outcome.short) == (3, [])
    alert = LowStockAlert.objects.get()
    assert (alert.stock, alert.threshold) == (4, 5)
    assert "Codes left to issue: 4 (you are alerted below 5)" in the_alert_text(inbox)
