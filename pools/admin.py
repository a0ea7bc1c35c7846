from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from .charts import chart_range, stock_chart_svg
from .code_services import code_list_parse, code_mark_issued, codes_withdraw
from .export_services import (
    EXPORT_AT_ONCE_MAX,
    code_export_estimate,
    code_export_filters,
    code_export_is_small,
    code_export_start,
    export_description,
    export_rows_named,
)
from .exports import XLSX_ROWS_PER_SHEET, code_rows, codes_filtered, csv_response, xlsx_response
from .formats import export_filename
from .forms import EndForm, PoolAdminForm, ReasonForm, WithdrawListForm
from .messages import DID_YOU_MEAN, UNKNOWN_PARAMETERS, message_preview_parts
from .models import Campaign, Code, CodeAddition, CodeExport, Pool, Withdrawal
from .refusals import CodeRefused
from .selectors import (
    codes_search,
    launch_summary,
    pool_daily_activity,
    pool_history,
    pool_stock,
    pools_below_threshold,
    pools_expiring_soon,
    pools_with_counts,
)
from .services import pool_end, pool_launch, pool_pause, pool_resume, pool_save

LAUNCH_SUCCESS = "The pool “{pool}” is launched and active."
LAUNCH_REFUSED = "The pool “{pool}” was not launched: {reason}"
LAUNCHED_EMPTY = "It has no codes yet: add some before it is used."
LAUNCH_NOTHING_SELECTED = "Select at least one draft pool to launch."
MARKED_ISSUED = "The code {code} is marked as issued to {customer}."
SAVE_TO_ADD_CODES = "Save the pool to add codes."
PAUSED = "The pool “{pool}” is paused: it issues and redeems no codes until it is resumed."
RESUMED = "The pool “{pool}” is active again."
ENDED = (
    "The pool “{pool}” has ended: it issues no more codes. Codes it issued can be redeemed "
    "until their Available-till."
)
ENDED_STOPPED = "The pool “{pool}” has ended; its codes can no longer be redeemed."
WITHDRAWN_DONE = "Withdrew {withdrawn:,} of {requested:,} codes of “{pool}”."
WITHDRAW_QUEUED = (
    "The {requested:,} codes of “{pool}” are being withdrawn in the background: this report "
    "shows the progress."
)
WITHDRAW_NOTHING = "Paste or upload at least one code."


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
# The admin's home page: sections are callables (request) -> HTML telling what needs attention
# (pools' own below; imports and notifications add theirs from their admin modules).
home_page = PageParts()
# How a code's page names the addition that brought it in: callables (addition) -> HTML or
# None; the imports app registers one naming the import.
addition_labels: list = []


def addition_label(addition: CodeAddition) -> str:
    for label in addition_labels:
        text = label(addition)
        if text:
            return text
    return format_html("an addition of {} codes", f"{addition.codes_added:,}")


def status_badge(pool: Pool) -> str:
    return format_html(
        '<span class="pool-status pool-status-{}">{}</span>', pool.status, pool.get_status_display()
    )


def counts_line(pool: Pool) -> str:
    withdrawn = getattr(pool, "codes_withdrawn", 0)
    return format_html(
        "{} available · {} issued · {} redeemed{}{}",
        f"{pool.codes_available:,}",
        f"{pool.codes_issued:,}",
        f"{pool.codes_redeemed:,}",
        format_html(" · {} withdrawn", f"{withdrawn:,}") if withdrawn else "",
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
        ("Mailings", {"fields": ("fallback_pool", "refill_below", "refill_count")}),
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
                "title": "Preview a message",
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
        if pool.launch_blockers():
            # Refused at once, on the pool's page, where the missing field is.
            self._launch(request, pool)
            return HttpResponseRedirect(reverse("admin:pools_pool_change", args=[pool.pk]))
        # Saved; launching asks first.
        return HttpResponseRedirect(f"{reverse('admin:pools_pool_launch')}?ids={pool.pk}")

    def launch_confirm_view(self, request):
        """Sum up what launching the given pools means and warn of likely mistakes; launch
        them once confirmed."""
        if not (self.has_launch_permission(request) and self.has_change_permission(request)):
            raise PermissionDenied
        ids = [
            int(i)
            for i in request.POST.get("ids", request.GET.get("ids", "")).split(",")
            if i.strip().isdigit()
        ]
        pools = list(pools_with_counts(Pool.objects.filter(pk__in=ids, status=Pool.Status.DRAFT)))
        if not pools:
            messages.error(request, LAUNCH_NOTHING_SELECTED)
            return HttpResponseRedirect(reverse("admin:pools_pool_changelist"))
        if request.method == "POST" and "confirm" in request.POST:
            for pool in pools:
                self._launch(request, pool)
            if len(pools) == 1:
                return HttpResponseRedirect(reverse("admin:pools_pool_change", args=[pools[0].pk]))
            return HttpResponseRedirect(reverse("admin:pools_pool_changelist"))
        sections = []
        for pool in pools:
            summary = launch_summary(pool)
            sections.append(
                {
                    "heading": f"{pool.slug} ({pool.campaign})",
                    "facts": summary["facts"],
                    "warnings": [
                        LAUNCH_REFUSED.format(pool=pool, reason=reason)
                        for reason in summary["blockers"].values()
                    ]
                    + summary["warnings"],
                }
            )
        single = len(pools) == 1
        return self._confirm_page(
            request,
            title=f"Launch {pools[0].slug}?" if single else f"Launch {len(pools)} pools?",
            intro=["Launching makes a pool active: it issues and redeems codes from now on."],
            sections=sections,
            hidden=[("ids", ",".join(str(p.pk) for p in pools))],
            confirm_label="Launch" if single else f"Launch {len(pools)} pools",
            cancel_url=reverse("admin:pools_pool_change", args=[pools[0].pk])
            if single
            else reverse("admin:pools_pool_changelist"),
            crumbs=[self._crumb(pools[0])] if single else [],
        )

    def _crumb(self, pool):
        return {"url": reverse("admin:pools_pool_change", args=[pool.pk]), "label": pool.slug}

    def _confirm_page(self, request, **context):
        context.setdefault("can_confirm", True)
        return TemplateResponse(
            request,
            "admin/pools/confirm.html",
            {**self.admin_site.each_context(request), "opts": self.opts, **context},
        )

    # Pause, resume, end: each a confirmation page with an optional reason.

    STATUS_ACTIONS = {
        "pause": {
            "service": pool_pause,
            "permission": "pause_pool",
            "from": (Pool.Status.ACTIVE,),
            "button": "Pause",
            "form": ReasonForm,
            "title": "Pause {pool}?",
            "intro": "While paused, the pool refuses to issue, mark and redeem codes "
            "(reason pool_paused), and sends no low-stock alerts, until it is resumed.",
            "done": PAUSED,
        },
        "resume": {
            "service": pool_resume,
            "permission": "pause_pool",
            "from": (Pool.Status.PAUSED,),
            "button": "Resume",
            "form": ReasonForm,
            "title": "Resume {pool}?",
            "intro": "The pool becomes active again: it issues and redeems codes.",
            "done": RESUMED,
        },
        "end": {
            "service": pool_end,
            "permission": "end_pool",
            "from": (Pool.Status.ACTIVE, Pool.Status.PAUSED),
            "button": "End",
            "form": EndForm,
            "title": "End {pool}?",
            "intro": "Ending is final: the pool issues no more codes and cannot be resumed.",
            "done": ENDED,
            "dangerous": True,
        },
    }

    def _may(self, request, codename) -> bool:
        return request.user.has_perm(f"pools.{codename}")

    def status_change_view(self, request, object_id, action):
        """Pause, resume or end the pool, after a confirmation with an optional reason."""
        pool = self.get_object(request, unquote(object_id))
        if pool is None:
            raise Http404
        spec = self.STATUS_ACTIONS[action]
        if not self._may(request, spec["permission"]):
            raise PermissionDenied
        form = spec["form"](request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                event = spec["service"](pool=pool, user=request.user, **form.cleaned_data)
            except ValidationError as error:
                for reason in error.messages:
                    messages.error(request, reason)
            else:
                done = ENDED_STOPPED if pool.redemptions_stopped else spec["done"]
                message = done.format(pool=pool)
                if event.reason:
                    message = f"{message} Reason: {event.reason}"
                self.log_change(request, pool, message)
                messages.success(request, message)
            return HttpResponseRedirect(reverse("admin:pools_pool_change", args=[pool.pk]))
        return self._confirm_page(
            request,
            title=spec["title"].format(pool=pool),
            intro=[spec["intro"]],
            form=form,
            confirm_label=spec["button"],
            dangerous=spec.get("dangerous", False),
            can_confirm=pool.status in spec["from"],
            cancel_url=reverse("admin:pools_pool_change", args=[pool.pk]),
            crumbs=[self._crumb(pool)],
        )

    def withdraw_view(self, request, object_id):
        """Withdraw a pasted or uploaded list of codes of the pool (leaked ones, say)."""
        pool = self.get_object(request, unquote(object_id))
        if pool is None:
            raise Http404
        if not self._may(request, "withdraw_code"):
            raise PermissionDenied
        form = WithdrawListForm(
            request.POST if request.method == "POST" else None,
            request.FILES if request.method == "POST" else None,
        )
        if request.method == "POST" and form.is_valid():
            # Parsed apart: each may start with its own `code` header.
            codes = code_list_parse(form.cleaned_data["codes"]) + code_list_parse(
                form.cleaned_data["file"]
            )
            if not codes:
                form.add_error("codes", WITHDRAW_NOTHING)
            else:
                withdrawal = codes_withdraw(
                    pool=pool, codes=codes, user=request.user, reason=form.cleaned_data["reason"]
                )
                _tell_withdrawal(request, withdrawal)
                self.log_change(
                    request, pool, f"Withdrawal #{withdrawal.pk} of {len(codes):,} codes."
                )
                return HttpResponseRedirect(
                    reverse("admin:pools_withdrawal_change", args=[withdrawal.pk])
                )
        return self._confirm_page(
            request,
            title=f"Withdraw codes of {pool}",
            intro=[
                "Withdrawn codes are out of use for good: check and redeem refuse them "
                "(reason withdrawn), and they leave the stock. Codes already redeemed are left "
                "as they are.",
            ],
            form=form,
            multipart=True,
            confirm_label="Withdraw",
            dangerous=True,
            cancel_url=reverse("admin:pools_pool_change", args=[pool.pk]),
            crumbs=[self._crumb(pool)],
        )

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
        ids = ",".join(str(pk) for pk in queryset.values_list("pk", flat=True))
        return HttpResponseRedirect(f"{reverse('admin:pools_pool_launch')}?ids={ids}")


def _tell_withdrawal(request, withdrawal: Withdrawal) -> None:
    values = {
        "withdrawn": withdrawal.codes_withdrawn,
        "requested": withdrawal.codes_requested,
        "pool": withdrawal.pool,
    }
    if withdrawal.is_finished:
        messages.success(request, WITHDRAWN_DONE.format(**values))
    else:
        messages.info(request, WITHDRAW_QUEUED.format(**values))


class BoundedCountPaginator(Paginator):
    """Count at most COUNT_LIMIT + 1 rows: exact for small lists, "more than" for huge ones."""

    COUNT_LIMIT = 10_000

    @cached_property
    def count(self):
        return self.object_list[: self.COUNT_LIMIT + 1].count()

    @property
    def count_is_bounded(self) -> bool:
        return self.count > self.COUNT_LIMIT


class PoolListFilter(admin.RelatedFieldListFilter):
    """The codes list's pool filter, written so that PostgreSQL walks the right index.

    With `pool_id = X … ORDER BY id DESC`, PostgreSQL walks the primary key backwards and
    skips every newer code of other pools (250 ms behind 2,000,000 of them, more for a later
    page). Written as a range of one id, the pool is not folded out of the ordering, so
    `ORDER BY pool_id DESC, id DESC` (the list's ordering with this filter) walks the (pool, id)
    index and stops after a page. With a status too, the pool stays an equality and the status
    is the range (StatusListFilter): `ORDER BY status DESC, id DESC` then walks the
    (pool, status, id) index between tight bounds, whether the status has half the pool's codes
    or none (two ranges would scan the whole pool: 2 s). Measured on a pool of 20,000,000
    codes: bench/admin_bench.py.
    """

    def queryset(self, request, queryset):
        value = request.GET.get(self.lookup_kwarg)
        if not value or request.GET.get("status__exact"):
            return super().queryset(request, queryset)
        try:
            pool_id = int(value)
        except ValueError as invalid:
            raise IncorrectLookupParameters(invalid) from invalid
        return queryset.filter(pool_id__gte=pool_id, pool_id__lte=pool_id)


class StatusListFilter(admin.ChoicesFieldListFilter):
    """The codes list's status filter; within a pool, a range of one value (PoolListFilter)."""

    def queryset(self, request, queryset):
        value = request.GET.get(self.lookup_kwarg)
        if not value or not request.GET.get("pool__id__exact"):
            return super().queryset(request, queryset)
        return queryset.filter(status__gte=value, status__lte=value)


@admin.register(Code)
class CodeAdmin(admin.ModelAdmin):
    Media = AdminMedia
    list_display = Code.LISTED_FIELDS
    list_filter = (("status", StatusListFilter), ("pool", PoolListFilter))
    list_select_related = ("pool",)
    search_fields = ("code",)
    search_help_text = (
        "Find codes by their text or its beginning (a prefix), or the codes issued to a customer "
        "id."
    )
    ordering = ("-id",)
    paginator = BoundedCountPaginator
    show_full_result_count = False
    actions = ["withdraw_selected"]

    def get_ordering(self, request):
        # Newest first either way; see PoolListFilter.
        if not request.GET.get("pool__id__exact"):
            return ("-id",)
        if request.GET.get("status__exact"):
            return ("-status", "-id")
        return ("-pool_id", "-id")

    def get_search_results(self, request, queryset, search_term):
        # One rule for the list and its exports (codes_search), each branch served by an index.
        if not search_term.strip():
            return queryset, False
        return codes_search(queryset, search_term), False

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("export.<str:file_format>", wrap(self.export_view), name="pools_code_export"),
            path(
                "<path:object_id>/mark-issued/",
                wrap(self.mark_issued_view),
                name="pools_code_mark_issued",
            ),
            path(
                "<path:object_id>/withdraw/",
                wrap(self.withdraw_view),
                name="pools_code_withdraw",
            ),
            *super().get_urls(),
        ]

    def has_withdraw_permission(self, request, obj=None):
        return request.user.has_perm("pools.withdraw_code")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The code's page: read-only, in plain words, with its story."""
        code = self.get_object(request, unquote(object_id))
        if code is None:
            raise Http404
        if not self.has_view_permission(request, code):
            raise PermissionDenied
        pool = code.pool
        can_change = self.has_change_permission(request, code)
        return TemplateResponse(
            request,
            "admin/pools/code/story.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": f"Code {code.code}",
                "code": code,
                "pool": pool,
                "story": code_story(code),
                "can_mark_issued": pool.is_active
                and can_change
                and (code.status == Code.Status.AVAILABLE or pool.allow_multiple_use),
                "can_withdraw": code.status in Code.WITHDRAWABLE
                and self.has_withdraw_permission(request, code),
            },
        )

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

    def withdraw_view(self, request, object_id):
        """Withdraw this one code (a leaked one, say), with an optional reason."""
        code = self.get_object(request, unquote(object_id))
        if code is None:
            raise Http404
        if request.method != "POST" or not self.has_withdraw_permission(request, code):
            raise PermissionDenied
        form = ReasonForm(request.POST)
        form.is_valid()
        withdrawal = codes_withdraw(
            pool=code.pool,
            code_ids=[code.pk],
            user=request.user,
            reason=form.cleaned_data.get("reason", ""),
        )
        self.log_change(request, code, f"Withdrawn (withdrawal #{withdrawal.pk}).")
        _tell_withdrawal(request, withdrawal)
        return HttpResponseRedirect(reverse("admin:pools_code_change", args=[code.pk]))

    @admin.action(description="Withdraw selected codes", permissions=["withdraw"])
    def withdraw_selected(self, request, queryset):
        """Ask for a reason, then withdraw the selected codes, pool by pool."""
        if "confirm" in request.POST:
            form = ReasonForm(request.POST)
            form.is_valid()
            by_pool: dict[int, list[int]] = {}
            for pk, pool_id in queryset.values_list("pk", "pool_id"):
                by_pool.setdefault(pool_id, []).append(pk)
            for pool in Pool.objects.filter(pk__in=by_pool):
                withdrawal = codes_withdraw(
                    pool=pool,
                    code_ids=by_pool[pool.pk],
                    user=request.user,
                    reason=form.cleaned_data.get("reason", ""),
                )
                self.log_change(request, pool, f"Withdrawal #{withdrawal.pk} of selected codes.")
                _tell_withdrawal(request, withdrawal)
            return None
        count = queryset.count()
        return TemplateResponse(
            request,
            "admin/pools/confirm.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": f"Withdraw {count:,} selected codes?",
                "intro": [
                    "Withdrawn codes are out of use for good: check and redeem refuse them "
                    "(reason withdrawn), and they leave the stock. Codes already redeemed are "
                    "left as they are."
                ],
                "crumbs": [{"url": reverse("admin:pools_code_changelist"), "label": "Codes"}],
                # Posted back to the same address (filters and search in its query string), as
                # the list's own form posts it: "all N codes" stays a query, not a list of ids.
                "hidden": [
                    ("action", "withdraw_selected"),
                    ("select_across", request.POST.get("select_across", "0")),
                ]
                + [("_selected_action", pk) for pk in request.POST.getlist("_selected_action")],
                "form": ReasonForm(),
                "confirm_label": "Withdraw",
                "dangerous": True,
                "can_confirm": True,
                "cancel_url": request.get_full_path(),
            },
        )

    def export_view(self, request, file_format):
        """Export the codes the list shows (its pool, status and search) as CSV or XLSX: a
        small export answers at once; a bigger one is a job, started from this page."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        if file_format not in CodeExport.Format.values:
            raise Http404
        source = request.POST if request.method == "POST" else request.GET
        filters = code_export_filters(
            pool=source.get("pool__id__exact") or None,
            status=source.get("status__exact", ""),
            q=source.get("q", ""),
        )
        pool = Pool.objects.filter(pk=filters["pool"]).first() if filters.get("pool") else None
        if filters.get("pool") and pool is None:
            raise Http404
        if not can_export(request, pool):
            raise PermissionDenied
        if request.method == "POST":
            export = code_export_start(filters=filters, file_format=file_format, user=request.user)
            return HttpResponseRedirect(reverse("admin:pools_codeexport_change", args=[export.pk]))
        if code_export_is_small(filters):
            status = filters.get("status")
            named = {
                "status": Code.Status(status).label if status in Code.Status.values else status,
                "search": filters.get("q", "").strip(),
            }
            filename = export_filename(
                what="codes", pool=pool, filters=named, extension=file_format
            )
            rows = code_rows(codes_filtered(filters))
            if file_format == "xlsx":
                return xlsx_response(rows, filename)
            return csv_response(rows, filename)
        estimate = code_export_estimate(filters)
        return TemplateResponse(
            request,
            "admin/pools/code/export_start.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": f"Export codes as {file_format.upper()}",
                "pool": pool,
                "filters": filters,
                "file_format": file_format,
                "estimate": estimate,
                "at_once_max": EXPORT_AT_ONCE_MAX,
                "sheets": -(-estimate // XLSX_ROWS_PER_SHEET),
                "rows_per_sheet": XLSX_ROWS_PER_SHEET,
                "hidden": {
                    key: value
                    for key, value in (
                        ("pool__id__exact", filters.get("pool")),
                        ("status__exact", filters.get("status")),
                        ("q", filters.get("q")),
                    )
                    if value
                },
                "recent": CodeExport.objects.filter(created_by=request.user)
                .select_related("pool")
                .order_by("-id")[:5],
            },
        )

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        # Codes leave a pool only with it: their counts and history must stay whole.
        return False


def code_story(code: Code) -> list[dict]:
    """Return what happened to a code, oldest first, in plain words."""
    story = []
    if code.addition_id:
        addition = CodeAddition.objects.get(pk=code.addition_id)
        story.append(
            {
                "at": addition.added_at or addition.created_at,
                "text": format_html("Added to the pool by {}.", addition_label(addition)),
            }
        )
    for issue in code.issues.order_by("issued_at", "id"):
        if issue.marked:
            text = format_html("Marked as issued to customer {}.", issue.customer)
        elif issue.idempotency_key:
            text = format_html(
                "Issued to customer {} under the key “{}”.", issue.customer, issue.idempotency_key
            )
        else:
            text = format_html("Issued to customer {}.", issue.customer)
        story.append({"at": issue.issued_at, "text": text})
    for redemption in code.redemptions.order_by("redeemed_at", "id"):
        if redemption.order_reference:
            text = format_html(
                "Redeemed by customer {}, order {}.",
                redemption.customer,
                redemption.order_reference,
            )
        else:
            text = format_html("Redeemed by customer {}.", redemption.customer)
        story.append({"at": redemption.redeemed_at, "text": text})
    if code.withdrawal_id:
        withdrawal = Withdrawal.objects.select_related("created_by").get(pk=code.withdrawal_id)
        text = format_html(
            "Withdrawn by {}{}.",
            withdrawal.created_by or "someone",
            format_html(": “{}”", withdrawal.reason) if withdrawal.reason else "",
        )
        story.append({"at": withdrawal.created_at, "text": text})
    if code.status == Code.Status.EXPIRED:
        story.append({"at": None, "text": "Expired unused: past its Issue-end or Available-till."})
    return sorted(story, key=lambda item: (item["at"] is None, item["at"] or 0))


class ReportAdmin(admin.ModelAdmin):
    """The admin of a background job that staff start elsewhere and never edit: its page is its
    report, shown to whoever may view the job."""

    report_template = ""

    def report_context(self, request, job) -> dict:
        raise NotImplementedError

    def viewable_object(self, request, object_id):
        job = self.get_object(request, unquote(object_id))
        if job is None:
            raise Http404
        if not self.has_view_permission(request, job):
            raise PermissionDenied
        return job

    def change_view(self, request, object_id, form_url="", extra_context=None):
        job = self.viewable_object(request, object_id)
        return TemplateResponse(
            request,
            self.report_template,
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                **self.report_context(request, job),
            },
        )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Withdrawal)
class WithdrawalAdmin(ReportAdmin):
    """Withdrawals are made from a pool's page, a code's page or the codes list."""

    Media = AdminMedia
    list_display = (
        "__str__",
        "pool",
        "status",
        "codes_requested",
        "codes_withdrawn",
        "created_by",
        "created_at",
    )
    list_filter = ("status", "pool")
    list_select_related = ("pool", "created_by")
    report_template = "admin/pools/withdrawal/report.html"

    def report_context(self, request, withdrawal):
        return {
            "title": f"Withdrawal #{withdrawal.pk} — {withdrawal.get_status_display()}",
            "withdrawal": withdrawal,
            "not_found": withdrawal.not_found_sample.split(),
        }


# The home page: what needs attention


def _attention(request, title, rows) -> str:
    return render_to_string(
        "admin/pools/attention_section.html", {"title": title, "rows": rows}, request=request
    )


def low_stock_section(request) -> str:
    rows = [
        format_html(
            '<a href="{}">{}</a> ({}): {} left, alert below {}',
            reverse("admin:pools_pool_change", args=[pool.pk]),
            pool.slug,
            pool.campaign,
            f"{pool.codes_available:,}",
            f"{pool.notify_below:,}",
        )
        for pool in pools_below_threshold()
    ]
    return _attention(request, "Pools below their alert threshold", rows)


def expiring_section(request) -> str:
    rows = [
        format_html(
            '<a href="{}">{}</a> ({}): {} available codes stop within a week',
            reverse("admin:pools_pool_change", args=[pool.pk]),
            pool.slug,
            pool.campaign,
            f"{count:,}",
        )
        for pool, count in pools_expiring_soon()
    ]
    return _attention(request, "Codes expiring within a week", rows)


home_page.sections += [low_stock_section, expiring_section]


def can_export(request, pool: Pool | None) -> bool:
    """Return True if the user may export (and download) the codes of `pool` (of every pool
    when None): view permission on codes and on the pool."""
    pools = admin.site.get_model_admin(Pool)
    codes = admin.site.get_model_admin(Code)
    return codes.has_view_permission(request) and pools.has_view_permission(request, pool)


@admin.register(CodeExport)
class CodeExportAdmin(ReportAdmin):
    """Export jobs: the list, one job's page (progress, then the download)."""

    list_display = ("task_number", "what", "file_format", "status", "progress", "created_by")
    list_filter = ("status", "file_format")
    list_select_related = ("pool", "created_by")
    Media = AdminMedia
    report_template = "admin/pools/codeexport/export.html"

    @admin.display(description="task number", ordering="id")
    def task_number(self, export):
        return f"#{export.pk}"

    @admin.display(description="progress")
    def progress(self, export):
        return f"{export.rows_done:,} of ~{export.rows_total:,}"

    @admin.display(description="what")
    def what(self, export):
        return export_description(export)

    def get_urls(self):
        download = self.admin_site.admin_view(self.download_view)
        return [
            path("<path:object_id>/download/", download, name="pools_codeexport_download"),
            *super().get_urls(),
        ]

    def report_context(self, request, export):
        return {
            "title": f"Export #{export.pk}",
            "export": export,
            "description": export_description(export),
            "rows_named": export_rows_named(export),
            "can_download": export.status == CodeExport.Status.COMPLETED
            and can_export(request, export.pool),
        }

    def download_view(self, request, object_id):
        """Send the export's file to staff who may view the pool's codes."""
        export = self.viewable_object(request, object_id)
        if not can_export(request, export.pool):
            raise PermissionDenied
        if export.status != CodeExport.Status.COMPLETED or not export.file:
            raise Http404
        return FileResponse(export.file.open("rb"), as_attachment=True, filename=export.file_name)
