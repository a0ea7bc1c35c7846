"""The campaigns screens: the list with each campaign's pools, and a campaign's page."""

from django.contrib import admin
from django.db.models import Prefetch
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ..models import Campaign, Pool
from ..selectors import pools_with_counts
from .parts import (
    AdminMedia,
    PlainListTitle,
    ReadOnlyInline,
    campaign_page,
    counts_line,
    status_badge,
)


class PoolInline(ReadOnlyInline):
    model = Pool
    fields = ("slug", "pool_status", "description", "codes")
    show_change_link = True
    verbose_name_plural = _("promo code pools")

    def get_queryset(self, request):
        return pools_with_counts(super().get_queryset(request))

    @admin.display(description=_("status"))
    def pool_status(self, pool):
        return status_badge(pool)

    @admin.display(description=_("codes"))
    def codes(self, pool):
        return counts_line(pool)


@admin.register(Campaign)
class CampaignAdmin(PlainListTitle, admin.ModelAdmin):
    list_display = ("name", "pools_overview", "created_at")
    search_fields = ("name",)
    fields = ("name", "description")
    inlines = [PoolInline]
    Media = AdminMedia

    def get_inlines(self, request, obj):
        return [*self.inlines, *campaign_page.inlines]

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # One phrase each, not Django's "Add %s": Russian puts "campaign" in another case here.
        if object_id is None:
            title = gettext("Add campaign")
        elif self.has_change_permission(request):
            title = gettext("Change campaign")
        else:
            title = gettext("View campaign")
        extra_context = {"title": title, **(extra_context or {})}
        return super().changeform_view(request, object_id, form_url, extra_context)

    def get_queryset(self, request):
        # All pools with their counts in one query, however many campaigns the page lists.
        return (
            super()
            .get_queryset(request)
            .prefetch_related(
                Prefetch("pools", queryset=pools_with_counts().order_by("created_at", "id"))
            )
        )

    @admin.display(description=_("promo code pools"))
    def pools_overview(self, campaign):
        pools = campaign.pools.all()
        if not pools:
            return "—"
        return format_html(
            '<ul class="pool-overview">{}</ul>',
            format_html_join(
                "",
                '<li><a href="{}">{}</a> {} <span class="pool-counts">{}</span></li>',
                (
                    (
                        reverse("admin:pools_pool_change", args=[pool.pk]),
                        pool.slug,
                        status_badge(pool),
                        counts_line(pool),
                    )
                    for pool in pools
                ),
            ),
        )
