"""Tests that fail on the mutants of low-stock alerts that the rest of the suite let through,
and a race test of the alert lock that fails for sure when the lock is removed."""

import threading
import time
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from notifications import services
from notifications.models import AlertDelivery, LowStockAlert, PoolAlertState
from notifications.services import _alert_context, alert_send, low_stock_check, subscription_add
from notifications.signals import alert_raised
from pools.code_services import code_issue
from pools.models import CodeIssue, Pool
from tests.factories import make_campaign, make_codes, make_manager, make_pool
from tests.pools.locks import wait_inside_until_the_other_arrives

pytestmark = pytest.mark.django_db


def low_pool(*, threshold: int, stock: int, enabled: bool = True, armed: bool = True) -> Pool:
    """An active pool with `stock` codes whose alert state is `armed`; launched with the option
    off so that the launch's own check changes nothing, then set as asked."""
    pool = make_pool(launched=True)
    make_codes(pool, [f"{pool.slug}-{i}" for i in range(stock)])
    Pool.objects.filter(pk=pool.pk).update(notify_below_enabled=enabled, notify_below=threshold)
    PoolAlertState.objects.update_or_create(pool=pool, defaults={"armed": armed})
    pool.refresh_from_db()
    return pool


def armed(pool) -> bool:
    return PoolAlertState.objects.get(pool=pool).armed


def test_stock_back_exactly_at_the_threshold_rearms():
    pool = low_pool(threshold=5, stock=5, armed=False)

    assert low_stock_check(pool=pool) is None
    assert armed(pool) is True


def test_stock_one_below_the_threshold_stays_disarmed_and_sends_nothing():
    pool = low_pool(threshold=5, stock=4, armed=False)

    assert low_stock_check(pool=pool) is None
    assert armed(pool) is False
    assert not LowStockAlert.objects.exists()


def test_stock_one_below_the_threshold_alerts_once_and_at_it_does_not():
    at = low_pool(threshold=5, stock=5)
    below = low_pool(threshold=5, stock=4)

    assert low_stock_check(pool=at) is None
    alert = low_stock_check(pool=below)

    assert (alert.pool_id, alert.crossing, alert.stock, alert.threshold) == (below.pk, 1, 4, 5)
    assert (armed(at), armed(below)) == (True, False)
    assert low_stock_check(pool=below) is None
    assert LowStockAlert.objects.count() == 1


def test_no_alert_while_the_option_is_off():
    pool = low_pool(threshold=5, stock=1, enabled=False)

    assert low_stock_check(pool=pool) is None
    services.pools_check_stock()

    assert not LowStockAlert.objects.exists()
    assert armed(pool) is True


def test_a_retry_sends_to_every_subscriber_after_one_already_served(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    users = [make_manager(name, email=f"{name}@example.com") for name in ("ann", "bob", "cy")]
    pool = low_pool(threshold=5, stock=1)
    for user in users:
        subscription_add(user=user, pool=pool)
    alert = LowStockAlert.objects.create(pool=pool, crossing=1, stock=1, threshold=5)
    # The first subscriber had it before the previous attempt failed.
    AlertDelivery.objects.create(alert=alert, user=users[0], email=users[0].email)

    before = timezone.now()
    assert alert_send(alert_id=alert.pk) == 2

    assert [m.to for m in mail.outbox] == [["bob@example.com"], ["cy@example.com"]]
    alert.refresh_from_db()
    assert before <= alert.sent_at <= timezone.now()


def test_the_forecast_divides_the_stock_by_the_last_day_issues():
    pool = make_pool(launched=True)
    make_codes(pool, [f"F{i}" for i in range(10)])
    for n in range(4):
        code_issue(pool=pool, customer=f"c{n}")
    alert = LowStockAlert.objects.create(pool=pool, crossing=1, stock=8, threshold=10)
    user = make_manager("dee", email="dee@example.com")

    context = _alert_context(alert, user)

    assert context["issued_last_day"] == 4
    assert context["runs_dry_in"] == timedelta(days=2)
    alert.stock = 0
    assert _alert_context(alert, user)["runs_dry_in"] is None


def test_the_forecast_counts_the_last_24_hours_only_and_says_when(settings):
    settings.SITE_URL = "https://promo.example.com"
    pool = make_pool(launched=True)
    make_codes(pool, [f"D{i}" for i in range(5)])
    recent, old, older = (code_issue(pool=pool, customer=f"c{n}") for n in range(3))
    now = timezone.now()
    CodeIssue.objects.filter(code=recent).update(issued_at=now - timedelta(hours=23))
    CodeIssue.objects.filter(code=old).update(issued_at=now - timedelta(hours=24, minutes=30))
    CodeIssue.objects.filter(code=older).update(issued_at=now - timedelta(days=3))
    alert = LowStockAlert.objects.create(pool=pool, crossing=1, stock=3, threshold=10)
    user = make_manager("eve", email="eve@example.com")

    context = _alert_context(alert, user)

    assert context["issued_last_day"] == 1
    assert context["runs_dry_in"] == timedelta(days=3)
    assert now + timedelta(days=3) <= context["runs_dry_at"] <= timezone.now() + timedelta(days=3)
    assert context["pool_url"] == f"https://promo.example.com/admin/pools/pool/{pool.pk}/change/"
    assert context["add_codes_url"] == (
        f"https://promo.example.com/admin/imports/import/add/?pool={pool.pk}"
    )
    assert context["template_url"] == "https://promo.example.com/admin/imports/import/template.xlsx"
    assert (context["user"], context["pool"], context["campaign"]) == (user, pool, pool.campaign)


def test_no_forecast_without_issues_in_the_last_day():
    pool = make_pool(launched=True)
    alert = LowStockAlert.objects.create(pool=pool, crossing=1, stock=3, threshold=10)

    context = _alert_context(alert, make_manager("fay", email="fay@example.com"))

    assert (context["issued_last_day"], context["runs_dry_in"], context["runs_dry_at"]) == (
        0,
        None,
        None,
    )


def test_a_pool_without_an_alert_state_yet_alerts_on_its_first_fall():
    pool = low_pool(threshold=5, stock=2)
    PoolAlertState.objects.filter(pool=pool).delete()

    alert = low_stock_check(pool=pool)

    assert (alert.crossing, alert.stock) == (1, 2)
    assert PoolAlertState.objects.get(pool=pool).armed is False


def test_the_safety_net_alerts_a_low_pool_that_no_issue_checked():
    low = low_pool(threshold=5, stock=2)
    fine = low_pool(threshold=5, stock=9)

    services.pools_check_stock()

    assert list(LowStockAlert.objects.values_list("pool_id", "stock")) == [(low.pk, 2)]
    assert (armed(low), armed(fine)) == (False, True)


def test_the_safety_net_rearms_a_pool_whose_option_was_turned_off():
    pool = low_pool(threshold=5, stock=2, enabled=False, armed=False)

    services.pools_check_stock()

    assert armed(pool) is True
    assert not LowStockAlert.objects.exists()


def test_a_failing_alert_receiver_does_not_fail_the_check(django_capture_on_commit_callbacks):
    def broken_receiver(**kwargs):
        raise RuntimeError("queueing failed")

    alert_raised.connect(broken_receiver)
    try:
        pool = low_pool(threshold=5, stock=2)
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            alert = low_stock_check(pool=pool)
    finally:
        alert_raised.disconnect(broken_receiver)

    assert len(callbacks) == 1
    assert (alert.pool_id, alert.crossing) == (pool.pk, 1)


def test_the_alert_subject_names_the_pool_and_its_campaign(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    pool = make_pool(campaign=make_campaign("Spring sale"), slug="spring-10")
    user = make_manager("gil", email="gil@example.com")
    subscription_add(user=user, pool=pool)
    alert = LowStockAlert.objects.create(pool=pool, crossing=1, stock=1, threshold=5)

    assert alert_send(alert_id=alert.pk) == 1

    (message,) = mail.outbox
    assert message.subject == "Promo codes running low: spring-10 (Spring sale)"
    assert message.to == ["gil@example.com"]


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_checks_racing_into_one_crossing_raise_one_alert(monkeypatch):
    """Both checks read the pool as low and armed before either takes the lock (a barrier);
    inside the locked section the first waits until the second is either inside too or
    blocked on the alert state's row lock. With the lock the second is blocked, and then
    finds the pool alerted already; without it both are inside at once, each having read
    "armed", and two alerts are raised."""
    pool = low_pool(threshold=5, stock=3)
    outside = threading.Barrier(2, timeout=30)
    inside = []
    real_stock = services.pool_stock
    local = threading.local()

    def stock_with_meeting_points(*, pool):
        local.calls = getattr(local, "calls", 0) + 1
        stock = real_stock(pool=pool)
        if local.calls == 1:
            outside.wait()
        else:
            inside.append(1)
            wait_inside_until_the_other_arrives(inside)
        return stock

    monkeypatch.setattr(services, "pool_stock", stock_with_meeting_points)
    results, errors = [], []

    def check():
        try:
            results.append(low_stock_check(pool=pool))
        except Exception as error:  # noqa: BLE001  (asserted below)
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=check) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert LowStockAlert.objects.filter(pool=pool).count() == 1
    assert sorted(r is None for r in results) == [False, True]
    assert PoolAlertState.objects.get(pool=pool).crossings == 1


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_senders_of_one_alert_racing_send_each_subscriber_one_email(monkeypatch, settings):
    """The first sender waits inside its locked section, before the mail goes out, until the
    second is inside too or blocked on the alert's row lock: without the lock both would
    find no delivery recorded and both would send."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    pool = low_pool(threshold=5, stock=1)
    subscription_add(user=make_manager("ann", email="ann@example.com"), pool=pool)
    alert = LowStockAlert.objects.create(pool=pool, crossing=1, stock=1, threshold=5)
    inside = []
    real_send = services._send

    def send_after_waiting(*args, **kwargs):
        inside.append(1)
        if len(inside) == 1:
            wait_inside_until_the_other_arrives(inside)
        return real_send(*args, **kwargs)

    monkeypatch.setattr(services, "_send", send_after_waiting)
    sent, errors = [], []

    def send():
        try:
            sent.append(alert_send(alert_id=alert.pk))
        except Exception as error:  # noqa: BLE001  (asserted below)
            errors.append(error)
        finally:
            connection.close()

    first = threading.Thread(target=send)
    first.start()
    while not inside:
        time.sleep(0.01)
    second = threading.Thread(target=send)
    second.start()
    first.join()
    second.join()

    assert errors == []
    assert sorted(sent) == [0, 1]
    assert [m.to for m in mail.outbox] == [["ann@example.com"]]
    assert AlertDelivery.objects.filter(alert=alert).count() == 1
