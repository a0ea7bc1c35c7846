"""What imports adds to pools' admin pages, registered in pools.admin's registries: the import
part of a pool's Codes section, the "Assign to customers" button, the name of the import behind
an addition of codes, and the home page's section on imports. Also the "Add codes" page's own
registry, which the apps above imports fill."""

from datetime import timedelta

from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext as _

from pools.admin import PageParts, addition_labels, home_page, pool_page

from ..models import Import
from ..selectors import generation_allowed, pool_import_history

RECENT_IMPORT_DAYS = 3

# What the apps above imports add to the "Add codes" page (sections: callables (request, pool)).
add_codes_page = PageParts()


def pool_codes_section(request, pool) -> str:
    """The import part of a pool page's Codes section: Add codes, templates, import history."""
    return render_to_string(
        "admin/imports/import/pool_section.html",
        {
            "pool": pool,
            "can_add": request.user.has_perm("imports.add_import"),
            "generation_allowed": generation_allowed(pool),
            "history": pool_import_history(pool),
        },
        request=request,
    )


pool_page.sections.append(pool_codes_section)


def import_addition_label(addition) -> str | None:
    """Name the import behind a pool's record of an addition of codes, for the code's page."""
    job = Import.objects.filter(addition=addition).select_related("created_by").first()
    if job is None:
        return None
    link = format_html(
        '<a href="{}">{}</a>',
        reverse("admin:imports_import_change", args=[job.pk]),
        _("import #%(number)s") % {"number": job.pk},
    )
    if job.created_by:
        return format_html(
            _("{link} ({source}, {file}, started by {user})"),
            link=link,
            source=job.get_source_display(),
            file=job.name_shown or "—",
            user=job.created_by,
        )
    return format_html(
        _("{link} ({source}, {file})"),
        link=link,
        source=job.get_source_display(),
        file=job.name_shown or "—",
    )


def imports_attention_section(request) -> str:
    """The home page's list of imports running now or failed in the last days."""
    since = timezone.now() - timedelta(days=RECENT_IMPORT_DAYS)
    jobs = (
        Import.objects.filter(
            Q(status__in=(Import.Status.QUEUED, Import.Status.RUNNING))
            | Q(status=Import.Status.FAILED, created_at__gte=since)
        )
        .select_related("pool")
        .order_by("-created_at")[:20]
    )
    rows = [
        format_html(
            _("{link} into {pool}: {status}"),
            link=format_html(
                '<a href="{}">{}</a>',
                reverse("admin:imports_import_change", args=[job.pk]),
                _("Import #%(number)s") % {"number": job.pk},
            ),
            pool=job.pool,
            status=status_cell(job),
        )
        for job in jobs
    ]
    return render_to_string(
        "admin/pools/attention_section.html",
        {"title": _("Imports running, or failed in the last days"), "rows": rows},
        request=request,
    )


addition_labels.append(import_addition_label)
home_page.sections.append(imports_attention_section)


def status_cell(job: Import) -> str:
    return format_html(
        '<span class="import-status import-status-{}">{}</span>',
        job.status,
        job.get_status_display(),
    )


def assign_button(request, pool) -> str:
    if not (pool.is_active and request.user.has_perm("imports.add_assignment")):
        return ""
    return format_html(
        '<li><a href="{}?pool={}" class="addlink">{}</a></li>',
        reverse("admin:imports_assignment_add"),
        pool.pk,
        _("Assign to customers"),
    )


pool_page.object_tools.append(assign_button)
