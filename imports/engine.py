"""The import engine: a worker claims an import, loads its rows in batches, records the outcome.

Each batch commits its codes, its rejected rows, the pool's counts and the job's progress
together, so a job run again after a crash resumes after the last batch. Started and re-run by
services.py; run by the Celery task in tasks.py.

What the import writes for a manager to read (each rejected row's reason, the report's notes, a
refusal of the whole file) is written once, in the language of the manager who started it
(pools.jobs.staff_language), and stored so: the report, the e-mail that tells of the outcome
and the rejected rows' download all show the same words, whoever opens them later. Rendering
at display time instead would let each reader see their own language, but a reason would then
be a key and parameters rather than the sentence the three places share.
"""

import logging
import math
from datetime import timedelta
from enum import Enum

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Max, Value
from django.db.models.functions import Greatest
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from pools.code_services import code_addition_record, load_batch
from pools.jobs import (
    DATABASE_GONE,
    Claim,
    ClaimLost,
    job_claim,
    job_finish,
    job_give_back,
    job_held,
    job_step,
    job_touch_queued,
    staff_language,
)
from pools.models import Code, Pool
from pools.signals import stock_changed_on_commit

from .batch_commits import BatchCommitter
from .cells import shown
from .generation import CodeFormat, generate_codes
from .headers import TEMPLATE_COLUMNS, ColumnMapping
from .models import Import, Rejection
from .readers import FIX_THE_FILE, ImportFileError, count_text, field_titles, open_table
from .signals import import_finished_on_commit
from .validation import (
    DUPLICATE_IN_FILE,
    TEMPLATE_EXAMPLE,
    DateOrder,
    Rejected,
    Skipped,
    clean_row,
)

logger = logging.getLogger(__name__)

UNEXPECTED_ERROR = _(
    "The import stopped on an unexpected error; the codes of the finished batches are kept. "
    "Run it again, or tell an administrator: {error}"
)

STORE_FAILED = _("This row could not be stored: {error}")
COLUMNS_IGNORED = _("Columns ignored: {columns}.")
NO_MORE_CODES = _("No more free codes of this format could be drawn.")


def expired_on_arrival(count: int) -> str:
    """Say that `count` codes were added with their Issue-end or Available-till passed."""
    return ngettext(
        "{count} code was added although its Issue-end or Available-till had already passed: "
        "it can never be issued or redeemed.",
        "{count} codes were added although their Issue-end or Available-till had already "
        "passed: they can never be issued or redeemed.",
        count,
    ).format(count=count_text(count))


# Between two batch commits the bar moves by the rows read: one cheap UPDATE of the job row
# every this many rows, so that a 5,000-row file shows steps instead of 0 % then 100 %; and
# only once the bar has moved by READ_PROGRESS_STEP of the file, so that a big file's reading
# is not a thousand transactions of their own beside the batches' (README, Figures:
# import_csv_1000k_empty/copy).
READ_PROGRESS_ROWS = 1000
READ_PROGRESS_STEP = 0.01


def _report_reading(job: Import, progress) -> None:
    """Move the job's progress to what has been read, unless a batch commit holds the row: the
    reading never waits for the database (skip_locked), and the bar never moves back."""
    if progress is None:
        return
    own_transaction = not connection.in_atomic_block
    with transaction.atomic():
        if own_transaction and connection.vendor == "postgresql":
            # The bar is no record: a crash may lose its last move, so its commit need not wait
            # for the disk. Only in a transaction of its own: a caller's would commit its codes
            # so too.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit = off")
        held = job_held(job).select_for_update(skip_locked=True).values_list("pk", flat=True)
        if list(held):
            job_held(job).filter(progress_done__lt=progress).update(progress_done=progress)


def _batch_size() -> int:
    # settings.IMPORT_BATCH_SIZE: 20,000 rows are one transaction of a fraction of a second on
    # PostgreSQL and a few MB in the worker, so progress moves about once a second.
    return settings.IMPORT_BATCH_SIZE


class RunOutcome(Enum):
    FINISHED = "finished"
    BUSY = "busy"  # another worker holds the job or the pool; try again later
    GONE = "gone"  # finished already, or deleted


class _LockWait(Exception):
    """A batch waited longer than IMPORT_LOCK_TIMEOUT on a lock: most likely the open
    transaction of a worker that was cut off, which PostgreSQL ends once it notices."""


def import_run(*, import_id: int) -> RunOutcome:
    """Run (or resume) an import: claim it, load its rows in batches, record the outcome."""
    job = _claim(import_id)
    if not isinstance(job, Import):
        return job
    # Everything the run writes for a manager to read is in the language of its starter.
    with translation.override(staff_language(job.created_by)):
        return _run(job)


def _run(job: Import) -> RunOutcome:
    try:
        if job.source == Import.Source.GENERATION:
            _run_generation(job)
        else:
            _run_rows(job)
    except ClaimLost:
        return RunOutcome.BUSY
    except _LockWait:
        # Waiting on a lost worker's locks is not this attempt's failure: give the attempt
        # back, and try again once PostgreSQL has ended the lost session.
        logger.warning("Import %s waits on a lock, most likely a lost worker's", job.pk)
        job_give_back(job)
        return RunOutcome.BUSY
    except ImportFileError as error:
        # The input itself is at fault: running it again would fail the same way.
        # Two sentences, each translated: what is wrong, and what to do.
        message = f"{error} {FIX_THE_FILE}" if job.source == Import.Source.FILE else str(error)
        _finish(job, Import.Status.FAILED, message, needs_new_file=True)
    except DATABASE_GONE:
        raise
    except Exception as error:
        logger.exception("Import %s failed", job.pk)
        message = UNEXPECTED_ERROR.format(error=shown(error, limit=300))
        _finish(job, Import.Status.FAILED, message)
    return RunOutcome.FINISHED


def _claim(import_id: int) -> Import | RunOutcome:
    claimed = job_claim(Import, import_id, may_start=_pool_turn)
    if claimed is Claim.GONE:
        return RunOutcome.GONE
    if claimed is Claim.BUSY:
        return RunOutcome.BUSY
    return claimed


def _pool_turn(job: Import) -> bool:
    """One import at a time per pool: the duplicate check relies on it (see code_watermark).
    Return False, the job left queued and marked as held by a task, if another runs."""
    Pool.objects.select_for_update().filter(pk=job.pool_id).first()
    fresh = timezone.now() - timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT)
    if (
        Import.objects.filter(
            pool_id=job.pool_id, status=Import.Status.RUNNING, heartbeat_at__gte=fresh
        )
        .exclude(pk=job.pk)
        .exists()
    ):
        transaction.on_commit(lambda: job_touch_queued(job))
        return False
    if job.code_watermark is None:
        job.code_watermark = (
            Code.objects.filter(pool_id=job.pool_id).aggregate(top=Max("id"))["top"] or 0
        )
        job.save(update_fields=["code_watermark"])
    return True


def _run_rows(job: Import) -> None:
    tz = timezone.get_current_timezone()
    with job.file.open("rb") as file, BatchCommitter() as committer:
        table = open_table(
            file,
            name=job.file_name,
            size=job.file_size,
            pasted=job.source == Import.Source.TEXT,
            encoding=job.encoding,
            mapping=ColumnMapping.from_json(job.column_mapping) if job.column_mapping else None,
            # A worker cannot ask: it reads the likelier way, and the report says so.
            ask=False,
        )
        if table.ignored_columns and not job.message:
            job.message = COLUMNS_IGNORED.format(columns=", ".join(table.ignored_columns))
            job_held(job).update(message=job.message)
        job_held(job).update(progress_total=table.total)
        order = DateOrder(job.date_order)
        titles = field_titles(table.mapping)
        # The column of codes as the file names it, for the rows the commits reject (a
        # duplicate, a row that could not be stored); read by _code_column.
        job.code_column = titles[0]
        clean, rejected, skipped = [], [], []
        batch_size = _batch_size()
        # Read once: the commit thread moves job.rows_done on while this loop reads ahead.
        resume_after = last_row = job.rows_done
        told, step = 0, table.total * READ_PROGRESS_STEP
        example_skipped = False
        for row_number, cells in table.rows:
            if row_number <= resume_after:
                # Committed by an earlier attempt; read for the date order its dates settled.
                if not job.date_order:
                    clean_row(row_number, cells, tz, order, titles)
                continue
            last_row = row_number
            row = clean_row(row_number, cells, tz, order, titles)
            if isinstance(row, Skipped):
                skipped.append(row)
                example_skipped = example_skipped or row.reason == TEMPLATE_EXAMPLE
            else:
                (rejected if isinstance(row, Rejected) else clean).append(row)
            if (len(clean) + len(rejected)) % READ_PROGRESS_ROWS == 0:
                read = table.progress()
                if read - told >= step:
                    _report_reading(job, read)
                    told = read
            if len(clean) + len(rejected) + len(skipped) >= batch_size:
                committer.submit(
                    _commit_rows, job, clean, rejected, last_row, table.progress(), len(skipped)
                )
                clean, rejected, skipped = [], [], []
        committer.submit(
            _commit_rows, job, clean, rejected, last_row, table.progress(), len(skipped)
        )
    job.refresh_from_db()
    notes = [job.message] if job.message else []
    notes += [note for note in table.notes if note not in notes]
    if example_skipped:
        notes.append(str(TEMPLATE_EXAMPLE))
    if job.codes_expired_on_arrival:
        notes.append(expired_on_arrival(job.codes_expired_on_arrival))
    _finish(
        job,
        Import.Status.COMPLETED_WITH_ERRORS if job.rows_not_added else Import.Status.COMPLETED,
        " ".join(notes),
    )


def _run_generation(job: Import) -> None:
    params = job.generation
    code_format = CodeFormat(
        length=params["length"], alphabet=params["alphabet"], prefix=params["prefix"]
    )
    fruitless = 0
    while job.codes_added < params["count"]:
        wanted = min(_batch_size(), params["count"] - job.codes_added)
        codes = generate_codes(code_format, wanted)
        rows = [(n, code, None, None, None, None) for n, code in enumerate(codes, start=1)]
        before = job.codes_added
        _commit_batch(job, rows, [], job.rows_done, None, generated=True)
        job.refresh_from_db()
        # Collisions are redrawn; with MAX_FILL they are rare, so a run of empty draws means the
        # pool was filled by other means meanwhile.
        fruitless = fruitless + 1 if job.codes_added == before else 0
        if fruitless >= 3:
            raise ImportFileError(NO_MORE_CODES)
    _finish(job, Import.Status.COMPLETED, "")


def _commit_rows(job, clean, rejected, last_row, progress, skipped=0) -> None:
    """Commit a batch; if the database refuses it for a reason no validation foresaw, narrow it
    down (halves, then single rows) so that only the guilty rows are rejected.

    Each part commits with the number of its own last row, so that a run resumed after a crash
    starts after the parts already committed. A lost connection or an outage is not the rows'
    fault: it ends the attempt, and the import resumes later.
    """
    try:
        _commit_batch(job, clean, rejected, last_row, progress, skipped=skipped)
        return
    except (ClaimLost, _LockWait, OperationalError, InterfaceError):
        raise
    except (DatabaseError, ValueError, UnicodeError) as error:
        failure = error
    rows = sorted([*clean, *rejected], key=_row_number)
    if len(rows) == 1:
        (row,) = rows
        reason = STORE_FAILED.format(error=shown(str(failure).splitlines()[0], limit=120))
        if isinstance(row, Rejected):
            # Its value or cells could not be stored: keep the row with them spelled in ASCII.
            stored = Rejected(
                row.row_number,
                row.column,
                ascii(row.value)[1:-1][:200],
                row.reason,
                tuple(_ascii_cell(c) for c in row.cells),
            )
        else:
            cells = tuple(_ascii_cell(c) for c in row[1:])
            stored = Rejected(row[0], _code_column(job), shown(row[1]), reason[:255], cells)
        logger.warning(
            "Import %s: row %s could not be stored: %s", job.pk, _row_number(row), failure
        )
        _commit_batch(job, [], [stored], last_row, progress, skipped=skipped)
        return
    middle = len(rows) // 2
    for part, part_last, part_progress, part_skipped in (
        (rows[:middle], _row_number(rows[middle - 1]), None, 0),
        (rows[middle:], last_row, progress, skipped),
    ):
        _commit_rows(
            job,
            [r for r in part if not isinstance(r, Rejected)],
            [r for r in part if isinstance(r, Rejected)],
            part_last,
            part_progress,
            part_skipped,
        )


def _code_column(job: Import) -> str:
    return getattr(job, "code_column", TEMPLATE_COLUMNS[0])


def _row_number(row) -> int:
    return row.row_number if isinstance(row, Rejected) else row[0]


def _ascii_cell(value):
    if value is None or isinstance(value, int | float):
        return value
    return ascii(str(value))[1:-1][:1000]


def _commit_batch(job, clean, rejected, last_row, progress, *, generated=False, skipped=0) -> None:
    try:
        with transaction.atomic():
            _write_batch(
                job, clean, rejected, last_row, progress, generated=generated, skipped=skipped
            )
    except OperationalError as error:
        if getattr(error.__cause__, "sqlstate", None) == "55P03":  # lock_not_available
            raise _LockWait from error
        raise
    job.rows_done = last_row


def _write_batch(job, clean, rejected, last_row, progress, *, generated, skipped=0) -> None:
    if connection.vendor == "postgresql":
        # A batch that waits on a lock is most likely blocked by a lost worker's transaction;
        # give up in time to keep this attempt's heartbeat fresh (see _LockWait).
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = {int(settings.IMPORT_LOCK_TIMEOUT * 1000)}")
    result = load_batch(
        pool_id=job.pool_id,
        rows=clean,
        watermark=job.code_watermark,
        addition_id=job.addition_id,
    )
    by_row = {row[0]: row for row in clean}
    rejections = [
        Rejection(
            job=job,
            row_number=r.row_number,
            column=r.column,
            value=shown(r.value),
            reason=r.reason[:255],
            cells=[_json_cell(c) for c in r.cells],
        )
        for r in rejected
    ]
    if not generated:
        rejections += [
            Rejection(
                job=job,
                row_number=row_number,
                column=_code_column(job),
                value=shown(code),
                reason=str(DUPLICATE_IN_FILE),
                cells=[_json_cell(c) for c in by_row[row_number][1:]],
            )
            for row_number, code in result.duplicates
        ]
    Rejection.objects.bulk_create(rejections, batch_size=1000)
    code_addition_record(addition_id=job.addition_id, pool_id=job.pool_id, count=result.added)
    updates = {
        "codes_added": F("codes_added") + result.added,
        "codes_expired_on_arrival": F("codes_expired_on_arrival") + result.expired_on_arrival,
        "heartbeat_at": timezone.now(),
    }
    if generated:
        updates["progress_done"] = F("codes_added") + result.added
    else:
        # Each row read counts once: added, already in the pool, a duplicate inside the file,
        # rejected or skipped (Import.rows_accounted_for).
        updates.update(
            rows_done=last_row,
            rows_read=F("rows_read") + len(clean) + len(rejected) + skipped,
            duplicates_in_file=F("duplicates_in_file") + len(result.duplicates),
            already_in_pool=F("already_in_pool") + result.already_in_pool,
            rows_rejected=F("rows_rejected") + len(rejected),
            rows_skipped=F("rows_skipped") + skipped,
        )
        if progress is not None:
            # The reading may have moved the bar further already (_report_reading).
            updates["progress_done"] = Greatest("progress_done", Value(progress))
    job_step(job, **updates)


def _json_cell(value):
    """A cell as the rejected rows' download keeps it: JSON that PostgreSQL can store."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or infinity
    if value is None or isinstance(value, int | float | bool):
        return value
    if isinstance(value, str):
        return shown(value, limit=1000)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return shown(str(value), limit=1000)


def _finish(job: Import, status: str, message: str, *, needs_new_file: bool = False) -> bool:
    """Record the outcome, if this attempt still holds the job; return whether it did. The
    announcements (import_finished_announce) go out after commit."""
    return job_finish(job, status, message=message, needs_new_file=needs_new_file)


def import_finished_announce(job: Import) -> None:
    """Announce a finished import, whoever ended it (its worker, or job recovery): new codes may
    re-arm the pool's low-stock alert; the starter hears of the outcome."""
    stock_changed_on_commit(job.pool)
    import_finished_on_commit(job)
