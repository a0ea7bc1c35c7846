"""The codes screens: the list (its filters and paginator, written for a pool of millions of
codes), a code's page with its story, marking issued, withdrawing, exporting."""

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from ..code_services import code_mark_issued, codes_withdraw
from ..export_services import (
    EXPORT_AT_ONCE_MAX,
    code_export_estimate,
    code_export_filters,
    code_export_is_small,
    code_export_start,
)
from ..exports import XLSX_ROWS_PER_SHEET, code_rows, codes_filtered, csv_response, xlsx_response
from ..formats import export_filename
from ..forms import ReasonForm
from ..models import Code, CodeAddition, CodeExport, Pool, Withdrawal
from ..refusals import CodeRefused
from ..selectors import codes_search
from .code_windows import code_issue_window, code_redeem_window
from .parts import (
    AdminMedia,
    PlainListTitle,
    addition_label,
    can_export,
    number,
    tell_withdrawal,
)

MARKED_ISSUED = _("The code %(code)s is marked as issued to %(customer)s.")


WITHDRAW_INTRO = _(
    "Withdrawn codes are out of use for good: check and redeem refuse them (reason withdrawn), "
    "and they leave the stock. Codes already redeemed are left as they are."
)


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
class CodeAdmin(PlainListTitle, admin.ModelAdmin):
    Media = AdminMedia
    list_display = Code.LISTED_FIELDS
    list_filter = (("status", StatusListFilter), ("pool", PoolListFilter))
    list_select_related = ("pool",)
    search_fields = ("code",)
    search_help_text = _(
        "Find codes by their text or its beginning, or the codes issued to a customer id."
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
                "title": gettext("Code %(code)s") % {"code": code.code},
                "code": code,
                "pool": pool,
                "story": code_story(code),
                "can_be_issued": code_issue_window(code),
                "can_be_redeemed": code_redeem_window(code),
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
            message = MARKED_ISSUED % {"code": code, "customer": customer.strip()}
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
        logged = gettext("Withdrawn (withdrawal #%(number)s).") % {"number": withdrawal.pk}
        self.log_change(request, code, logged)
        tell_withdrawal(request, withdrawal)
        return HttpResponseRedirect(reverse("admin:pools_code_change", args=[code.pk]))

    @admin.action(description=_("Withdraw selected codes"), permissions=["withdraw"])
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
                logged = gettext("Withdrawal #%(number)s of selected codes.")
                self.log_change(request, pool, logged % {"number": withdrawal.pk})
                tell_withdrawal(request, withdrawal)
            return None
        count = queryset.count()
        return TemplateResponse(
            request,
            "admin/pools/confirm.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": ngettext(
                    "Withdraw the selected code?", "Withdraw %(count)s selected codes?", count
                )
                % {"count": number(count)},
                "intro": [WITHDRAW_INTRO],
                "crumbs": [
                    {
                        "url": reverse("admin:pools_code_changelist"),
                        "label": Code._meta.verbose_name_plural.capitalize(),
                    }
                ],
                # Posted back to the same address (filters and search in its query string), as
                # the list's own form posts it: "all N codes" stays a query, not a list of ids.
                "hidden": [
                    ("action", "withdraw_selected"),
                    ("select_across", request.POST.get("select_across", "0")),
                ]
                + [("_selected_action", pk) for pk in request.POST.getlist("_selected_action")],
                "form": ReasonForm(),
                "confirm_label": gettext("Withdraw"),
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
                # The value, not its label: a file's name stays the same in every language.
                "status": status,
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
                "title": gettext("Export codes as %(format)s") % {"format": file_format.upper()},
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
                "text": format_html(
                    gettext("Added to the pool by {addition}."), addition=addition_label(addition)
                ),
            }
        )
    for issue in code.issues.order_by("issued_at", "id"):
        if issue.marked:
            text = format_html(
                gettext("Marked as issued to customer {customer}."), customer=issue.customer
            )
        elif issue.idempotency_key:
            text = format_html(
                gettext("Issued to customer {customer} under the key “{key}”."),
                customer=issue.customer,
                key=issue.idempotency_key,
            )
        else:
            text = format_html(gettext("Issued to customer {customer}."), customer=issue.customer)
        story.append({"at": issue.issued_at, "text": text})
    for redemption in code.redemptions.order_by("redeemed_at", "id"):
        if redemption.order_reference:
            text = format_html(
                gettext("Redeemed by customer {customer}, order {order}."),
                customer=redemption.customer,
                order=redemption.order_reference,
            )
        else:
            text = format_html(
                gettext("Redeemed by customer {customer}."), customer=redemption.customer
            )
        story.append({"at": redemption.redeemed_at, "text": text})
    if code.withdrawal_id:
        withdrawal = Withdrawal.objects.select_related("created_by").get(pk=code.withdrawal_id)
        who = withdrawal.created_by or gettext("someone")
        if withdrawal.reason:
            text = format_html(
                gettext("Withdrawn by {who}: “{reason}”."), who=who, reason=withdrawal.reason
            )
        else:
            text = format_html(gettext("Withdrawn by {who}."), who=who)
        story.append({"at": withdrawal.created_at, "text": text})
    if code.status == Code.Status.EXPIRED:
        story.append(
            {"at": None, "text": gettext("Expired unused: past its Issue-end or Available-till.")}
        )
    return sorted(story, key=lambda item: (item["at"] is None, item["at"] or 0))
