"""A file checked before it is imported: the staged upload's preview page, its choices ("Check
again") and "Start the import". The reading is imports/preview.py's, the writes the upload_*
services'; this module only shows them."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from pools.models import Pool

from .. import services
from ..forms import PreviewForm
from ..models import Upload
from ..preview import Question, file_preview
from ..readers import FIX_THE_FILE, ImportFileError, column_letter
from ..templates_download import template_columns
from .helpers import IMPORT_QUEUED

QUESTION_ASKED = gettext_lazy("“%(name)s” needs an answer before it can be imported: see below.")
CHOICES_KEPT = gettext_lazy("Your choices are saved: here is the file read with them.")
QUESTION_TITLES = {
    Question.COLUMNS: gettext_lazy("Which columns hold the codes?"),
    Question.ENCODING: gettext_lazy("Which encoding is the file in?"),
    Question.DATE_ORDER: gettext_lazy("Day or month first?"),
}


def upload_preview_url(upload: Upload) -> str:
    return reverse("admin:imports_upload_preview", args=[upload.pk])


class UploadViews:
    """ImportAdmin's pages for staged uploads (a mixin: the same admin, the same permission to
    add codes)."""

    def upload_urls(self):
        return [
            path(
                "upload/<int:upload_id>/preview/",
                self.admin_site.admin_view(self.upload_preview_view),
                name="imports_upload_preview",
            )
        ]

    def _get_upload(self, request, upload_id) -> Upload:
        """Return the upload, if the user may add codes and see its pool."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        pools = self.admin_site.get_model_admin(Pool)
        upload = (
            Upload.objects.select_related("pool__campaign", "import_job")
            .filter(pk=upload_id, pool__in=pools.get_queryset(request).values("pk"))
            .first()
        )
        if upload is None:
            raise Http404
        if not pools.has_view_permission(request, upload.pool):
            raise PermissionDenied
        return upload

    def upload_preview_view(self, request, upload_id):
        upload = self._get_upload(request, upload_id)
        if upload.is_started:
            return HttpResponseRedirect(
                reverse("admin:imports_import_change", args=[upload.import_job_id])
            )
        action = request.POST.get("action") if request.method == "POST" else None
        if action == "start":
            return self._upload_start(request, upload)
        try:
            with upload.file.open("rb") as file:
                preview = file_preview(
                    pool=upload.pool,
                    file=file,
                    name=upload.file_name,
                    size=upload.file_size,
                    encoding=upload.encoding,
                    date_order=upload.date_order,
                    mapping=upload.column_mapping or None,
                )
        except ImportFileError as error:
            return self._upload_page(request, upload, refusal=f"{error} {FIX_THE_FILE}")
        form = PreviewForm(
            request.POST if action == "check" else None, preview=preview, upload=upload
        )
        if action == "check" and form.is_valid():
            try:
                services.upload_choose(upload=upload, preview=preview, **form.choices())
            except ValidationError as error:
                messages.error(request, " ".join(error.messages))
            else:
                messages.info(request, CHOICES_KEPT)
            return HttpResponseRedirect(upload_preview_url(upload))
        return self._upload_page(request, upload, preview=preview, form=form)

    def _upload_start(self, request, upload: Upload):
        try:
            job = services.upload_start(upload=upload, user=request.user)
        except ValidationError as error:
            # The question stays open: the manager answers it on the page.
            messages.error(request, " ".join(error.messages))
            return HttpResponseRedirect(upload_preview_url(upload))
        messages.success(request, IMPORT_QUEUED % {"job": job})
        return HttpResponseRedirect(reverse("admin:imports_import_change", args=[job.pk]))

    def _upload_page(self, request, upload: Upload, *, preview=None, form=None, refusal=""):
        return TemplateResponse(
            request,
            "admin/imports/import/preview.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": _("Check “%(name)s” before importing") % {"name": upload.file_name},
                "upload": upload,
                "pool": upload.pool,
                "preview": preview,
                "form": form,
                "refusal": refusal,
                "question_title": QUESTION_TITLES.get(preview.question, "") if preview else "",
                "template_columns": template_columns(),
                "letters": [column_letter(i) for i in range(preview.width)] if preview else [],
                "first_rows": _first_rows(preview) if preview else [],
            },
        )


def _first_rows(preview) -> list[tuple[int, list[str]]]:
    """The file's first rows with their numbers, each as wide as the widest."""
    width = preview.width
    return [
        (number, (list(row) + [""] * width)[:width])
        for number, row in zip(preview.first_row_numbers, preview.first_rows, strict=False)
    ]
