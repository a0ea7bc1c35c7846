"""The reports of background jobs started elsewhere: withdrawals, undos of imports, and code
exports (progress, then the download)."""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from ..code_services import withdrawal_rerun
from ..export_services import export_description, export_rows_named
from ..models import AdditionUndo, CodeExport, Withdrawal
from .parts import AdminMedia, PlainListTitle, addition_label, can_export, number

WITHDRAWAL_QUEUED_AGAIN = _(
    "Withdrawal #%(job)s is queued again: it goes on after the codes it has already done."
)


class ReportAdmin(PlainListTitle, admin.ModelAdmin):
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
            "title": gettext("Withdrawal #%(number)s — %(status)s")
            % {"number": withdrawal.pk, "status": withdrawal.get_status_display()},
            "withdrawal": withdrawal,
            "not_found": withdrawal.not_found_sample.split(),
            # Until the worker reads an uploaded list, its codes are not counted yet.
            "list_unread": bool(withdrawal.list_file_name) and not withdrawal.list_read,
            "can_rerun": withdrawal.can_run_again and request.user.has_perm("pools.withdraw_code"),
        }

    def get_urls(self):
        rerun = self.admin_site.admin_view(require_POST(self.rerun_view))
        return [
            path("<path:object_id>/rerun/", rerun, name="pools_withdrawal_rerun"),
            *super().get_urls(),
        ]

    def rerun_view(self, request, object_id):
        withdrawal = self.viewable_object(request, object_id)
        if not request.user.has_perm("pools.withdraw_code"):
            raise PermissionDenied
        try:
            withdrawal_rerun(withdrawal=withdrawal)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            message = WITHDRAWAL_QUEUED_AGAIN % {"job": withdrawal.pk}
            self.log_change(request, withdrawal, message)
            messages.success(request, message)
        return HttpResponseRedirect(reverse("admin:pools_withdrawal_change", args=[withdrawal.pk]))


@admin.register(AdditionUndo)
class AdditionUndoAdmin(ReportAdmin):
    """Undos are started from an import's report."""

    Media = AdminMedia
    list_display = ("__str__", "pool", "status", "removed", "created_by", "created_at")
    list_filter = ("status", "pool")
    list_select_related = ("pool", "created_by")
    report_template = "admin/pools/additionundo/report.html"

    def report_context(self, request, undo):
        return {
            "title": gettext("Undo #%(number)s — %(status)s")
            % {"number": undo.pk, "status": undo.get_status_display()},
            "undo": undo,
            "what": addition_label(undo.addition),
        }


@admin.register(CodeExport)
class CodeExportAdmin(ReportAdmin):
    """Export jobs: the list, one job's page (progress, then the download)."""

    list_display = ("task_number", "what", "file_format", "status", "progress", "created_by")
    list_filter = ("status", "file_format")
    list_select_related = ("pool", "created_by")
    Media = AdminMedia
    report_template = "admin/pools/codeexport/export.html"

    @admin.display(description=_("task number"), ordering="id")
    def task_number(self, export):
        return f"#{export.pk}"

    @admin.display(description=_("progress"))
    def progress(self, export):
        return gettext("%(done)s of about %(total)s") % {
            "done": number(export.rows_done),
            "total": number(export.rows_total),
        }

    @admin.display(description=_("what"))
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
            "title": gettext("Export #%(number)s") % {"number": export.pk},
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
