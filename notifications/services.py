"""Low-stock alerts to subscribed staff, and import-finished notices.

An active pool alerts once per crossing: when its stock falls below the threshold while armed,
it sends one alert and disarms; it re-arms when the stock is back at the threshold or above, or
when the option is turned off (so turning it on again re-arms it).
"""

from datetime import timedelta
from typing import NamedTuple

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from imports.models import Import
from pools.export_services import export_description, export_rows_named
from pools.models import CodeExport, Pool
from pools.selectors import pool_alerts_now, pool_issued_since, pool_with_counts

from .models import AlertDelivery, LowStockAlert, PoolAlertState, StaffPreference, Subscription
from .signals import alert_raised


def subscription_add(*, user, pool: Pool | None = None, campaign=None) -> Subscription:
    """Subscribe `user` to a pool's low-stock e-mails, or to those of every pool of a campaign."""
    subscription, _ = Subscription.objects.get_or_create(user=user, pool=pool, campaign=campaign)
    return subscription


def subscription_remove(*, user, pool: Pool | None = None, campaign=None) -> None:
    Subscription.objects.filter(user=user, pool=pool, campaign=campaign).delete()


def pool_subscribers(pool: Pool):
    """Return the active staff with an e-mail address subscribed to the pool or its campaign."""
    return (
        get_user_model()
        .objects.filter(is_active=True, is_staff=True)
        .exclude(email="")
        .filter(
            Q(promo_subscriptions__pool=pool) | Q(promo_subscriptions__campaign=pool.campaign_id)
        )
        .distinct()
        .order_by("pk")
    )


NO_SUBSCRIBERS = (
    "Low-stock alerts are on, but nobody with an e-mail address is subscribed to this pool or "
    "its campaign: nobody would hear that it runs low."
)


def launch_warnings(pool: Pool) -> list[str]:
    """Warn at launch when the pool alerts on low stock but nobody would get the e-mail."""
    if pool.notify_below_enabled and not pool_subscribers(pool).exists():
        return [NO_SUBSCRIBERS]
    return []


def low_stock_check(*, pool: Pool) -> LowStockAlert | None:
    """Alert the pool's subscribers if its stock has just fallen below the threshold (an
    active pool that had codes: pool_alerts_now, the rule the "low stock" badge follows too).

    Cheap when nothing changes: the pool's counter rows and its alert state are read, nothing
    is locked. Returns the new alert, if one was raised.
    """
    pool = pool_with_counts(pool)  # the settings and counts as saved now
    if pool.status in (Pool.Status.PAUSED, Pool.Status.ENDED):
        # No alerts while paused or after the end; the alert state is left as it was, so a
        # resumed pool still low on codes does not alert again for the same crossing.
        return None
    below = pool_alerts_now(pool)
    state = PoolAlertState.objects.filter(pool=pool).first()
    armed = state is None or state.armed
    if below != armed:
        return None  # above and armed, or below and already alerted
    with transaction.atomic():
        state, _ = PoolAlertState.objects.select_for_update().get_or_create(pool=pool)
        # Read again under the lock: a stock read before it may be stale, and re-arming on a
        # stale "above" would let the next issue alert a second time for the same crossing.
        pool = pool_with_counts(pool)
        below = pool_alerts_now(pool)
        if not below:
            state.armed = True
            state.save(update_fields=["armed"])
            return None
        if not state.armed:
            return None  # a concurrent check alerted first
        state.armed = False
        state.crossings += 1
        state.save(update_fields=["armed", "crossings"])
        alert = LowStockAlert.objects.create(
            pool=pool,
            crossing=state.crossings,
            stock=pool.codes_available,
            threshold=pool.notify_below,
        )
        transaction.on_commit(
            lambda: alert_raised.send(sender=LowStockAlert, alert=alert), robust=True
        )
    return alert


def pools_check_stock() -> None:
    """Check every pool that alerts or may re-arm (a safety net for missed stock changes)."""
    watched = Pool.objects.filter(
        Q(notify_below_enabled=True) | Q(alert_state__armed=False)
    ).exclude(status__in=(Pool.Status.PAUSED, Pool.Status.ENDED))
    for pool in watched:
        low_stock_check(pool=pool)


def alert_send(*, alert_id: int) -> int:
    """E-mail an alert to each subscriber who has not had it yet; return how many were sent.

    One sender at a time per alert (the alert's row is locked), and a delivery is recorded only
    after the mail server accepted the message, so a retried task sends the rest and never sends
    one twice. A mail-server error propagates, for the task to retry.
    """
    alert = LowStockAlert.objects.select_related("pool__campaign").get(pk=alert_id)
    sent = 0
    for user in pool_subscribers(alert.pool):
        with transaction.atomic():
            LowStockAlert.objects.select_for_update().get(pk=alert.pk)
            if AlertDelivery.objects.filter(alert=alert, user=user).exists():
                continue
            _send(
                "low_stock",
                subject=f"Promo codes running low: {alert.pool} ({alert.pool.campaign})",
                to=user.email,
                context=_alert_context(alert, user),
            )
            AlertDelivery.objects.create(alert=alert, user=user, email=user.email)
            sent += 1
    LowStockAlert.objects.filter(pk=alert.pk, sent_at__isnull=True).update(sent_at=timezone.now())
    return sent


class Due(NamedTuple):
    imports: list[int]
    alerts: list[int]
    exports: list[int]


def notifications_due() -> Due:
    """Return the ids of the finished imports and exports whose notice is due and of the alerts
    not sent to everyone, as an outbox: their queueing may have failed (the broker was down).

    Only those due for longer than NOTICE_RETRY_SECONDS (the usual path sends them sooner) and
    for less than NOTICE_WINDOW_HOURS. Sending them twice is harmless: each send locks its row
    and sends what was not sent yet, so every notice arrives once.
    """
    now = timezone.now()
    newest = now - timedelta(seconds=settings.NOTICE_RETRY_SECONDS)
    oldest = now - timedelta(hours=settings.NOTICE_WINDOW_HOURS)

    def finished_jobs(model, statuses):
        return list(
            model.objects.filter(
                status__in=statuses,
                finished_notice_sent_at__isnull=True,
                finished_at__lte=newest,
                finished_at__gte=oldest,
                created_by__isnull=False,
            )
            .exclude(created_by__email="")
            .exclude(created_by__promo_preference__import_finished_emails=False)
            .values_list("pk", flat=True)
        )

    alerts = list(
        LowStockAlert.objects.filter(
            sent_at__isnull=True, created_at__lte=newest, created_at__gte=oldest
        ).values_list("pk", flat=True)
    )
    # A removed export (kept time over) has nothing left to link to.
    exports = finished_jobs(CodeExport, (CodeExport.Status.COMPLETED, CodeExport.Status.FAILED))
    return Due(finished_jobs(Import, Import.FINISHED), alerts, exports)


def _alert_context(alert: LowStockAlert, user) -> dict:
    pool = alert.pool
    since = timezone.now() - timedelta(hours=24)
    issued_last_day, released_last_day = pool_issued_since(pool, since=since)
    # The stock drains by what was issued and not given back.
    drained = issued_last_day - released_last_day
    runs_dry_in = timedelta(days=alert.stock / drained) if drained > 0 and alert.stock else None
    return {
        "user": user,
        "alert": alert,
        "pool": pool,
        "campaign": pool.campaign,
        "issued_last_day": issued_last_day,
        "released_last_day": released_last_day,
        "runs_dry_in": runs_dry_in,
        "runs_dry_at": timezone.now() + runs_dry_in if runs_dry_in else None,
        "pool_url": settings.SITE_URL + reverse("admin:pools_pool_change", args=[pool.pk]),
        "add_codes_url": settings.SITE_URL
        + reverse("admin:imports_import_add")
        + f"?pool={pool.pk}",
        "template_url": settings.SITE_URL + reverse("admin:imports_template", args=["xlsx"]),
    }


def import_notice_send(*, import_id: int) -> bool:
    """E-mail the person who started an import its outcome, once. Return True if sent."""
    with transaction.atomic():
        job = (
            Import.objects.select_for_update(of=("self",))
            .select_related("pool", "created_by")
            .get(pk=import_id)
        )
        user = job.created_by
        if job.finished_notice_sent_at or not job.is_finished or user is None or not user.email:
            return False
        if not import_notices_enabled(user):
            return False
        _send(
            "import_finished",
            subject=f"Import #{job.pk} into {job.pool}: {job.get_status_display()}",
            to=user.email,
            context={
                "job": job,
                "user": user,
                "report_url": settings.SITE_URL
                + reverse("admin:imports_import_change", args=[job.pk]),
            },
        )
        job.finished_notice_sent_at = timezone.now()
        job.save(update_fields=["finished_notice_sent_at"])
    return True


def refill_stopped_send(*, import_id: int) -> int:
    """E-mail the pool's subscribers that its refill was stopped by the capacity rule, once
    (the import's notice time records it); return how many were sent."""
    with transaction.atomic():
        job = (
            Import.objects.select_for_update(of=("self",))
            .select_related("pool__campaign")
            .get(pk=import_id)
        )
        if job.finished_notice_sent_at or not job.refill:
            return 0
        sent = 0
        for user in pool_subscribers(job.pool):
            _send(
                "refill_stopped",
                subject=f"Promo codes cannot be refilled: {job.pool} ({job.pool.campaign})",
                to=user.email,
                context={
                    "job": job,
                    "user": user,
                    "pool": job.pool,
                    "report_url": settings.SITE_URL
                    + reverse("admin:imports_import_change", args=[job.pk]),
                },
            )
            sent += 1
        job.finished_notice_sent_at = timezone.now()
        job.save(update_fields=["finished_notice_sent_at"])
    return sent


def export_notice_send(*, export_id: int) -> bool:
    """E-mail the person who asked for an export the link to its file (or why it failed),
    once, under the same preference as import notices. Return True if sent."""
    with transaction.atomic():
        export = (
            CodeExport.objects.select_for_update(of=("self",))
            .select_related("pool", "created_by")
            .get(pk=export_id)
        )
        user = export.created_by
        if export.finished_notice_sent_at or not export.is_finished or user is None:
            return False
        if not user.email or not import_notices_enabled(user):
            return False
        _send(
            "export_finished",
            subject=f"Export #{export.pk} of {export_description(export)}: "
            f"{export.get_status_display()}",
            to=user.email,
            context={
                "export": export,
                "description": export_description(export),
                "rows_named": export_rows_named(export),
                "user": user,
                "export_url": settings.SITE_URL
                + reverse("admin:pools_codeexport_change", args=[export.pk]),
                "download_url": settings.SITE_URL
                + reverse("admin:pools_codeexport_download", args=[export.pk]),
            },
        )
        export.finished_notice_sent_at = timezone.now()
        export.save(update_fields=["finished_notice_sent_at"])
    return True


def import_notices_enabled(user) -> bool:
    preference = StaffPreference.objects.filter(user=user).first()
    return preference is None or preference.import_finished_emails


def import_notices_set(*, user, enabled: bool) -> StaffPreference:
    """Turn the import-finished e-mails of `user` on or off."""
    preference, _ = StaffPreference.objects.update_or_create(
        user=user, defaults={"import_finished_emails": enabled}
    )
    return preference


def header_clean(value: str) -> str:
    """Return `value` fit for a mail header: one line, without control characters.

    Names staff typed (a campaign's, a pool's) go into subjects; a line break in one would make
    Django refuse the message (BadHeaderError), and the e-mail would never go out.
    """
    printable = "".join(ch if ch.isprintable() else " " for ch in value)
    return " ".join(printable.split())


def _send(template: str, *, subject: str, to: str, context: dict) -> None:
    text = render_to_string(f"notifications/email/{template}.txt", context)
    html = render_to_string(f"notifications/email/{template}.html", context)
    message = EmailMultiAlternatives(
        header_clean(subject), text, settings.DEFAULT_FROM_EMAIL, [header_clean(to)]
    )
    message.attach_alternative(html, "text/html")
    message.send()
