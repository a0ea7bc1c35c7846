from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from pools.models import Campaign, Pool


class Subscription(models.Model):
    """A staff member who wants low-stock e-mails of a pool, or of every pool of a campaign."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="promo_subscriptions",
        verbose_name=_("staff member"),
    )
    pool = models.ForeignKey(
        Pool,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="subscriptions",
        verbose_name=_("pool"),
    )
    campaign = models.ForeignKey(
        Campaign,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="subscriptions",
        verbose_name=_("campaign"),
    )
    created_at = models.DateTimeField(_("subscribed at"), auto_now_add=True)

    class Meta:
        # The product's words: the admin says "Subscribed staff", not "Subscriptions".
        verbose_name = _("subscribed staff member")
        verbose_name_plural = _("subscribed staff")
        constraints = [
            models.CheckConstraint(
                condition=Q(pool__isnull=True, campaign__isnull=False)
                | Q(pool__isnull=False, campaign__isnull=True),
                name="subscription_to_pool_or_campaign",
                violation_error_message=_("Subscribe to a pool or to a campaign."),
            ),
            models.UniqueConstraint(fields=["user", "pool"], name="subscription_unique_pool"),
            models.UniqueConstraint(
                fields=["user", "campaign"], name="subscription_unique_campaign"
            ),
        ]

    def __str__(self):
        return _("%(user)s (low-stock e-mails of %(target)s)") % {
            "user": self.user,
            "target": self.pool or self.campaign,
        }


class StaffPreference(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="promo_preference",
        verbose_name=_("staff member"),
    )
    import_finished_emails = models.BooleanField(
        _("e-mail me when my imports finish"), default=True
    )
    # The language the staff member last used the admin in (notifications/languages.py): e-mails
    # and reports written by a worker, outside any request, are written in it.
    language = models.CharField(_("language"), max_length=10, blank=True, default="")

    class Meta:
        verbose_name = _("staff preference")
        verbose_name_plural = _("staff preferences")

    def __str__(self):
        return str(self.user)


class PoolAlertState(models.Model):
    """Whether a pool's next fall below its threshold sends an alert (armed), and how many
    times it has fallen below so far."""

    pool = models.OneToOneField(
        Pool, on_delete=models.CASCADE, related_name="alert_state", verbose_name=_("pool")
    )
    armed = models.BooleanField(_("armed"), default=True)
    crossings = models.PositiveIntegerField(_("falls below the threshold"), default=0)

    class Meta:
        verbose_name = _("low-stock alert state")
        verbose_name_plural = _("low-stock alert states")

    def __str__(self):
        if self.armed:
            return _("%(pool)s: armed") % {"pool": self.pool}
        return _("%(pool)s: alerted") % {"pool": self.pool}


class LowStockAlert(models.Model):
    """One fall of a pool's stock below its threshold."""

    pool = models.ForeignKey(
        Pool, on_delete=models.CASCADE, related_name="low_stock_alerts", verbose_name=_("pool")
    )
    crossing = models.PositiveIntegerField(_("fall number"))
    stock = models.BigIntegerField(_("codes left"))
    threshold = models.PositiveIntegerField(_("alert below"))
    created_at = models.DateTimeField(_("raised at"), auto_now_add=True)
    # Set once every subscriber has had it; until then the beat task queues it again (outbox).
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)

    class Meta:
        verbose_name = _("low-stock alert")
        verbose_name_plural = _("low-stock alerts")
        ordering = ["-created_at", "-id"]
        constraints = [
            # One alert per crossing, however many workers notice it.
            models.UniqueConstraint(fields=["pool", "crossing"], name="alert_unique_crossing")
        ]

    def __str__(self):
        return _("%(pool)s below %(threshold)s (#%(crossing)s)") % {
            "pool": self.pool,
            "threshold": self.threshold,
            "crossing": self.crossing,
        }


class AlertDelivery(models.Model):
    """An alert e-mail the mail server accepted for one recipient."""

    alert = models.ForeignKey(
        LowStockAlert,
        on_delete=models.CASCADE,
        related_name="deliveries",
        verbose_name=_("low-stock alert"),
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("staff member"),
    )
    email = models.EmailField(_("e-mail address"))
    sent_at = models.DateTimeField(_("sent at"), auto_now_add=True)

    class Meta:
        verbose_name = _("low-stock alert e-mail")
        verbose_name_plural = _("low-stock alert e-mails")
        constraints = [
            # A retried task cannot send the same alert to the same person twice.
            models.UniqueConstraint(fields=["alert", "user"], name="delivery_unique_recipient")
        ]

    def __str__(self):
        return f"{self.alert} → {self.email}"
