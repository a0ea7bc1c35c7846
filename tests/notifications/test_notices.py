"""Import-finished, refill-stopped and export-finished notices, the outbox of notices due, who
is subscribed, and the launch warning: each asserted with the exact message, the recipients and
the moment recorded (these functions had no test that their mutants failed)."""

from datetime import timedelta

import pytest
from django.core import mail

from imports.models import Import
from notifications import services
from notifications.models import LowStockAlert, StaffPreference, Subscription
from notifications.services import (
    export_notice_send,
    import_notice_send,
    import_notices_enabled,
    import_notices_set,
    launch_warnings,
    notifications_due,
    pool_subscribers,
    refill_stopped_send,
    subscription_add,
    subscription_remove,
)
from pools.models import CodeExport, Pool
from tests.factories import NOW, make_campaign, make_manager, make_pool

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _site(settings):
    settings.SITE_URL = "https://promo.example.com"


def finished_import(pool, user, *, status=Import.Status.COMPLETED, **fields) -> Import:
    return Import.objects.create(
        pool=pool, source=Import.Source.TEXT, status=status, created_by=user, **fields
    )


def finished_export(pool, user, *, status=CodeExport.Status.COMPLETED, **fields) -> CodeExport:
    return CodeExport.objects.create(
        pool=pool, file_format="csv", status=status, created_by=user, **fields
    )


# Who hears of a pool


def test_subscribers_are_active_staff_with_an_address_each_once_in_order():
    campaign = make_campaign("Summer")
    pool = make_pool(campaign, slug="summer-1")
    other = make_pool(campaign, slug="summer-2")
    ann = make_manager("ann", email="ann@example.com")
    bob = make_manager("bob", email="bob@example.com")
    gone = make_manager("gone", email="gone@example.com", is_active=False)
    silent = make_manager("silent", email="")
    outsider = make_manager("outsider", email="out@example.com")
    outsider.is_staff = False
    outsider.save()
    for user in (ann, gone, silent, outsider):
        subscription_add(user=user, pool=pool)
    subscription_add(user=ann, campaign=campaign)  # ann twice: one e-mail
    subscription_add(user=bob, campaign=campaign)
    subscription_add(user=make_manager("cy", email="cy@example.com"), pool=other)

    assert list(pool_subscribers(pool)) == [ann, bob]


def test_unsubscribing_from_a_pool_keeps_the_campaign_subscription():
    campaign = make_campaign()
    pool = make_pool(campaign)
    ann = make_manager("ann", email="ann@example.com")
    first = subscription_add(user=ann, pool=pool)
    assert subscription_add(user=ann, pool=pool) == first  # subscribing again: the same one
    subscription_add(user=ann, campaign=campaign)

    subscription_remove(user=ann, pool=pool)

    assert list(Subscription.objects.values_list("pool", "campaign")) == [(None, campaign.pk)]
    subscription_remove(user=ann, campaign=campaign)
    assert not Subscription.objects.exists()


def test_launch_warns_only_when_alerts_are_on_and_nobody_would_hear():
    lonely = make_pool(notify_below_enabled=True, notify_below=5)
    heard = make_pool(notify_below_enabled=True, notify_below=5)
    subscription_add(user=make_manager("ann", email="ann@example.com"), pool=heard)
    quiet = make_pool()

    assert launch_warnings(lonely) == [
        "Low-stock alerts are on, but nobody with an e-mail address is subscribed to this pool or "
        "its campaign: nobody would hear that it runs low."
    ]
    assert launch_warnings(heard) == []
    assert launch_warnings(quiet) == []


def test_a_jobs_notice_goes_to_the_one_who_started_it_and_nobody_else():
    """Not the pool's creator, nor its subscribers: the import and the export are ann's."""
    ann = make_manager("ann", email="ann@example.com")
    bob = make_manager("bob", email="bob@example.com")
    pool = make_pool(slug="shared")
    Pool.objects.filter(pk=pool.pk).update(created_by=bob)
    subscription_add(user=bob, pool=pool)
    pool.refresh_from_db()

    assert import_notice_send(import_id=finished_import(pool, ann).pk) is True
    assert export_notice_send(export_id=finished_export(pool, ann).pk) is True

    assert [message.to for message in mail.outbox] == [["ann@example.com"], ["ann@example.com"]]


def test_the_launch_warning_is_given_exactly_when_nobody_would_get_the_alert():
    campaign = make_campaign("Autumn")
    by_campaign = make_pool(campaign, notify_below_enabled=True, notify_below=5)
    subscription_add(user=make_manager("ann", email="ann@example.com"), campaign=campaign)
    unreachable = make_pool(notify_below_enabled=True, notify_below=5)
    subscription_add(user=make_manager("silent", email=""), pool=unreachable)
    subscription_add(
        user=make_manager("gone", email="gone@example.com", is_active=False), pool=unreachable
    )

    assert launch_warnings(by_campaign) == []
    assert launch_warnings(unreachable) == [services.NO_SUBSCRIBERS]


def test_import_notices_are_on_until_turned_off():
    ann = make_manager("ann", email="ann@example.com")
    assert import_notices_enabled(ann) is True

    import_notices_set(user=ann, enabled=False)
    assert import_notices_enabled(ann) is False
    import_notices_set(user=ann, enabled=True)

    assert import_notices_enabled(ann) is True
    assert StaffPreference.objects.get(user=ann).import_finished_emails is True


# Import finished


def test_import_notice_says_the_outcome_and_records_when_it_went(frozen):
    ann = make_manager("ann", email="ann@example.com")
    job = finished_import(make_pool(slug="june"), ann, status=Import.Status.FAILED)

    assert import_notice_send(import_id=job.pk) is True

    (message,) = mail.outbox
    assert message.subject == f"Import #{job.pk} into june: Failed"
    assert message.to == ["ann@example.com"]
    assert message.body.splitlines()[2:4] == [
        f"Your import #{job.pk} into the pool “june” finished: Failed.",
        "Codes added: 0; already in the pool: 0; duplicates inside the file: 0; rows rejected: 0; "
        "skipped: 0 (of 0 rows read).",
    ]
    assert f"The report: https://promo.example.com/admin/imports/import/{job.pk}/change/" in (
        message.body
    )
    job.refresh_from_db()
    assert job.finished_notice_sent_at == NOW
    assert import_notice_send(import_id=job.pk) is False
    assert len(mail.outbox) == 1


@pytest.mark.parametrize("status", [Import.Status.QUEUED, Import.Status.RUNNING])
def test_no_import_notice_before_the_import_finishes(status):
    job = finished_import(make_pool(), make_manager("ann", email="ann@example.com"), status=status)

    assert import_notice_send(import_id=job.pk) is False
    assert mail.outbox == []
    job.refresh_from_db()
    assert job.finished_notice_sent_at is None


def test_no_import_notice_without_someone_to_tell():
    pool = make_pool()
    nobody = finished_import(pool, None)
    no_address = finished_import(pool, make_manager("ann", email=""))
    bob = make_manager("bob", email="bob@example.com")
    import_notices_set(user=bob, enabled=False)
    unwanted = finished_import(pool, bob)

    assert [import_notice_send(import_id=job.pk) for job in (nobody, no_address, unwanted)] == [
        False,
        False,
        False,
    ]
    assert mail.outbox == []
    assert not Import.objects.filter(finished_notice_sent_at__isnull=False).exists()


# Refill stopped


def test_refill_stopped_tells_every_subscriber_once(frozen):
    pool = make_pool(make_campaign("Autumn"), slug="autumn", refill_below=5, refill_count=10)
    for name in ("ann", "bob"):
        subscription_add(user=make_manager(name, email=f"{name}@example.com"), pool=pool)
    job = finished_import(
        pool, None, status=Import.Status.FAILED, refill=True, message="No refill can run."
    )

    assert refill_stopped_send(import_id=job.pk) == 2

    assert [(m.to, m.subject) for m in mail.outbox] == [
        (["ann@example.com"], "Promo codes cannot be refilled: autumn (Autumn)"),
        (["bob@example.com"], "Promo codes cannot be refilled: autumn (Autumn)"),
    ]
    assert mail.outbox[0].body.splitlines()[2:5] == [
        "The promo code pool “autumn” of the campaign “Autumn” keeps at least 5 codes by "
        "generating more, but this refill could not run.",
        "",
        "No refill can run.",
    ]
    assert f"The report: https://promo.example.com/admin/imports/import/{job.pk}/change/" in (
        mail.outbox[1].body
    )
    job.refresh_from_db()
    assert job.finished_notice_sent_at == NOW
    assert refill_stopped_send(import_id=job.pk) == 0
    assert len(mail.outbox) == 2


def test_refill_stopped_is_not_sent_for_an_import_someone_started():
    pool = make_pool()
    subscription_add(user=make_manager("ann", email="ann@example.com"), pool=pool)
    job = finished_import(pool, None, status=Import.Status.FAILED)

    assert refill_stopped_send(import_id=job.pk) == 0
    assert mail.outbox == []
    job.refresh_from_db()
    assert job.finished_notice_sent_at is None


# Export finished


def test_export_notice_links_the_file_and_records_when_it_went(frozen):
    ann = make_manager("ann", email="ann@example.com")
    export = finished_export(make_pool(slug="july"), ann, rows_done=3, expires_at=NOW)

    assert export_notice_send(export_id=export.pk) is True

    (message,) = mail.outbox
    assert message.subject == f"Export #{export.pk} of july: Completed"
    assert message.to == ["ann@example.com"]
    assert (
        f"Codes written: 3. Download it (kept until 2026-05-06 07:08 UTC): "
        f"https://promo.example.com/admin/pools/codeexport/{export.pk}/download/"
    ) in message.body
    assert f"The export: https://promo.example.com/admin/pools/codeexport/{export.pk}/change/" in (
        message.body
    )
    export.refresh_from_db()
    assert export.finished_notice_sent_at == NOW
    assert export_notice_send(export_id=export.pk) is False
    assert len(mail.outbox) == 1


def test_export_notice_of_all_pools_says_so():
    export = finished_export(
        None, make_manager("ann", email="ann@example.com"), status=CodeExport.Status.FAILED
    )

    assert export_notice_send(export_id=export.pk) is True

    assert mail.outbox[0].subject == f"Export #{export.pk} of all pools: Failed"


def test_no_export_notice_unfinished_or_without_someone_to_tell():
    pool = make_pool()
    ann = make_manager("ann", email="ann@example.com")
    running = finished_export(pool, ann, status=CodeExport.Status.RUNNING)
    nobody = finished_export(pool, None)
    no_address = finished_export(pool, make_manager("cy", email=""))
    bob = make_manager("bob", email="bob@example.com")
    import_notices_set(user=bob, enabled=False)
    unwanted = finished_export(pool, bob)

    sent = [export_notice_send(export_id=e.pk) for e in (running, nobody, no_address, unwanted)]

    assert sent == [False, False, False, False]
    assert mail.outbox == []
    assert not CodeExport.objects.filter(finished_notice_sent_at__isnull=False).exists()


# The outbox


def test_notices_are_due_from_the_retry_delay_until_the_window_ends_to_the_second(frozen, settings):
    settings.NOTICE_RETRY_SECONDS, settings.NOTICE_WINDOW_HOURS = 60, 24
    newest, oldest = NOW - timedelta(seconds=60), NOW - timedelta(hours=24)
    second = timedelta(seconds=1)
    ann = make_manager("ann", email="ann@example.com")
    pool = make_pool()

    def job(finished_at, **fields):
        return finished_import(pool, ann, finished_at=finished_at, **fields).pk

    due = [job(newest), job(oldest), job(newest, status=Import.Status.COMPLETED_WITH_ERRORS)]
    job(newest + second)  # too recent: the usual path may still send it
    job(oldest - second)  # too old
    job(newest, finished_notice_sent_at=NOW)
    job(newest, status=Import.Status.RUNNING)
    finished_import(pool, None, finished_at=newest)
    finished_import(pool, make_manager("cy", email=""), finished_at=newest)
    bob = make_manager("bob", email="bob@example.com")
    import_notices_set(user=bob, enabled=False)
    finished_import(pool, bob, finished_at=newest)

    def alert(created_at, **fields):
        made = LowStockAlert.objects.create(
            pool=pool, crossing=LowStockAlert.objects.count() + 1, stock=1, threshold=2, **fields
        )
        LowStockAlert.objects.filter(pk=made.pk).update(created_at=created_at)
        return made.pk

    alerts_due = [alert(newest), alert(oldest)]
    alert(newest + second)
    alert(oldest - second)
    alert(newest, sent_at=NOW)

    imports, alerts, exports = notifications_due()

    assert sorted(imports) == sorted(due)
    assert sorted(alerts) == sorted(alerts_due)
    assert exports == []


def test_an_export_notice_is_due_whatever_the_export_ended_with(frozen, settings):
    """Completed (the link) or failed (why): both are told, so both wait in the outbox."""
    settings.NOTICE_RETRY_SECONDS = 60
    ann = make_manager("ann", email="ann@example.com")
    pool = make_pool()
    finished_at = NOW - timedelta(seconds=60)
    due = {
        status: finished_export(pool, ann, status=status, finished_at=finished_at).pk
        for status in CodeExport.Status.values
    }

    assert sorted(notifications_due().exports) == sorted(
        [due[CodeExport.Status.COMPLETED], due[CodeExport.Status.FAILED]]
    )


def test_a_sent_alert_records_the_moment_all_were_served(frozen):
    pool = make_pool()
    subscription_add(user=make_manager("ann", email="ann@example.com"), pool=pool)
    alert = LowStockAlert.objects.create(pool=pool, crossing=1, stock=1, threshold=5)

    assert services.alert_send(alert_id=alert.pk) == 1

    alert.refresh_from_db()
    assert alert.sent_at == NOW
