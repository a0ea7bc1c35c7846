"""Names in e-mail headers and redirects after admin actions."""

import logging

import pytest
from django.urls import reverse
from kombu.exceptions import OperationalError

from notifications import tasks
from notifications.models import LowStockAlert
from notifications.services import alert_send, header_clean, subscription_add
from pools.code_services import code_issue
from pools.services import pool_launch
from tests.factories import make_campaign, make_codes, make_manager, make_pool

pytestmark = pytest.mark.django_db


def test_a_line_break_in_a_campaign_name_does_not_stop_its_email(
    inbox, django_capture_on_commit_callbacks
):
    ann = make_manager("ann", email="ann@example.com")
    campaign = make_campaign("Spring")
    campaign.name = "Spring\r\nBcc: everyone@example.com\nSale"  # as the shell can save it
    campaign.save()
    pool = make_pool(campaign, notify_below_enabled=True, notify_below=2)
    make_codes(pool, ["A", "B"])
    pool_launch(pool=pool)
    subscription_add(user=ann, pool=pool)

    with django_capture_on_commit_callbacks(execute=True):
        code_issue(pool=pool, customer="c")

    (message,) = inbox.to("ann@example.com")
    assert message["Subject"] == (
        f"Promo codes running low: {pool.slug} (Spring Bcc: everyone@example.com Sale)"
    )
    assert message["Bcc"] is None
    assert alert_send(alert_id=pool.low_stock_alerts.get().pk) == 0  # delivered, recorded


def test_header_values_are_one_printable_line():
    assert header_clean("a\nb\r\nc\x00d\te\u2028f  g") == "a b c d e f g"


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example", "/\\evil.example", "javascript:alert(1)"]
)
def test_import_notice_preference_redirects_only_within_the_site(manager_client, target):
    answer = manager_client.post(
        reverse("admin:notifications_import_notices"), {"enabled": "0", "next": target}
    )

    assert answer.status_code == 302 and answer["Location"] == reverse("admin:index")


def test_import_notice_preference_redirects_back_to_the_page(manager_client):
    add_codes = f"{reverse('admin:imports_import_add')}?pool={make_pool().pk}"

    answer = manager_client.post(
        reverse("admin:notifications_import_notices"), {"enabled": "1", "next": add_codes}
    )

    assert answer["Location"] == add_codes


def test_an_issue_that_raises_an_alert_goes_on_when_the_broker_is_down(
    caplog, monkeypatch, django_capture_on_commit_callbacks
):
    pool = make_pool(notify_below_enabled=True, notify_below=5)
    make_codes(pool, ["N1", "N2"])
    pool_launch(pool=pool)

    def unreachable(*args, **kwargs):  # what kombu raises when Redis refuses the connection
        raise OperationalError("Error 111 connecting to 127.0.0.1:6399. Connection refused.")

    monkeypatch.setattr(tasks.alert_send, "delay", unreachable)
    with (
        caplog.at_level(logging.WARNING, logger="notifications.tasks"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        code = code_issue(pool=pool, customer="c")

    assert code.issued_to == "c"
    # Not lost: still due, for the outbox task to send once the broker is back.
    assert LowStockAlert.objects.get(pool=pool).sent_at is None
    assert "the outbox sends it later" in caplog.text
