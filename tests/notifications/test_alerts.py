import smtplib
import threading
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from imports.engine import import_run
from imports.services import import_text_start
from notifications.models import AlertDelivery, LowStockAlert
from notifications.services import (
    alert_send,
    import_notice_send,
    import_notices_set,
    pools_check_stock,
    subscription_add,
)
from pools.code_services import code_issue, codes_withdraw
from pools.refusals import CodeRefused
from pools.services import pool_launch, pool_update
from pools.tasks import codes_expire as codes_expire_task
from tests.factories import alerting_pool, make_campaign, make_codes, make_manager, make_pool

pytestmark = pytest.mark.django_db


@pytest.fixture
def ann(db):
    return make_manager("ann", email="ann@example.com")


def issue(pool, times, capture):
    # Each issue is a transaction of its own, as when the shell or the API issues.
    for n in range(times):
        with capture(execute=True):
            code_issue(pool=pool, customer=f"c{n}")


def test_one_email_per_crossing_with_what_staff_need(
    inbox, ann, django_capture_on_commit_callbacks
):
    pool = alerting_pool(threshold=3, codes=5)
    subscription_add(user=ann, pool=pool)

    issue(pool, 2, django_capture_on_commit_callbacks)  # stock 3: not below yet
    assert inbox.messages == []
    issue(pool, 3, django_capture_on_commit_callbacks)  # stock 2, 1, 0: one crossing

    (message,) = inbox.to("ann@example.com")
    assert message["Subject"] == f"Promo codes running low: {pool.slug} ({pool.campaign.name})"
    text = message.get_body(("plain",)).get_content()
    assert "Codes left to issue: 2 (you are alerted below 3)" in text
    assert "Issued in the last 24 hours: 3" in text  # counted when the e-mail is sent
    assert f"https://promo.example.com/admin/pools/pool/{pool.pk}/change/" in text
    assert "https://promo.example.com/admin/imports/import/template.xlsx" in text
    assert "runs dry around" in text
    assert message.get_body(("html",)) is not None
    alert = LowStockAlert.objects.get()
    assert (alert.stock, alert.threshold) == (2, 3)
    assert alert.deliveries.get().email == "ann@example.com"


def test_refill_rearms_then_a_second_crossing_alerts_again(
    inbox, ann, django_capture_on_commit_callbacks
):
    pool = alerting_pool(threshold=2, codes=2)
    subscription_add(user=ann, pool=pool)
    issue(pool, 1, django_capture_on_commit_callbacks)
    assert len(inbox.messages) == 1

    with django_capture_on_commit_callbacks(execute=True):
        import_run(import_id=import_text_start(pool=pool, text="R1\nR2\nR3").pk)
    assert len(inbox.messages) == 1  # stock 4: re-armed, nothing sent
    issue(pool, 3, django_capture_on_commit_callbacks)

    assert len(inbox.messages) == 2
    assert list(LowStockAlert.objects.values_list("crossing", flat=True)) == [2, 1]


def test_option_off_stops_emails_and_on_again_rearms(
    inbox, ann, django_capture_on_commit_callbacks
):
    pool = alerting_pool(threshold=3, codes=4)
    subscription_add(user=ann, pool=pool)
    with django_capture_on_commit_callbacks(execute=True):
        pool_update(pool=pool, notify_below_enabled=False)
    issue(pool, 2, django_capture_on_commit_callbacks)
    assert inbox.messages == []

    with django_capture_on_commit_callbacks(execute=True):
        pool_update(pool=pool, notify_below_enabled=True)

    assert len(inbox.messages) == 1


def test_codes_expiring_alert_through_the_expiry_task(
    inbox, ann, django_capture_on_commit_callbacks
):
    pool = alerting_pool(threshold=3, codes=2)
    make_codes(pool, ["OLD1", "OLD2"], available_till=timezone.now() - timedelta(hours=1))
    subscription_add(user=ann, pool=pool)

    with django_capture_on_commit_callbacks(execute=True):
        codes_expire_task.delay()  # the pools app's own beat task

    assert len(inbox.to("ann@example.com")) == 1
    assert LowStockAlert.objects.get().stock == 2
    with pytest.raises(CodeRefused):
        for n in range(3):
            code_issue(pool=pool, customer=f"c{n}")


def test_server_refusal_is_retried_and_nothing_is_sent_twice(inbox, ann):
    bob = make_manager("bob", email="bob@example.com")
    pool = alerting_pool()
    subscription_add(user=ann, pool=pool)
    subscription_add(user=bob, pool=pool)
    alert = LowStockAlert.objects.create(pool=pool, crossing=1, stock=2, threshold=3)
    inbox.refuse_next = 1  # the first recipient's message is refused

    with pytest.raises(smtplib.SMTPDataError):
        alert_send(alert_id=alert.pk)
    assert not alert.deliveries.exists()

    assert alert_send(alert_id=alert.pk) == 2
    assert alert_send(alert_id=alert.pk) == 0  # a retry after success sends nothing
    assert sorted(m["To"] for m in inbox.messages) == ["ann@example.com", "bob@example.com"]
    with pytest.raises(IntegrityError), transaction.atomic():
        AlertDelivery.objects.create(alert=alert, user=ann, email=ann.email)


def test_campaign_subscribers_get_alerts_of_its_new_pools(
    inbox, ann, django_capture_on_commit_callbacks
):
    campaign = make_campaign("Winter")
    subscription_add(user=ann, campaign=campaign)
    pool = alerting_pool(threshold=2, codes=2, campaign=campaign)

    issue(pool, 1, django_capture_on_commit_callbacks)

    assert len(inbox.to("ann@example.com")) == 1


def test_import_finished_notice_once_and_only_if_wanted(inbox, ann):
    pool = make_pool()
    job = import_text_start(pool=pool, text="N1\nN2", user=ann)
    import_run(import_id=job.pk)

    assert import_notice_send(import_id=job.pk) is True
    assert import_notice_send(import_id=job.pk) is False
    (message,) = inbox.to("ann@example.com")
    assert message["Subject"] == f"Import #{job.pk} into {pool.slug}: Completed"
    assert (
        f"The report: https://promo.example.com/admin/imports/import/{job.pk}/change/"
        in message.get_body(("plain",)).get_content()
    )

    import_notices_set(user=ann, enabled=False)
    other = import_text_start(pool=pool, text="N3", user=ann)
    import_run(import_id=other.pk)
    assert import_notice_send(import_id=other.pk) is False
    assert len(inbox.messages) == 1


@pytest.mark.postgresql  # concurrent writers
@pytest.mark.django_db(transaction=True)
def test_many_concurrent_issuers_send_one_email(inbox, ann):
    pool = alerting_pool(threshold=20, codes=40)
    subscription_add(user=ann, pool=pool)
    errors = []

    def issue_until_empty(worker):
        try:
            for n in range(100):
                try:
                    code_issue(pool=pool, customer=f"w{worker}-{n}")
                except CodeRefused:
                    return
        except Exception as error:  # noqa: BLE001  (reported below)
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=issue_until_empty, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert LowStockAlert.objects.count() == 1
    assert len(inbox.to("ann@example.com")) == 1


def test_draft_pools_do_not_alert_and_launch_checks(inbox, ann, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        pool = make_pool(notify_below_enabled=True, notify_below=5)
        subscription_add(user=ann, pool=pool)
        make_codes(pool, ["D1"])
        pool_update(pool=pool, description="still a draft")
    assert inbox.messages == []

    with django_capture_on_commit_callbacks(execute=True):
        pool_launch(pool=pool)

    assert len(inbox.to("ann@example.com")) == 1


def test_paused_and_ended_pools_do_not_alert(inbox, ann, django_capture_on_commit_callbacks):
    from pools.services import pool_end, pool_pause, pool_resume

    paused = alerting_pool(threshold=3, codes=3)
    subscription_add(user=ann, pool=paused)
    with django_capture_on_commit_callbacks(execute=True):
        pool_pause(pool=paused)
        codes_withdraw(pool=paused, codes=[f"{paused.slug}-0"])
        pools_check_stock()
    assert LowStockAlert.objects.filter(pool=paused).count() == 0

    with django_capture_on_commit_callbacks(execute=True):
        pool_resume(pool=paused)
    assert LowStockAlert.objects.filter(pool=paused).count() == 1

    ended = alerting_pool(threshold=3, codes=3)
    with django_capture_on_commit_callbacks(execute=True):
        pool_end(pool=ended)
        codes_withdraw(pool=ended, codes=[f"{ended.slug}-0"])
        pools_check_stock()
    assert LowStockAlert.objects.filter(pool=ended).count() == 0
