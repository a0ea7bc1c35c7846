"""The pools screens: the list, a pool's page (its Codes section and history), the message
preview. Launching, pausing, ending and withdrawing are in pool_actions."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.formats import number_format
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ..charts import chart_range, stock_chart_svg
from ..forms import PoolAdminForm
from ..issuing_limits import pool_issued_today
from ..messages import DID_YOU_MEAN, UNKNOWN_PARAMETERS, message_preview_parts
from ..models import Pool
from ..selectors import pool_daily_activity, pool_history, pool_stock, pools_with_counts
from ..services import pool_save
from .parts import (
    AdminMedia,
    PlainListTitle,
    counts_line,
    low_stock_badge,
    pool_page,
    status_badge,
)
from .pool_actions import PoolActionsMixin

SAVE_TO_ADD_CODES = _("Save the pool to add codes.")


def _n(value) -> str:
    return number_format(value, force_grouping=True)


@admin.register(Pool)
class PoolAdmin(PlainListTitle, PoolActionsMixin, admin.ModelAdmin):
    form = PoolAdminForm
    list_display = (
        "slug",
        "campaign",
        "pool_status",
        "available",
        "issued",
        "redeemed",
        "launched_at",
    )
    list_filter = ("status", "campaign")
    list_select_related = ("campaign",)
    search_fields = ("slug", "template_parameter", "description")
    actions = ["launch_selected"]
    fieldsets = (
        (
            _("General settings"),
            {"fields": ("campaign", "description", "slug", "template_parameter")},
        ),
        (
            _("Usage settings"),
            {
                "fields": (
                    "require_issue_before_redeem",
                    "issued_validity_days",
                    "processing",
                    "allow_multiple_use",
                )
            },
        ),
        (_("Low-stock alerts"), {"fields": ("notify_below_enabled", "notify_below")}),
        (
            _("Mailings"),
            {
                "fields": (
                    "fallback_pool",
                    "refill_below",
                    "refill_count",
                    "daily_issue_cap",
                    "issued_over_api_today",
                )
            },
        ),
        (_("Status"), {"fields": ("status", "launched_at", "launched_by")}),
    )
    readonly_fields = ("status", "launched_at", "launched_by", "issued_over_api_today")
    radio_fields = {"processing": admin.VERTICAL}

    class Media:
        css = AdminMedia.css
        js = ("pools/pool_form.js", "imports/progress.js")

    def get_queryset(self, request):
        return pools_with_counts(super().get_queryset(request))

    def get_inlines(self, request, obj):
        return [*self.inlines, *pool_page.inlines]

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        if obj is not None and obj.is_launched:
            return (*fields, *Pool.FROZEN_WHEN_ACTIVE)
        return fields

    @admin.display(description=_("status"), ordering="status")
    def pool_status(self, pool):
        return status_badge(pool)

    @admin.display(description=_("issued over the API today (UTC)"))
    def issued_over_api_today(self, pool):
        if pool.pk is None:
            return "—"
        issued = pool_issued_today(pool)
        if pool.daily_issue_cap is None:
            return _n(issued)
        return gettext("%(issued)s of %(cap)s") % {
            "issued": _n(issued),
            "cap": _n(pool.daily_issue_cap),
        }

    @admin.display(description=_("available"), ordering="codes_available")
    def available(self, pool):
        return format_html("{}{}", _n(pool.codes_available), low_stock_badge(pool))

    @admin.display(description=_("issued"), ordering="codes_issued")
    def issued(self, pool):
        return _n(pool.codes_issued)

    @admin.display(description=_("redeemed"), ordering="codes_redeemed")
    def redeemed(self, pool):
        return _n(pool.codes_redeemed)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        preview = wrap(self.message_preview_view)
        status = wrap(self.status_change_view)
        return [
            path("message-preview/", preview, name="pools_pool_message_preview"),
            path("launch/", wrap(self.launch_confirm_view), name="pools_pool_launch"),
            path("<path:object_id>/pause/", status, {"action": "pause"}, name="pools_pool_pause"),
            path(
                "<path:object_id>/resume/", status, {"action": "resume"}, name="pools_pool_resume"
            ),
            path("<path:object_id>/end/", status, {"action": "end"}, name="pools_pool_end"),
            path(
                "<path:object_id>/withdraw/",
                wrap(self.withdraw_view),
                name="pools_pool_withdraw",
            ),
            *super().get_urls(),
        ]

    def message_preview_view(self, request):
        """Show a message template with example codes; nothing is issued."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        text = request.POST.get("text") or request.GET.get("text", "")
        parts, errors = [], []
        if text:
            parts = message_preview_parts(text=text)
            for part in parts:
                if part.unknown:
                    error = UNKNOWN_PARAMETERS.format(names=part.parameter)
                    if part.suggestion:
                        error += " " + DID_YOU_MEAN.format(suggestion=part.suggestion)
                    errors.append(error)
        return TemplateResponse(
            request,
            "admin/pools/pool/message_preview.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": gettext("Preview a message"),
                "text": text,
                "parts": parts,
                "errors": list(dict.fromkeys(errors)),
            },
        )

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is None:
            context["codes_section"] = SAVE_TO_ADD_CODES
        else:
            context["codes_section"] = self._codes_section(request, obj)
            context["extra_object_tools"] = pool_page.render(pool_page.object_tools, request, obj)
            context["status_actions"] = [
                (name, spec["button"])
                for name, spec in self.STATUS_ACTIONS.items()
                if obj.status in spec["from"] and self._may(request, spec["permission"])
            ]
            context["can_withdraw"] = obj.is_launched and self._may(request, "withdraw_code")
            context["pool_history"] = pool_history(obj)
        return self._render_with_launch(request, context, add, change, form_url, obj)

    def _codes_section(self, request, pool) -> str:
        stock = pool_stock(pool=pool)
        days = chart_range(request.GET.get("chart"))
        return render_to_string(
            "admin/pools/pool/codes_panel.html",
            {
                "pool": pool,
                "counts": counts_line(pool),
                "stock": stock,
                "chart": stock_chart_svg(
                    pool_daily_activity(pool, days=days, stock=stock), chosen=days
                ),
                "snippet": f"{{{{ promo.{pool.template_parameter} }}}}",
                "parts": pool_page.render(pool_page.sections, request, pool),
            },
            request=request,
        )

    def save_model(self, request, obj, form, change):
        pool_save(pool=obj, user=request.user)

    def has_delete_permission(self, request, obj=None):
        # Other systems refer to a live pool by its ID and template parameter.
        if obj is not None and obj.is_launched:
            return False
        return super().has_delete_permission(request, obj)

    def get_deleted_objects(self, objs, request):
        # Django would list every code to be deleted; a million codes cannot be listed.
        pools = list(pools_with_counts(Pool.objects.filter(pk__in=[p.pk for p in objs])))
        codes = sum(p.codes_total for p in pools)
        summary = [gettext("Pool %(pool)s with all its codes") % {"pool": p.slug} for p in pools]
        perms_needed = set()
        if not all(self.has_delete_permission(request, p) for p in pools):
            perms_needed.add("pool")
        counts = {Pool._meta.verbose_name_plural: len(pools), gettext("codes"): _n(codes)}
        return summary, counts, perms_needed, []
