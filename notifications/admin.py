"""The notifications parts of the admin: subscribers and alerts on the pool and campaign pages,
the pool's "Subscribe me" button, and the import-notice switch on the "Add codes" page.

Pools and imports know nothing of these: they are registered on those pages' parts here.
"""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import number_format, time_format
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from imports.admin import add_codes_page
from pools.admin import ReadOnlyInline, campaign_page, home_page, pool_page
from pools.models import Pool

from .models import LowStockAlert, Subscription
from .services import (
    import_notices_enabled,
    import_notices_set,
    subscription_add,
    subscription_remove,
)

SUBSCRIBED = "You will get an e-mail when “{pool}” runs low."
SUBSCRIBED_NO_EMAIL = " Add an e-mail address to your account first."
UNSUBSCRIBED = "You will no longer get low-stock e-mails of “{pool}”."
NOTICES_ON = "You will get an e-mail when your imports finish."
NOTICES_OFF = "You will no longer get e-mails when your imports finish."


class PoolSubscriptionInline(admin.TabularInline):
    model = Subscription
    fk_name = "pool"
    fields = ("user", "created_at")
    readonly_fields = ("created_at",)
    extra = 0
    verbose_name_plural = "subscribed staff (low-stock e-mails)"


class CampaignSubscriptionInline(PoolSubscriptionInline):
    fk_name = "campaign"
    verbose_name_plural = "subscribed staff (low-stock e-mails of every pool of the campaign)"


def alert_sent_to(alert: LowStockAlert) -> str:
    """Say to whom an alert went: the one wording of the pool page and the home page.

    An alert raised for a pool nobody (with an e-mail address) is subscribed to is sent to
    nobody; "not sent yet" is only for one the worker has not sent to everyone so far.
    """
    emails = ", ".join(delivery.email for delivery in alert.deliveries.all())
    if alert.sent_at is None:
        if emails:
            return _("sent to %(emails)s so far; the others are on the way") % {"emails": emails}
        return _("not sent yet")
    if emails:
        return _("sent to %(emails)s") % {"emails": emails}
    return _("sent to nobody: no subscribed staff member has an e-mail address")


class LowStockAlertInline(ReadOnlyInline):
    model = LowStockAlert
    fields = ("created_at", "stock", "threshold", "recipients")
    verbose_name_plural = gettext_lazy("low-stock alerts")

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("deliveries")

    @admin.display(description=gettext_lazy("sent to"))
    def recipients(self, alert):
        return alert_sent_to(alert)


def subscribe_button(request, pool) -> str:
    return render_to_string(
        "admin/notifications/subscribe_button.html",
        {
            "pool": pool,
            "subscribed": Subscription.objects.filter(user=request.user, pool=pool).exists(),
        },
        request=request,
    )


def import_notices_switch(request, pool) -> str:
    return render_to_string(
        "admin/notifications/import_notices_switch.html",
        {"import_notices": import_notices_enabled(request.user)},
        request=request,
    )


def alerts_today_section(request) -> str:
    """The home page's list of low-stock alerts raised today."""
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    alerts = (
        LowStockAlert.objects.filter(created_at__gte=today)
        .select_related("pool")
        .prefetch_related("deliveries")[:20]
    )
    rows = [
        format_html(
            _(
                '<a href="{url}">{pool}</a>: {stock} left (alert below {threshold}) at {time}, '
                "{sent}"
            ),
            url=reverse("admin:pools_pool_change", args=[alert.pool_id]),
            pool=alert.pool,
            stock=number_format(alert.stock, force_grouping=True),
            threshold=number_format(alert.threshold, force_grouping=True),
            time=time_format(timezone.localtime(alert.created_at), "H:i"),
            sent=alert_sent_to(alert),
        )
        for alert in alerts
    ]
    return render_to_string(
        "admin/pools/attention_section.html",
        {"title": _("Low-stock alerts today"), "rows": rows},
        request=request,
    )


home_page.sections.append(alerts_today_section)
pool_page.inlines += [PoolSubscriptionInline, LowStockAlertInline]
pool_page.object_tools.append(subscribe_button)
campaign_page.inlines.append(CampaignSubscriptionInline)
add_codes_page.sections.append(import_notices_switch)


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    """Holds the views of the pool's "Subscribe me" button and of the import-notice switch;
    subscriptions themselves are managed on the pool and campaign pages."""

    def get_model_perms(self, request):
        return {}  # not listed on the admin's home page

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "pool/<path:object_id>/",
                wrap(require_POST(self.pool_subscription_view)),
                name="notifications_pool_subscription",
            ),
            path(
                "import-notices/",
                wrap(require_POST(self.import_notices_view)),
                name="notifications_import_notices",
            ),
            *super().get_urls(),
        ]

    def pool_subscription_view(self, request, object_id):
        """Subscribe the user to the pool's low-stock e-mails, or unsubscribe them."""
        pool_admin = self.admin_site.get_model_admin(Pool)
        pool = pool_admin.get_object(request, unquote(object_id))
        if pool is None:
            raise Http404
        if not pool_admin.has_view_permission(request, pool):
            raise PermissionDenied
        if request.POST.get("subscribe") == "1":
            subscription_add(user=request.user, pool=pool)
            message = SUBSCRIBED.format(pool=pool)
            if not request.user.email:
                message += SUBSCRIBED_NO_EMAIL
        else:
            subscription_remove(user=request.user, pool=pool)
            message = UNSUBSCRIBED.format(pool=pool)
        messages.success(request, message)
        return HttpResponseRedirect(reverse("admin:pools_pool_change", args=[pool.pk]))

    def import_notices_view(self, request):
        """Turn the user's own import-finished e-mails on or off."""
        enabled = request.POST.get("enabled") == "1"
        import_notices_set(user=request.user, enabled=enabled)
        messages.success(request, NOTICES_ON if enabled else NOTICES_OFF)
        next_url = request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(
            next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            next_url = reverse("admin:index")
        return HttpResponseRedirect(next_url)
