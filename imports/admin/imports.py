"""The imports screens: the list, the pool's "Add codes" page (upload, paste, generate), an
import's report with its progress, rejected rows, undo and run again, and the templates."""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_POST

from pools import export_services
from pools.admin import can_export
from pools.exports import csv_response, xlsx_response
from pools.guessing import generation_guessing_notes
from pools.models import CodeExport, Pool
from pools.selectors import pool_code_total

from .. import services
from ..forms import GenerateForm, PasteForm, UploadForm
from ..generation import CodeFormat
from ..models import Import
from ..selectors import REJECTED_ROWS, generation_allowed, pool_import_history, rejected_rows
from ..templates_download import (
    template_columns,
    template_csv,
    template_example_row,
    template_notes,
    template_xlsx,
)
from .helpers import IMPORT_QUEUED, add_errors, int_or_none
from .parts import add_codes_page, status_cell
from .uploads import QUESTION_ASKED, UploadViews, upload_preview_url

UNDO_STARTED = gettext_lazy(
    "Removing the codes import %(job)s added that were never used, as %(undo)s: this report "
    "shows its progress."
)
REJECTED_SHOWN = 100
CHOOSE_A_POOL = gettext_lazy("Codes are added to a pool: open a pool, then “Add codes”.")


@admin.register(Import)
class ImportAdmin(UploadViews, admin.ModelAdmin):
    list_display = (
        "task_number",
        "pool",
        "source",
        "name_shown",
        "status_badge",
        "codes_added",
        "rows_rejected",
        "created_by",
        "created_at",
    )
    list_filter = ("status", "source", "pool")
    list_select_related = ("pool", "created_by")
    search_fields = ("=id", "file_name", "pool__slug")

    class Media:
        css = {"all": ("pools/admin.css",)}
        js = ("imports/progress.js",)

    @admin.display(description=gettext_lazy("task number"), ordering="id")
    def task_number(self, job):
        return f"#{job.pk}"

    @admin.display(description=gettext_lazy("file"), ordering="file_name")
    def name_shown(self, job):
        return job.name_shown

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_badge(self, job):
        return status_cell(job)

    def changelist_view(self, request, extra_context=None):
        # No "Add import" button: codes are added from a pool's page ("Add codes"). A list
        # whose rows open reports, not forms: titled by what it lists, not "Select … to view".
        return super().changelist_view(
            request,
            {**(extra_context or {}), "has_add_permission": False, "title": _("Imports")},
        )

    def get_model_perms(self, request):
        # Codes are added from a pool's page; an "Add" link without a pool would lead nowhere.
        return {**super().get_model_perms(request), "add": False}

    def has_change_permission(self, request, obj=None):
        return False  # an import's record is its report: written by the worker only

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("template.<str:file_format>", wrap(self.template_view), name="imports_template"),
            path(
                "<path:object_id>/progress/",
                wrap(self.progress_view),
                name="imports_import_progress",
            ),
            path(
                "<path:object_id>/rejected.<str:file_format>",
                wrap(self.rejected_view),
                name="imports_import_rejected",
            ),
            path(
                "<path:object_id>/undo/",
                wrap(self.undo_view),
                name="imports_import_undo",
            ),
            path(
                "<path:object_id>/rerun/",
                wrap(require_POST(self.rerun_view)),
                name="imports_import_rerun",
            ),
            *self.upload_urls(),
            *super().get_urls(),
        ]

    # The add page is the pool's "Add codes" page: upload, paste or generate.

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        pool = Pool.objects.filter(pk=int_or_none(request.GET.get("pool"))).first()
        if pool is None:
            # Codes are added to a pool: send the manager to choose one rather than to a 404.
            messages.info(request, CHOOSE_A_POOL)
            return HttpResponseRedirect(reverse("admin:pools_pool_changelist"))
        forms = {
            "upload": UploadForm(prefix="upload"),
            "paste": PasteForm(prefix="paste"),
            "generate": GenerateForm(prefix="generate"),
        }
        if request.method == "POST":
            kind = request.POST.get("kind")
            if kind not in forms:
                raise PermissionDenied
            form_class = type(forms[kind])
            forms[kind] = form = form_class(request.POST, request.FILES, prefix=kind)
            if form.is_valid():
                try:
                    return self._start(request, kind, pool, form.cleaned_data)
                except ValidationError as error:
                    add_errors(form, error)
        return TemplateResponse(
            request,
            "admin/imports/import/add_codes.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": _("Add codes to %(pool)s") % {"pool": pool},
                "pool": pool,
                "forms": forms,
                "generation_allowed": generation_allowed(pool),
                "available_for_generation": CodeFormat().available_for_generation(
                    pool_code_total(pool)
                ),
                # What guessing can find, as docs/http-api.md states it (pools/guessing.py).
                "guessing_notes": generation_guessing_notes(
                    space=CodeFormat().capacity,
                    codes=pool_code_total(pool),
                    limit=CodeFormat().limit,
                ),
                "history": pool_import_history(pool, limit=20),
                "parts": add_codes_page.render(add_codes_page.sections, request, pool),
                "template_columns": template_columns(),
                "template_example": template_example_row(),
                "template_notes": template_notes(),
            },
        )

    def _start(self, request, kind, pool, data):
        """Start what the form asks; return where the manager goes next."""
        user = request.user
        if kind == "upload":
            staged = {"pool": pool, "file": data["file"], "user": user}
            staged["date_order"] = data["date_order"]
            if request.POST.get("action") == "check":
                return HttpResponseRedirect(upload_preview_url(services.upload_stage(**staged)))
            try:
                job = services.import_file_start(**staged)
            except services.FileQuestion:
                # Not a reason to choose the file again: the question is asked on its preview.
                upload = services.upload_stage(**staged, check=False)
                messages.info(request, QUESTION_ASKED % {"name": upload.file_name})
                return HttpResponseRedirect(upload_preview_url(upload))
        elif kind == "paste":
            job = services.import_text_start(pool=pool, text=data["text"], user=user)
        else:
            job = services.import_generate_start(pool=pool, user=user, **data)
        messages.success(request, IMPORT_QUEUED % {"job": job})
        # The manager lands where the progress is: the report updates itself.
        return HttpResponseRedirect(reverse("admin:imports_import_change", args=[job.pk]))

    # The change page is the import's report.

    def change_view(self, request, object_id, form_url="", extra_context=None):
        job = self.get_object(request, object_id)
        if job is None:
            raise Http404
        if not self.has_view_permission(request, job):
            raise PermissionDenied
        undos = list(job.addition.undos.all()) if job.addition_id else []
        # What an undo took away is part of the import's story: told in the report itself.
        undone = [undo for undo in undos if undo.status == undo.Status.COMPLETED and undo.removed]
        return TemplateResponse(
            request,
            "admin/imports/import/report.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": _("Import %(job)s — %(status)s")
                % {"job": job, "status": job.get_status_display()},
                "job": job,
                "rejections": job.rejections.all()[:REJECTED_SHOWN],
                "rejected_shown": REJECTED_SHOWN,
                "rejected_as_job": job.rows_not_added > export_services.EXPORT_AT_ONCE_MAX,
                # Rejected values are codes: shown on the page only to whoever may download
                # them (the codes' export rule).
                "can_export_rejected": can_export(request, job.pool),
                "can_rerun": job.can_run_again and self.has_add_permission(request),
                "undos": undos,
                "undone": undone,
                "codes_removed": sum(undo.removed for undo in undone),
                # An undo under way: the report follows it until it ends.
                "undo_running": any(not undo.is_finished for undo in undos),
                "can_undo": job.is_finished
                and job.addition_id is not None
                and job.codes_added > 0
                # Once: an undo queued, running or done is shown instead (a failed one may be
                # started again).
                and all(undo.status == undo.Status.FAILED for undo in undos)
                and request.user.has_perm("pools.undo_codeaddition"),
            },
        )

    def undo_view(self, request, object_id):
        """Count first, then remove the codes this import added that were never used."""
        job = self._get_job(request, object_id)
        if not request.user.has_perm("pools.undo_codeaddition"):
            raise PermissionDenied
        report_url = reverse("admin:imports_import_change", args=[job.pk])
        try:
            if request.method == "POST" and "confirm" in request.POST:
                undo = services.import_undo(job=job, user=request.user)
            else:
                preview = services.import_undo_preview(job=job)
                return self._undo_confirm_page(request, job, preview, report_url)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
            return HttpResponseRedirect(report_url)
        message = UNDO_STARTED % {"job": job, "undo": undo}
        self.log_change(request, job, message)
        messages.success(request, message)
        return HttpResponseRedirect(reverse("admin:pools_additionundo_change", args=[undo.pk]))

    def _undo_confirm_page(self, request, job, preview, report_url):
        def count(n):
            return number_format(n, force_grouping=True)

        facts = [
            ngettext(
                "%(count)s code will be removed: it was never issued nor redeemed.",
                "%(count)s codes will be removed: they were never issued nor redeemed.",
                preview.removed,
            )
            % {"count": count(preview.removed)},
            ngettext(
                "%(count)s code will be kept, since it has a history: %(issued)s issued, "
                "%(redeemed)s redeemed, %(withdrawn)s withdrawn, %(used)s given out before "
                "and back in stock or multiple-use.",
                "%(count)s codes will be kept, since they have a history: %(issued)s issued, "
                "%(redeemed)s redeemed, %(withdrawn)s withdrawn, %(used)s given out before "
                "and back in stock or multiple-use.",
                preview.kept,
            )
            % {
                "count": count(preview.kept),
                "issued": count(preview.kept_issued),
                "redeemed": count(preview.kept_redeemed),
                "withdrawn": count(preview.kept_withdrawn),
                "used": count(preview.kept_used),
            },
        ]
        return TemplateResponse(
            request,
            "admin/pools/confirm.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": _("Remove the codes import %(job)s added?") % {"job": job},
                "intro": [
                    ngettext(
                        "Import %(job)s added %(count)s code to %(pool)s. Codes that were "
                        "issued, redeemed or withdrawn stay, with their history; the others "
                        "leave the pool and its stock.",
                        "Import %(job)s added %(count)s codes to %(pool)s. Codes that were "
                        "issued, redeemed or withdrawn stay, with their history; the others "
                        "leave the pool and its stock.",
                        job.codes_added,
                    )
                    % {"job": job, "count": count(job.codes_added), "pool": job.pool}
                ],
                "sections": [{"heading": _("What will happen"), "facts": facts}],
                "crumbs": [
                    {
                        "url": reverse("admin:pools_pool_change", args=[job.pool_id]),
                        "label": job.pool,
                    },
                    {"url": report_url, "label": _("Import %(job)s") % {"job": job}},
                ],
                "confirm_label": ngettext(
                    "Remove %(count)s code", "Remove %(count)s codes", preview.removed
                )
                % {"count": count(preview.removed)},
                "dangerous": True,
                "can_confirm": preview.removed > 0,
                "cancel_url": report_url,
            },
        )

    def _get_job(self, request, object_id) -> Import:
        job = self.get_object(request, unquote(object_id))
        if job is None:
            raise Http404
        if not self.has_view_permission(request, job):
            raise PermissionDenied
        return job

    def progress_view(self, request, object_id):
        job = self._get_job(request, object_id)
        return JsonResponse(
            {
                "status": job.status,
                "status_display": job.get_status_display(),
                "finished": job.is_finished,
                "percent": job.progress_percent,
                "codes_added": job.codes_added,
                "rows_rejected": job.rows_rejected,
                "report_url": reverse("admin:imports_import_change", args=[job.pk]),
            }
        )

    def rejected_view(self, request, object_id, file_format):
        """Send the import's rejected rows: at once up to EXPORT_AT_ONCE_MAX of them, as the
        codes list does; past it, a POST queues an export job and opens its page (a GET, or
        an import not ended yet, goes back to the report, whose buttons post once it ends).
        Rejected rows hold codes: one rule for both, the codes' export rule (can_export)."""
        job = self._get_job(request, object_id)
        if file_format not in CodeExport.Format.values:
            raise Http404
        if not can_export(request, job.pool):
            raise PermissionDenied
        name = f"import-{job.pk}-rejected-rows"
        if job.rows_not_added <= export_services.EXPORT_AT_ONCE_MAX:
            if file_format == "xlsx":
                return xlsx_response(
                    rejected_rows(job), f"{name}.xlsx", sheet_title=_("Rejected rows")
                )
            return csv_response(rejected_rows(job), f"{name}.csv")
        if request.method != "POST" or not job.is_finished:
            return HttpResponseRedirect(reverse("admin:imports_import_change", args=[job.pk]))
        export = export_services.source_export_start(
            source=REJECTED_ROWS,
            pool=job.pool,
            filters={"import": job.pk},
            file_format=file_format,
            file_name=name,
            user=request.user,
        )
        return HttpResponseRedirect(reverse("admin:pools_codeexport_change", args=[export.pk]))

    def template_view(self, request, file_format):
        if file_format == "csv":
            return template_csv()
        if file_format == "xlsx":
            return template_xlsx()
        raise Http404

    def rerun_view(self, request, object_id):
        job = self._get_job(request, object_id)
        if not self.has_add_permission(request):
            raise PermissionDenied
        try:
            services.import_rerun(job=job, user=request.user)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            message = _("Import %(job)s is queued again.") % {"job": job}
            self.log_change(request, job, message)
            messages.success(request, message)
        return HttpResponseRedirect(reverse("admin:imports_import_change", args=[job.pk]))
