from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import Http404, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from .charts import stock_chart_svg
from .code_services import code_mark_issued
from .exports import code_rows, csv_response, xlsx_response
from .forms import PoolAdminForm
from .messages import message_preview
from .models import Campaign, Code, CodeIssue, Pool, Redemption
from .refusals import CodeRefused
from .selectors import pool_daily_activity, pool_stock, pools_with_counts
from .services import pool_launch, pool_save

LAUNCH_SUCCESS = "The pool “{pool}” is launched and active."
LAUNCH_REFUSED = "The pool “{pool}” was not launched: {reason}"
LAUNCHED_EMPTY = "It has no codes yet: add some before it is used."
MARKED_ISSUED = "The code {code} is marked as issued to {customer}."
SAVE_TO_ADD_CODES = "Save the pool to add codes."


class PageParts:
    """What the apps above pools add to its admin pages, so that pools imports none of them.

    Each app registers its parts from its own admin module, which the admin imports at start:
    inlines, and callables (request, obj) -> HTML for the Codes section of a pool's page and
    for the object tools beside "History".
    """

    def __init__(self):
        self.inlines: list[type[admin.options.InlineModelAdmin]] = []
        self.sections: list = []
        self.object_tools: list = []

    def render(self, parts, request, obj) -> str:
        return mark_safe("".join(str(part(request, obj)) for part in parts))


pool_page = PageParts()
campaign_page = PageParts()


def status_badge(pool: Pool) -> str:
    return format_html(
        '<span class="pool-status pool-status-{}">{}</span>', pool.status, pool.get_status_display()
    )


def counts_line(pool: Pool) -> str:
    return format_html(
        "{} available · {} issued · {} redeemed{}",
        f"{pool.codes_available:,}",
        f"{pool.codes_issued:,}",
        f"{pool.codes_redeemed:,}",
        low_stock_badge(pool),
    )


def low_stock_badge(pool: Pool) -> str:
    """Return a badge when the pool's stock is below its alert threshold, else nothing."""
    if pool.is_below_threshold(pool.codes_available):
        return format_html(
            ' <span class="stock-low" title="Alert threshold: {}">low stock</span>',
            pool.notify_below,
        )
    return ""


class AdminMedia:
    css = {"all": ("pools/admin.css",)}


class ReadOnlyInline(admin.TabularInline):
    """Rows shown on a parent's page; they are written elsewhere (services, imports)."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None):
        return False


class PoolInline(ReadOnlyInline):
    model = Pool
    fields = ("slug", "pool_status", "description", "codes")
    show_change_link = True
    verbose_name_plural = "promo code pools"

    def get_queryset(self, request):
        return pools_with_counts(super().get_queryset(request))

    @admin.display(description="status")
    def pool_status(self, pool):
        return status_badge(pool)

    @admin.display(description="codes")
    def codes(self, pool):
        return counts_line(pool)


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ("name", "pools_overview", "created_at")
    search_fields = ("name",)
    fields = ("name", "description")
    inlines = [PoolInline]
    Media = AdminMedia

    def get_inlines(self, request, obj):
        return [*self.inlines, *campaign_page.inlines]

    def get_queryset(self, request):
        # All pools with their counts in one query, however many campaigns the page lists.
        return (
            super()
            .get_queryset(request)
            .prefetch_related(
                Prefetch("pools", queryset=pools_with_counts().order_by("created_at", "id"))
            )
        )

    @admin.display(description="promo code pools")
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


@admin.register(Pool)
class PoolAdmin(admin.ModelAdmin):
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
    prepopulated_fields = {"slug": ("description",)}
    actions = ["launch_selected"]
    fieldsets = (
        (
            "General settings",
            {"fields": ("campaign", "description", "slug", "template_parameter")},
        ),
        (
            "Usage settings",
            {
                "fields": (
                    "require_issue_before_redeem",
                    "issued_validity_days",
                    "processing",
                    "allow_multiple_use",
                )
            },
        ),
        ("Notification settings", {"fields": ("notify_below_enabled", "notify_below")}),
        ("Status", {"fields": ("status", "launched_at", "launched_by")}),
    )
    readonly_fields = ("status", "launched_at", "launched_by")
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

    def get_prepopulated_fields(self, request, obj=None):
        if obj is not None and obj.is_launched:
            return {}
        return super().get_prepopulated_fields(request, obj)

    @admin.display(description="status", ordering="status")
    def pool_status(self, pool):
        return status_badge(pool)

    @admin.display(ordering="codes_available")
    def available(self, pool):
        return format_html("{}{}", f"{pool.codes_available:,}", low_stock_badge(pool))

    @admin.display(ordering="codes_issued")
    def issued(self, pool):
        return f"{pool.codes_issued:,}"

    @admin.display(ordering="codes_redeemed")
    def redeemed(self, pool):
        return f"{pool.codes_redeemed:,}"

    def get_urls(self):
        preview = self.admin_site.admin_view(self.message_preview_view)
        return [
            path("message-preview/", preview, name="pools_pool_message_preview"),
            *super().get_urls(),
        ]

    def message_preview_view(self, request):
        """Show a message template with example codes; nothing is issued."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        text = request.POST.get("text") or request.GET.get("text", "")
        preview, error = "", ""
        if text:
            try:
                preview = message_preview(text=text)
            except ValidationError as invalid:
                error = " ".join(invalid.messages)
        return TemplateResponse(
            request,
            "admin/pools/pool/message_preview.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": "Preview a message",
                "text": text,
                "preview": preview,
                "error": error,
            },
        )

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is None:
            context["codes_section"] = SAVE_TO_ADD_CODES
        else:
            context["codes_section"] = self._codes_section(request, obj)
            context["extra_object_tools"] = pool_page.render(pool_page.object_tools, request, obj)
        return self._render_with_launch(request, context, add, change, form_url, obj)

    def _codes_section(self, request, pool) -> str:
        stock = pool_stock(pool=pool)
        return render_to_string(
            "admin/pools/pool/codes_panel.html",
            {
                "pool": pool,
                "counts": counts_line(pool),
                "stock": stock,
                "chart": stock_chart_svg(pool_daily_activity(pool, stock=stock)),
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
        summary = [f"Pool {p.slug} with all its codes" for p in pools]
        perms_needed = set()
        if not all(self.has_delete_permission(request, p) for p in pools):
            perms_needed.add("pool")
        return summary, {"pools": len(pools), "codes": f"{codes:,}"}, perms_needed, []

    # Launch: a button on the pool's page (it saves the form first) and an action on the list.

    def has_launch_permission(self, request, obj=None):
        return request.user.has_perm("pools.launch_pool")

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        launching = request.method == "POST" and "_launch" in request.POST
        if launching and not self.has_launch_permission(request):
            raise PermissionDenied
        return super().changeform_view(request, object_id, form_url, extra_context)

    def _render_with_launch(self, request, context, add, change, form_url, obj):
        context["show_launch"] = (
            not (obj and obj.is_launched)
            and self.has_launch_permission(request, obj)
            and (self.has_add_permission(request) if add else self.has_change_permission(request))
        )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def response_add(self, request, obj, post_url_continue=None):
        if "_launch" in request.POST:
            return self._launch_and_redirect(request, obj)
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request, obj):
        if "_launch" in request.POST:
            return self._launch_and_redirect(request, obj)
        return super().response_change(request, obj)

    def _launch_and_redirect(self, request, pool):
        self._launch(request, pool)
        return HttpResponseRedirect(reverse("admin:pools_pool_change", args=[pool.pk]))

    def _launch(self, request, pool) -> bool:
        try:
            pool_launch(pool=pool, user=request.user)
        except ValidationError as error:
            for reason in error.messages:
                messages.error(request, LAUNCH_REFUSED.format(pool=pool, reason=reason))
            return False
        self.log_change(request, pool, "Launched the pool.")
        message = LAUNCH_SUCCESS.format(pool=pool)
        if not pool.codes.exists():
            message = f"{message} {LAUNCHED_EMPTY}"
        messages.success(request, message)
        return True

    @admin.action(description="Launch selected pools", permissions=["launch"])
    def launch_selected(self, request, queryset):
        for pool in queryset:
            self._launch(request, pool)


class BoundedCountPaginator(Paginator):
    """Count at most COUNT_LIMIT + 1 rows: exact for small lists, "more than" for huge ones."""

    COUNT_LIMIT = 10_000

    @cached_property
    def count(self):
        return self.object_list[: self.COUNT_LIMIT + 1].count()

    @property
    def count_is_bounded(self) -> bool:
        return self.count > self.COUNT_LIMIT


class CodeIssueInline(ReadOnlyInline):
    model = CodeIssue
    fields = ("customer", "issued_at", "marked", "idempotency_key")
    verbose_name_plural = "issued to"


class RedemptionInline(ReadOnlyInline):
    model = Redemption
    fields = ("customer", "redeemed_at", "order_reference")
    verbose_name_plural = "redemptions"


@admin.register(Code)
class CodeAdmin(admin.ModelAdmin):
    inlines = [CodeIssueInline, RedemptionInline]
    list_display = Code.LISTED_FIELDS
    list_filter = ("status", "pool")
    list_select_related = ("pool",)
    search_fields = ("code",)
    search_help_text = "Find a code by its exact text."
    ordering = ("-id",)
    paginator = BoundedCountPaginator
    show_full_result_count = False
    readonly_fields = [field.name for field in Code._meta.fields]

    def get_search_results(self, request, queryset, search_term):
        # An exact match uses the (code, pool) index; a substring search would scan every code.
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(code__in={term, term.upper()}), False

    def get_urls(self):
        export = self.admin_site.admin_view(self.export_view)
        mark_issued = self.admin_site.admin_view(self.mark_issued_view)
        return [
            path("export.<str:file_format>", export, name="pools_code_export"),
            path("<path:object_id>/mark-issued/", mark_issued, name="pools_code_mark_issued"),
            *super().get_urls(),
        ]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["can_mark_issued"] = (
            obj is not None
            and obj.pool.is_active
            and self.has_change_permission(request, obj)
            and (obj.status == Code.Status.AVAILABLE or obj.pool.allow_multiple_use)
        )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def mark_issued_view(self, request, object_id):
        """Record that the code was handed to a customer elsewhere."""
        code = self.get_object(request, unquote(object_id))
        if code is None:
            raise Http404
        if request.method != "POST" or not self.has_change_permission(request, code):
            raise PermissionDenied
        customer = request.POST.get("customer", "")
        try:
            code_mark_issued(code=code.code, customer=customer, pool=code.pool)
        except CodeRefused as refused:
            messages.error(request, refused.reason.label)
        except ValidationError as invalid:
            messages.error(request, " ".join(invalid.messages))
        else:
            message = MARKED_ISSUED.format(code=code, customer=customer.strip())
            self.log_change(request, code, message)
            messages.success(request, message)
        return HttpResponseRedirect(reverse("admin:pools_code_change", args=[code.pk]))

    def export_view(self, request, file_format):
        """Download the codes the list shows (same filters and search) as CSV or XLSX."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        if file_format not in ("csv", "xlsx"):
            raise Http404
        queryset = self.get_changelist_instance(request).get_queryset(request)
        pool_id = request.GET.get("pool__id__exact")
        pool = Pool.objects.filter(pk=pool_id).first() if pool_id else None
        filename = f"codes-{pool.slug if pool else 'all'}.{file_format}"
        rows = code_rows(queryset)
        if file_format == "xlsx":
            return xlsx_response(rows, filename)
        return csv_response(rows, filename)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        # Codes leave a pool only with it: their counts and history must stay whole.
        return False
