"""The assignments screens: a customer list in, the list with codes out; giving
codes back."""

import os

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_POST

from pools.admin import AdminMedia, can_export
from pools.models import Pool

from ..assignments import assignment_release, assignment_rerun, assignment_start
from ..forms import AssignForm, ReleaseForm
from ..models import Assignment
from .helpers import add_errors, int_or_none

QUEUED_AGAIN = gettext_lazy(
    "Assignment %(job)s is queued again: it goes on after the rows it did, and the customers so "
    "far keep their codes."
)
ASSIGNMENT_QUEUED = gettext_lazy("Assignment %(job)s is queued: this report shows its progress.")


def released_message(counts: dict[str, int]) -> str:
    """Return what a give-back did, one sentence per kind of customer that was in the list."""
    said = [
        ngettext("Gave back %(count)s code.", "Gave back %(count)s codes.", counts["released"])
        % {"count": number_format(counts["released"])}
    ]
    if counts["redeemed"]:
        said.append(
            ngettext(
                "%(count)s code was already redeemed and stays.",
                "%(count)s codes were already redeemed and stay.",
                counts["redeemed"],
            )
            % {"count": number_format(counts["redeemed"])}
        )
    if counts["held_elsewhere"]:
        said.append(
            ngettext(
                "%(count)s customer holds a code that no assignment issued (it came from the "
                "API or was marked as issued); it was not given back.",
                "%(count)s customers hold codes that no assignment issued (they came from the "
                "API or were marked as issued); they were not given back.",
                counts["held_elsewhere"],
            )
            % {"count": number_format(counts["held_elsewhere"])}
        )
    if counts["not_found"]:
        said.append(
            ngettext(
                "%(count)s customer has no code in this pool to give back.",
                "%(count)s customers have no code in this pool to give back.",
                counts["not_found"],
            )
            % {"count": number_format(counts["not_found"])}
        )
    return " ".join(said)


CHOOSE_A_POOL_TO_ASSIGN = gettext_lazy(
    "Codes are assigned from a pool: open an active pool, then “Assign to customers”."
)


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    Media = AdminMedia
    list_display = (
        "task_number",
        "pool",
        "file_name",
        "status",
        "codes_issued",
        "already_held",
        "shortfall",
        "created_by",
        "created_at",
    )
    list_filter = ("status", "pool")
    list_select_related = ("pool", "created_by")
    search_fields = ("=id", "file_name", "pool__slug")

    @admin.display(description=gettext_lazy("task number"), ordering="id")
    def task_number(self, job):
        return f"#{job.pk}"

    def get_model_perms(self, request):
        # Started from an active pool's page ("Assign to customers").
        return {**super().get_model_perms(request), "add": False}

    def changelist_view(self, request, extra_context=None):
        # Rows open reports, not forms: titled by what it lists, not "Select … to view"; and no
        # "Add assignment" button: an assignment is started from a pool's page.
        extra = {"title": _("Assignments"), "has_add_permission": False}
        return super().changelist_view(request, {**(extra_context or {}), **extra})

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/result.csv",
                wrap(self.result_view),
                name="imports_assignment_result",
            ),
            path(
                "<path:object_id>/release/",
                wrap(require_POST(self.release_view)),
                name="imports_assignment_release",
            ),
            path(
                "<path:object_id>/rerun/",
                wrap(require_POST(self.rerun_view)),
                name="imports_assignment_rerun",
            ),
            *super().get_urls(),
        ]

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        pool = Pool.objects.filter(pk=int_or_none(request.GET.get("pool"))).first()
        if pool is None:
            # An assignment takes codes of one pool: send the manager to choose it, not to a 404.
            messages.info(request, CHOOSE_A_POOL_TO_ASSIGN)
            return HttpResponseRedirect(
                reverse("admin:pools_pool_changelist") + "?status__exact=active"
            )
        form = AssignForm()
        if request.method == "POST":
            form = AssignForm(request.POST, request.FILES)
            if form.is_valid():
                try:
                    job = assignment_start(
                        pool=pool, file=form.cleaned_data["file"], user=request.user
                    )
                except ValidationError as error:
                    add_errors(form, error)
                else:
                    messages.success(request, ASSIGNMENT_QUEUED % {"job": job})
                    return HttpResponseRedirect(
                        reverse("admin:imports_assignment_change", args=[job.pk])
                    )
        return TemplateResponse(
            request,
            "admin/imports/assignment/add.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": _("Assign codes of %(pool)s to customers") % {"pool": pool},
                "pool": pool,
                "form": form,
                "history": pool.assignments.all()[:20],
            },
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        job = self.get_object(request, unquote(object_id))
        if job is None:
            raise Http404
        if not self.has_view_permission(request, job):
            raise PermissionDenied
        return TemplateResponse(
            request,
            "admin/imports/assignment/report.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": _("Assignment %(job)s — %(status)s")
                % {"job": job, "status": job.get_status_display()},
                "job": job,
                "release_form": ReleaseForm(),
                "can_release": job.is_finished and self.has_add_permission(request),
                "can_rerun": job.status == Assignment.Status.FAILED
                and self.has_add_permission(request),
                # The list with codes, and the customer ids the report samples: who got a
                # code of this pool is the codes' to tell (their export rule).
                "can_download": can_export(request, job.pool),
            },
        )

    def result_view(self, request, object_id):
        job = self.get_object(request, unquote(object_id))
        if job is None or not job.result:
            raise Http404
        # Customer ids with their codes: the codes' export rule, on every request.
        if not self.has_view_permission(request, job) or not can_export(request, job.pool):
            raise PermissionDenied
        return FileResponse(
            job.result.open("rb"),
            as_attachment=True,
            filename=os.path.basename(job.result.name),
            content_type="text/csv",
        )

    def rerun_view(self, request, object_id):
        job = self.get_object(request, unquote(object_id))
        if job is None:
            raise Http404
        if not self.has_add_permission(request):
            raise PermissionDenied
        try:
            assignment_rerun(job=job)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            message = QUEUED_AGAIN % {"job": job}
            self.log_change(request, job, message)
            messages.success(request, message)
        return HttpResponseRedirect(reverse("admin:imports_assignment_change", args=[job.pk]))

    def release_view(self, request, object_id):
        job = self.get_object(request, unquote(object_id))
        if job is None:
            raise Http404
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ReleaseForm(request.POST)
        if form.is_valid():
            counts = assignment_release(
                job=job, customers=form.cleaned_data["customers"].splitlines()
            )
            message = released_message(counts)
            self.log_change(request, job, message)
            messages.success(request, message)
        return HttpResponseRedirect(reverse("admin:imports_assignment_change", args=[job.pk]))
