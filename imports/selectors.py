"""Reads of imports that the admin and the services share."""

from django.db.models import QuerySet
from django.utils.translation import gettext as _

from pools.export_services import ExportSource
from pools.models import Pool

from .models import Import, Rejection
from .readers import TEMPLATE_COLUMNS

REJECTED_HEADER = (*TEMPLATE_COLUMNS, "Reason")


def pool_import_history(pool: Pool, *, limit: int = 10) -> QuerySet[Import]:
    """Return the pool's latest imports, newest first."""
    return Import.objects.filter(pool=pool).select_related("created_by")[:limit]


def generation_allowed(pool: Pool) -> bool:
    """Return True if the pool still offers generation: no manual upload was made to it."""
    return (
        not Import.objects.filter(pool=pool, source__in=Import.MANUAL_SOURCES)
        .exclude(status=Import.Status.FAILED)
        .exists()
    )


def last_chosen_columns(pool: Pool) -> dict:
    """Return the column mapping of the pool's latest file import whose columns were chosen
    (as the Import keeps it: headers.ColumnMapping.as_json() and the file's "width"), or {}
    when none was."""
    job = (
        Import.objects.filter(pool=pool, source=Import.Source.FILE)
        .exclude(column_mapping={})
        .order_by("-created_at", "-id")
        .only("column_mapping")
        .first()
    )
    return job.column_mapping if job else {}


def rejected_row(rejection: Rejection) -> list:
    """Return a rejected row as it was read, in the template's columns, plus where and why."""
    cells = list(rejection.cells) + [None] * (len(TEMPLATE_COLUMNS) - len(rejection.cells))
    if rejection.column:
        from .templates_download import column_title

        where = _("Row %(number)s, %(column)s") % {
            "number": rejection.row_number,
            "column": column_title(rejection.column),
        }
    else:
        where = _("Row %(number)s") % {"number": rejection.row_number}
    reason = _("%(where)s: %(reason)s") % {"where": where, "reason": rejection.reason}
    return [*("" if c is None else c for c in cells), reason]


def rejected_header() -> list[str]:
    """The rejected rows' header in the current language: the template's (which the readers
    accept in either language, so the fixed rows can be uploaded again) and Reason."""
    from .templates_download import template_columns

    return [*template_columns(), _("Reason")]


def rejected_rows(job: Import):
    """Yield the header (rejected_header), then each of the import's rejected rows in row
    order."""
    yield rejected_header()
    for rejection in job.rejections.iterator(chunk_size=2000):
        yield rejected_row(rejection)


def rejected_rows_after(filters: dict, after: int | None, limit: int) -> list[tuple[int, list]]:
    """Return up to `limit` (id, row) of the rejected rows of the import `filters["import"]`
    that come after the rejection `after` in row order (keyset paging on (row number, id), so
    that an export job goes on where it stopped, whatever the import's size)."""
    removed = ValueError(f"the rejected rows of import #{filters['import']} were removed")
    rejections = Rejection.objects.filter(job_id=filters["import"])
    if after is None:
        if not Import.objects.filter(pk=filters["import"]).exists():
            raise removed
    else:
        row_number = Rejection.objects.filter(pk=after).values_list("row_number", flat=True)
        if not row_number:
            raise removed
        rejections = rejections.filter(row_number__gte=row_number[0]).exclude(
            row_number=row_number[0], id__lte=after
        )
    return [
        (rejection.pk, rejected_row(rejection))
        for rejection in rejections.order_by("row_number", "id")[:limit]
    ]


# The export source of an import's rejected rows, as export jobs name it (CodeExport.source).
REJECTED_ROWS = "rejected_rows"
REJECTED_ROWS_SOURCE = ExportSource(
    header=REJECTED_HEADER,
    rows_after=rejected_rows_after,
    count=lambda filters: Rejection.objects.filter(job_id=filters["import"]).count(),
    describe=lambda filters: (
        _("the rejected rows of import #%(number)s") % {"number": filters["import"]}
    ),
    sheet_title="Rejected rows",
    started_from="the import's report",
)
