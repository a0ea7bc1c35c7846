"""Low-stock alerts: one email per crossing of the threshold, re-armed when the stock is back,
with a forecast; the safety net that checks every pool; sending retried without sending twice;
race tests of the alert lock that fail for sure when the lock is removed."""

import smtplib
import threading
import time
from datetime import timedelta

import pytest
from django.core import mail
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from imports.engine import import_run
from imports.services import import_text_start, import_undo
from notifications import services
from notifications.models import AlertDelivery, LowStockAlert, PoolAlertState
from notifications.services import (
    _alert_context,
    alert_send,
    import_notice_send,
    import_notices_set,
    low_stock_check,
    pools_check_stock,
    subscription_add,
)
from notifications.signals import alert_raised
from pools.code_services import (
    addition_undo_run,
    code_issue,
    code_issue_batch,
    code_release,
    codes_expire,
    codes_withdraw,
)
from pools.models import Code, CodeIssue, Pool
from pools.refusals import CodeRefused
from pools.services import pool_launch, pool_update
from pools.tasks import codes_expire as codes_expire_task
from tests.factories import alerting_pool, make_campaign, make_codes, make_manager, make_pool
from tests.pools.locks import wait_inside_until_the_other_arrives

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


def test_alerts_follow_the_settings_as_saved_not_as_an_issuer_loaded_them(
    mailoutbox, ann, django_capture_on_commit_callbacks
):
    """A job or a shell session loaded the pool before staff lowered its threshold and then
    turned alerts off in the admin: its issues alert by what was saved since."""
    pool = alerting_pool(threshold=3, codes=5)
    subscription_add(user=ann, pool=pool)
    loaded_before = Pool.objects.get(pk=pool.pk)
    with django_capture_on_commit_callbacks(execute=True):
        pool_update(pool=pool, notify_below=2)

    issue(loaded_before, 3, django_capture_on_commit_callbacks)  # stock 2: not below 2
    assert mailoutbox == []
    with django_capture_on_commit_callbacks(execute=True):
        pool_update(pool=pool, notify_below_enabled=False)
    issue(loaded_before, 2, django_capture_on_commit_callbacks)  # stock 0, alerts off

    assert mailoutbox == []
    assert not LowStockAlert.objects.exists()


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


def test_a_mail_server_out_of_reach_is_tried_again_until_the_alert_goes_out(
    inbox, ann, monkeypatch
):
    """A refused connection (a mail server restarting) is retried by the task, as the
    server's own refusals are."""
    from notifications import tasks

    pool = alerting_pool()
    subscription_add(user=ann, pool=pool)
    alert = LowStockAlert.objects.create(pool=pool, crossing=1, stock=2, threshold=3)
    real_send = services._send
    faults = [ConnectionRefusedError(111, "Connection refused")]

    def out_of_reach_once(*args, **kwargs):
        if faults:
            raise faults.pop(0)
        return real_send(*args, **kwargs)

    monkeypatch.setattr(services, "_send", out_of_reach_once)
    # In process, with its retries (run at once rather than after their pauses).
    result = tasks.alert_send.apply(args=[alert.pk], throw=False)

    assert result.successful(), result.result
    assert faults == []
    assert len(inbox.to("ann@example.com")) == 1
    alert.refresh_from_db()
    assert alert.sent_at is not None


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


def test_a_pool_paused_while_low_alerts_once_for_its_crossing(
    inbox, ann, django_capture_on_commit_callbacks
):
    """Whatever happens to a pool's stock while it is paused, resuming it still low does not
    alert again for the crossing its subscribers already heard of."""
    from pools.services import pool_pause, pool_resume

    pool = alerting_pool(threshold=3, codes=4)
    subscription_add(user=ann, pool=pool)
    issue(pool, 2, django_capture_on_commit_callbacks)  # stock 2: one alert
    assert len(inbox.messages) == 1

    with django_capture_on_commit_callbacks(execute=True):
        pool_pause(pool=pool)
    with django_capture_on_commit_callbacks(execute=True):
        codes_withdraw(pool=pool, codes=[f"{pool.slug}-3"])  # a change of stock while paused
    with django_capture_on_commit_callbacks(execute=True):
        pool_update(pool=pool, notify_below=4)  # a change of settings while paused
    with django_capture_on_commit_callbacks(execute=True):
        pool_resume(pool=pool)
    issue(pool, 1, django_capture_on_commit_callbacks)
    pools_check_stock()

    assert len(inbox.messages) == 1
    assert LowStockAlert.objects.count() == 1


def _take_by_issue(pool, job, codes, step):
    for code in codes:
        code_issue(pool=pool, customer=f"{step}-{code}")


def _take_by_batch(pool, job, codes, step):
    code_issue_batch(pool=pool, customers=[f"{step}-{c}" for c in codes], idempotency_key=step)


def _take_by_withdrawal(pool, job, codes, step):
    codes_withdraw(pool=pool, codes=codes)


def _take_by_expiry(pool, job, codes, step):
    Code.objects.filter(pool=pool, code__in=codes).update(
        available_till=timezone.now() - timedelta(minutes=1)
    )
    codes_expire()


def _take_by_undo(pool, job, codes, step):
    addition_undo_run(undo_id=import_undo(job=job).pk)


@pytest.mark.parametrize(
    "take",
    [_take_by_issue, _take_by_batch, _take_by_withdrawal, _take_by_expiry, _take_by_undo],
    ids=["issue", "batch", "withdrawal", "expiry", "undo"],
)
def test_every_path_that_takes_stock_down_alerts_once_at_the_crossing(
    take, mailoutbox, ann, django_capture_on_commit_callbacks
):
    """Stock 6 taken down 2, 2 and 1 codes at a time (each an import of its own, so that an
    undo takes them too) by one path: one e-mail, when it falls below 3, without waiting
    for the safety net, and none as it falls further."""
    pool = make_pool(notify_below_enabled=True, notify_below=3)
    subscription_add(user=ann, pool=pool)
    parts = [["T1", "T2"], ["T3", "T4"], ["T5"], ["T6"]]
    jobs = []
    for part in parts:
        jobs.append(import_text_start(pool=pool, text="\n".join(part)))
        import_run(import_id=jobs[-1].pk)
        jobs[-1].refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        pool_launch(pool=pool)

    sent = []
    for step, (job, codes) in enumerate(zip(jobs[:3], parts[:3], strict=True)):
        with django_capture_on_commit_callbacks(execute=True):
            take(pool, job, codes, f"s{step}")
        sent.append(len(mailoutbox))

    assert sent == [0, 1, 1]
    assert list(LowStockAlert.objects.values_list("stock", "threshold")) == [(2, 3)]
    assert [message.to for message in mailoutbox] == [["ann@example.com"]]


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


def test_an_alert_the_mail_server_refused_stays_in_the_outbox_until_everyone_has_it(
    inbox, ann, settings
):
    from notifications.services import notifications_due
    from notifications.tasks import notifications_send_due

    settings.NOTICE_RETRY_SECONDS = 0
    bob = make_manager("bob", email="bob@example.com")
    pool = alerting_pool()
    subscription_add(user=ann, pool=pool)
    subscription_add(user=bob, pool=pool)
    alert = LowStockAlert.objects.create(pool=pool, crossing=1, stock=2, threshold=3)
    inbox.refuse_next = 1

    with pytest.raises(smtplib.SMTPDataError):
        alert_send(alert_id=alert.pk)  # its task gave up (or its worker died) here

    assert notifications_due().alerts == [alert.pk]
    notifications_send_due()
    notifications_send_due()
    assert sorted(m["To"] for m in inbox.messages) == ["ann@example.com", "bob@example.com"]
    assert notifications_due().alerts == []


def test_no_alert_for_a_pool_refilled_while_its_check_was_on_the_way(monkeypatch):
    """The check read the stock as low; before it decided, codes were added (and committed):
    an alert sent now would tell staff of a shortage that is over."""
    pool = low_pool(threshold=5, stock=2)
    real_read = services.pool_with_counts
    reads = []

    def refilled_after_the_first_read(pool):
        counted = real_read(pool)
        reads.append(counted.codes_available)
        if len(reads) == 1:
            make_codes(pool, [f"NEW{i}" for i in range(10)])
        return counted

    monkeypatch.setattr(services, "pool_with_counts", refilled_after_the_first_read)

    assert low_stock_check(pool=pool) is None
    assert not LowStockAlert.objects.exists()
    assert armed(pool) is True


def test_no_email_for_an_alert_rolled_back_and_one_when_raised_again(
    mailoutbox, ann, django_capture_on_commit_callbacks
):
    """The transaction that raised the alert was rolled back: nobody hears of an alert that
    does not exist; the next check raises it for good, and mails it once."""
    pool = low_pool(threshold=5, stock=2)
    subscription_add(user=ann, pool=pool)

    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        low_stock_check(pool=pool)
        raise RuntimeError("rolled back")
    assert mailoutbox == []
    assert not LowStockAlert.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        low_stock_check(pool=pool)
    assert [message.to for message in mailoutbox] == [["ann@example.com"]]


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
    real_read = services.pool_with_counts
    local = threading.local()

    def stock_with_meeting_points(pool):
        local.calls = getattr(local, "calls", 0) + 1
        counted = real_read(pool)
        if local.calls == 1:
            outside.wait()
        else:
            inside.append(1)
            wait_inside_until_the_other_arrives(inside)
        return counted

    monkeypatch.setattr(services, "pool_with_counts", stock_with_meeting_points)
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


def test_an_alert_at_no_codes_left_says_none_are_left_not_that_none_were_issued(
    inbox, ann, django_capture_on_commit_callbacks
):
    pool = alerting_pool(threshold=1, codes=2)
    subscription_add(user=ann, pool=pool)

    issue(pool, 2, django_capture_on_commit_callbacks)

    (message,) = inbox.to("ann@example.com")
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for body in (text, html):
        assert "Codes left to issue: <strong>0</strong>" in body or "Codes left to issue: 0" in body
        assert "Issued in the last 24 hours: 2." in body
        assert "None are left: add codes so that this pool can issue again." in body
        assert "No codes were issued" not in body
        assert "runs dry" not in body


def test_the_forecast_counts_codes_given_back(settings):
    settings.SITE_URL = "https://promo.example.com"
    pool = make_pool(launched=True)
    make_codes(pool, [f"G{i}" for i in range(10)])
    for n in range(4):
        code_issue(pool=pool, customer=f"c{n}", idempotency_key=f"k{n}")
    for n in range(2):
        code_release(pool=pool, code=f"G{n}", idempotency_key=f"k{n}")
    alert = LowStockAlert.objects.create(pool=pool, crossing=1, stock=8, threshold=10)

    context = _alert_context(alert, make_manager("gus", email="gus@example.com"))

    assert (context["issued_last_day"], context["released_last_day"]) == (4, 2)
    assert context["runs_dry_in"] == timedelta(days=4)  # 8 left, 4 issued less 2 given back


def test_a_pool_launched_without_codes_raises_no_alert_until_it_had_some(
    django_capture_on_commit_callbacks,
):
    """An empty pool is empty, not low (the launch confirmation says it has no codes): it alerts
    once it had codes and falls below its threshold."""
    with django_capture_on_commit_callbacks(execute=True):
        pool = make_pool(notify_below_enabled=True, notify_below=3, launched=True)
        pools_check_stock()
    assert not LowStockAlert.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        import_run(import_id=import_text_start(pool=pool, text="E1\nE2\nE3").pk)
        code_issue(pool=pool, customer="c1")

    assert list(LowStockAlert.objects.values_list("pool_id", "stock")) == [(pool.pk, 2)]
