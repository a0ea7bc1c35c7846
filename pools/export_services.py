"""Export jobs: files of codes written in the background, to download from the admin.

A job is started by code_export_start (the admin's codes list), run by a worker
(pools.tasks.code_export_run) and announced when it ends (signals.export_finished, which the
notifications app turns into an e-mail with the link). On PostgreSQL the CSV is written by the
database itself (COPY … TO STDOUT, streamed into the file); elsewhere, and for XLSX, rows are
read in bulk and written here.

Other apps export their rows of a pool through the same jobs by registering an ExportSource
(imports: an import's rejected rows); pools imports nothing of theirs. A source's rows are
written by the generic path, a chunk of SOURCE_CHUNK_ROWS at a time, resumed after the last
row's key.

Codes are written in the order they were added, in chunks of EXPORT_CHUNK_ROWS ids (so that no
query has to find where a chunk ends). Each chunk is committed with the job's progress, the id
the next chunk starts from and the file's size; a job run again after a kill truncates the
file to that size and goes on from the next chunk. A workbook cannot be appended to, so
an XLSX export run again starts over.
"""

import enum
import itertools
import logging
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext, pgettext
from django.utils.translation import gettext_lazy as _

from .exports import (
    EXPORT_HEADERS,
    FormulaSafeWriter,
    code_rows,
    codes_filtered,
    copy_available,
    copy_select_sql,
    xlsx_write,
)
from .jobs import (
    DATABASE_GONE,
    Claim,
    job_beat,
    job_claim,
    job_enqueue_on_commit,
    job_finish,
    job_speaking,
)
from .models import Code, CodeExport, Pool, PoolCounter
from .signals import export_finished_on_commit

logger = logging.getLogger(__name__)

# Up to this many rows an export answers at once in the web request (~1 s of rows here).
EXPORT_AT_ONCE_MAX = 10_000
# A search's codes are counted up to this many for the export page (~50 ms of index here).
SEARCH_COUNT_MAX = 100_000
# An XLSX export commits its progress every this many rows (~1 s of writing here).
XLSX_PROGRESS_ROWS = 50_000
# A source's rows are read and committed this many at a time (~0.1 s of writing here), or
# EXPORT_CHUNK_ROWS if fewer (tests make chunks small with it).
SOURCE_CHUNK_ROWS = 10_000
# Stored on the job by the worker, in the language of whoever started it (jobs.job_speaking).
EXPORT_FAILED = _("The export failed: {error}. Start it again from {where}.")
CODES_LIST = _("the codes list")


@dataclass(frozen=True)
class ExportSource:
    """Rows of a pool that another app writes through export jobs. `rows_after(filters, key,
    limit)` returns up to `limit` (key, cells) pairs in the file's order, after the row whose
    key is `key` (from the first when None); `count(filters)` how many rows there are;
    `describe(filters)` what they are ("the rejected rows of import #12"); `started_from`
    the page whose button starts the export again ("the import's report")."""

    header: Sequence[str]
    rows_after: Callable[[dict, int | None, int], list[tuple[int, list]]]
    count: Callable[[dict], int]
    describe: Callable[[dict], str]
    sheet_title: str
    started_from: str


_SOURCES: dict[str, ExportSource] = {}


def export_source_register(name: str, source: ExportSource) -> None:
    """Let export jobs write `source`'s rows (called from the app's ready())."""
    _SOURCES[name] = source


def export_description(export: CodeExport) -> str:
    """Say what an export writes: its pool (or all pools), or its source's rows."""
    if export.source != CodeExport.CODES:
        source = _SOURCES.get(export.source)
        if source:
            return source.describe(export.filters)
        return gettext("rows of %(source)s") % {"source": export.source}
    return str(export.pool) if export.pool else gettext("all pools")


def export_rows_named(export: CodeExport) -> str:
    """Say what an export's rows are: codes, or rows (of another source)."""
    if export.source == CodeExport.CODES:
        return pgettext("what an export writes", "codes")
    return pgettext("what an export writes", "rows")


class RunOutcome(enum.Enum):
    DONE = "done"
    SKIPPED = "skipped"  # finished already, or another worker holds it


def code_export_filters(*, pool=None, status: str = "", q: str = "") -> dict:
    """Return the filters of an export, as the codes list passes them."""
    filters = {}
    if pool:
        filters["pool"] = int(pool)
    if status in Code.Status.values:
        filters["status"] = status
    if q.strip():
        filters["q"] = q.strip()
    return filters


def code_export_is_small(filters: dict) -> bool:
    """Return True if an export of `filters` is small enough to answer at once."""
    return codes_filtered(filters)[: EXPORT_AT_ONCE_MAX + 1].count() <= EXPORT_AT_ONCE_MAX


def code_export_estimate(filters: dict) -> int:
    """Return how many codes an export of `filters` writes, from the pools' counter rows (a
    search counts its rows, up to SEARCH_COUNT_MAX)."""
    if filters.get("q"):
        return codes_filtered(filters)[:SEARCH_COUNT_MAX].count()
    counters = PoolCounter.objects.all()
    if filters.get("pool"):
        counters = counters.filter(pool_id=filters["pool"])
    statuses = [filters["status"]] if filters.get("status") else Code.Status.values
    totals = counters.aggregate(**{status: Sum(status) for status in statuses})
    return max(0, sum(value or 0 for value in totals.values()))


def code_export_start(*, filters: dict, file_format: str, user=None) -> CodeExport:
    """Queue an export of the codes `filters` selects as `file_format` (csv or xlsx)."""
    pool = Pool.objects.filter(pk=filters["pool"]).first() if filters.get("pool") else None
    return _export_queue(
        pool=pool,
        filters=filters,
        file_format=file_format,
        created_by=user,
        rows_total=code_export_estimate(filters),
        file_name=f"codes-{pool.slug if pool else 'all'}.{file_format}",
    )


def source_export_start(
    *, source: str, pool: Pool, filters: dict, file_format: str, file_name: str, user=None
) -> CodeExport:
    """Queue an export of the rows of the registered `source` that `filters` selects."""
    return _export_queue(
        source=source,
        pool=pool,
        filters=filters,
        file_format=file_format,
        created_by=user,
        rows_total=_SOURCES[source].count(filters),
        file_name=f"{file_name}.{file_format}",
    )


def _export_queue(*, file_format: str, **fields) -> CodeExport:
    if file_format not in CodeExport.Format.values:
        raise ValueError(f"unknown export format: {file_format}")
    with transaction.atomic():
        export = CodeExport.objects.create(
            file_format=file_format, enqueued_at=timezone.now(), **fields
        )
        job_enqueue_on_commit(export)
    return export


def _commit_chunk(export: CodeExport, **progress) -> bool:
    """Record a chunk's progress if this attempt still holds the job; return whether it does."""
    return job_beat(export, **progress)


def code_export_run(*, export_id: int) -> RunOutcome:
    """Write the export's file, chunk by chunk, then mark it completed (or failed) and announce
    it. A job finished, or held by a live worker, is left alone."""
    export = job_claim(CodeExport, export_id)
    if isinstance(export, Claim):
        return RunOutcome.SKIPPED
    path = Path(settings.MEDIA_ROOT) / "exports" / f"code-export-{export.pk}.{export.file_format}"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if export.source != CodeExport.CODES:
            held = _write_source(export, _SOURCES[export.source], path)
        elif export.file_format == CodeExport.Format.CSV:
            held = _write_csv(export, path)
        else:
            held = _write_xlsx(export, path, code_rows(codes_filtered(export.filters)))
    except DATABASE_GONE:
        raise
    except Exception as error:
        logger.exception("Export %s failed", export.pk)
        source = _SOURCES.get(export.source)
        where = source.started_from if source else CODES_LIST
        with job_speaking(export):
            message = EXPORT_FAILED.format(error=error, where=where)
        _finish(export, CodeExport.Status.FAILED, message=message)
        return RunOutcome.DONE
    if not held:
        return RunOutcome.SKIPPED
    _finish(export, CodeExport.Status.COMPLETED, file=f"exports/{path.name}")
    return RunOutcome.DONE


def _finish(export: CodeExport, status, **fields) -> None:
    now = timezone.now()
    expires_at = now + timedelta(hours=settings.EXPORT_KEEP_HOURS)
    job_finish(export, status, at=now, expires_at=expires_at, **fields)


def code_export_finished_announce(export: CodeExport) -> None:
    """Announce a finished export, whoever ended it (its worker, or job recovery): the one who
    asked gets the link."""
    export_finished_on_commit(export)


def _id_range(filters: dict) -> tuple[int, int] | None:
    """Return the lowest and highest id of the codes an export of `filters` writes (two index
    lookups), or None when there are none."""
    queryset = codes_filtered(filters)
    first = queryset.values_list("id", flat=True).first()
    if first is None:
        return None
    return first, queryset.order_by("-id").values_list("id", flat=True).first()


@contextmanager
def _csv_file(export: CodeExport, path: Path, header):
    """Open the export's CSV: truncated to its last committed chunk when the job goes on from
    one (what was written after it is written again), else new, with a BOM (so that Excel reads
    it as UTF-8) and the header. Yield the file and whether it goes on."""
    resume = export.last_id is not None and export.bytes_done and path.exists()
    with open(path, "r+b" if resume else "wb") as file:
        if resume:
            file.truncate(export.bytes_done)
            file.seek(export.bytes_done)
        else:
            export.rows_done, export.last_id = 0, None
            file.write("\ufeff".encode())
            file.write(_csv_line(header))
        yield file, bool(resume)


def _write_csv(export: CodeExport, path: Path) -> bool:
    with _csv_file(export, path, EXPORT_HEADERS) as (file, resume):
        bounds = _id_range(export.filters)
        if bounds is None:
            return _commit_chunk(export, rows_done=0, bytes_done=file.tell())
        start = export.last_id if resume else bounds[0]
        while start <= bounds[1]:
            end = start + settings.EXPORT_CHUNK_ROWS
            rows = _write_csv_chunk(export.filters, file, start=start, end=end)
            file.flush()
            if not _commit_chunk(
                export, rows_done=export.rows_done + rows, last_id=end, bytes_done=file.tell()
            ):
                return False
            start = end
        return True


def _csv_line(row) -> bytes:
    class Line:
        def write(self, value):
            return value

    # Lines end in "\n", as COPY ends them; but the csv module quotes only the characters of its
    # line terminator, so with "\n" a cell holding "\r" went out unquoted (and broke the row).
    # Written with "\r\n", both are quoted; the terminator is then made "\n".
    line = FormulaSafeWriter(Line(), lineterminator="\r\n").writerow(row)
    return (line[:-2] + "\n").encode()


def _write_csv_chunk(filters: dict, file, *, start: int, end: int) -> int:
    if copy_available(filters):
        sql, params = copy_select_sql(filters, start=start, end=end)
        with connection.cursor() as cursor:
            raw = cursor.cursor
            cursor.execute("SET DateStyle = 'ISO, YMD'")
            with raw.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)", params) as copy:
                for data in copy:
                    file.write(data)
            return raw.rowcount
    queryset = codes_filtered(filters).filter(id__gte=start, id__lt=end)
    rows = 0
    for row in code_rows(queryset):
        if rows:
            file.write(_csv_line(row))
        rows += 1
    return rows - 1


def _write_xlsx(export: CodeExport, path: Path, rows, *, sheet_title: str = "Codes") -> bool:
    """Write the header and `rows` as a workbook in one go: a workbook cannot be appended to,
    so a job run again starts over."""
    export.rows_done, export.last_id = 0, None
    held = True

    def progress(done):
        nonlocal held
        if held and done % XLSX_PROGRESS_ROWS == 0:
            held = _commit_chunk(export, rows_done=done)
            if not held:
                raise _Lost

    try:
        with open(path, "wb") as file:
            done = xlsx_write(rows, file, sheet_title=sheet_title, progress=progress)
    except _Lost:
        return False
    return _commit_chunk(export, rows_done=done)


class _Lost(Exception):
    """This attempt no longer holds the job (another worker took it over)."""


def _source_chunks(source: ExportSource, filters: dict, after: int | None):
    """Yield the source's rows after the key `after`, a list of (key, cells) at a time."""
    chunk_rows = min(SOURCE_CHUNK_ROWS, settings.EXPORT_CHUNK_ROWS)
    while chunk := source.rows_after(filters, after, chunk_rows):
        yield chunk
        after = chunk[-1][0]


def _write_source(export: CodeExport, source: ExportSource, path: Path) -> bool:
    if export.file_format == CodeExport.Format.XLSX:
        rows = (
            cells for chunk in _source_chunks(source, export.filters, None) for _, cells in chunk
        )
        return _write_xlsx(
            export, path, itertools.chain([source.header], rows), sheet_title=source.sheet_title
        )
    with _csv_file(export, path, source.header) as (file, resume):
        after = export.last_id if resume else None
        for chunk in _source_chunks(source, export.filters, after):
            for _, cells in chunk:
                file.write(_csv_line(cells))
            file.flush()
            if not _commit_chunk(
                export,
                rows_done=export.rows_done + len(chunk),
                last_id=chunk[-1][0],
                bytes_done=file.tell(),
            ):
                return False
        return _commit_chunk(export, bytes_done=file.tell())


def code_exports_clean(*, at=None) -> int:
    """Delete the files of exports kept past their time; return how many. (Exports that lost
    their worker or their task are pools.jobs.jobs_recover's, as every job's.)"""
    at = at or timezone.now()
    removed = 0
    for export in CodeExport.objects.filter(
        status=CodeExport.Status.COMPLETED, expires_at__lt=at
    ).only("pk", "file"):
        if export.file:
            default_storage.delete(export.file.name)
        removed += CodeExport.objects.filter(
            pk=export.pk, status=CodeExport.Status.COMPLETED
        ).update(status=CodeExport.Status.REMOVED, file="")
    return removed
