from django.conf import settings
from django.db import models
from django.db.models import Q

from pools.models import Campaign, Pool


class Subscription(models.Model):
    """A staff member who wants low-stock e-mails of a pool, or of every pool of a campaign."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="promo_subscriptions"
    )
    pool = models.ForeignKey(
        Pool, on_delete=models.CASCADE, null=True, blank=True, related_name="subscriptions"
    )
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, null=True, blank=True, related_name="subscriptions"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # The product's words: the admin says "Subscribed staff", not "Subscriptions".
        verbose_name = "subscribed staff member"
        verbose_name_plural = "subscribed staff"
        constraints = [
            models.CheckConstraint(
                condition=Q(pool__isnull=True, campaign__isnull=False)
                | Q(pool__isnull=False, campaign__isnull=True),
                name="subscription_to_pool_or_campaign",
                violation_error_message="Subscribe to a pool or to a campaign.",
            ),
            models.UniqueConstraint(fields=["user", "pool"], name="subscription_unique_pool"),
            models.UniqueConstraint(
                fields=["user", "campaign"], name="subscription_unique_campaign"
            ),
        ]

    def __str__(self):
        return f"{self.user} (low-stock e-mails of {self.pool or self.campaign})"


class StaffPreference(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="promo_preference"
    )
    import_finished_emails = models.BooleanField("e-mail me when my imports finish", default=True)
    # The language the staff member last used the admin in (notifications/languages.py): e-mails
    # and reports written by a worker, outside any request, are written in it.
    language = models.CharField(max_length=10, blank=True, default="")

    def __str__(self):
        return str(self.user)


class PoolAlertState(models.Model):
    """Whether a pool's next fall below its threshold sends an alert (armed), and how many
    times it has fallen below so far."""

    pool = models.OneToOneField(Pool, on_delete=models.CASCADE, related_name="alert_state")
    armed = models.BooleanField(default=True)
    crossings = models.PositiveIntegerField(default=0)

    def __str__(self):
        return f"{self.pool}: {'armed' if self.armed else 'alerted'}"


class LowStockAlert(models.Model):
    """One fall of a pool's stock below its threshold."""

    pool = models.ForeignKey(Pool, on_delete=models.CASCADE, related_name="low_stock_alerts")
    crossing = models.PositiveIntegerField()
    stock = models.BigIntegerField()
    threshold = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    # Set once every subscriber has had it; until then the beat task queues it again (outbox).
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One alert per crossing, however many workers notice it.
            models.UniqueConstraint(fields=["pool", "crossing"], name="alert_unique_crossing")
        ]

    def __str__(self):
        return f"{self.pool} below {self.threshold} (#{self.crossing})"


class AlertDelivery(models.Model):
    """An alert e-mail the mail server accepted for one recipient."""

    alert = models.ForeignKey(LowStockAlert, on_delete=models.CASCADE, related_name="deliveries")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    email = models.EmailField()
    sent_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # A retried task cannot send the same alert to the same person twice.
            models.UniqueConstraint(fields=["alert", "user"], name="delivery_unique_recipient")
        ]

    def __str__(self):
        return f"{self.alert} → {self.email}"
