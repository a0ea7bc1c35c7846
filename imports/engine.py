"""The import engine: a worker claims an import, loads its rows in batches, records the outcome.

Each batch commits its codes, its rejected rows, the pool's counts and the job's progress
together, so a job run again after a crash resumes after the last batch. Started and re-run by
services.py; run by the Celery task in tasks.py.
"""

import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from enum import Enum

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Max
from django.utils import timezone

from pools.code_services import code_addition_record
from pools.models import Code, Pool
from pools.signals import stock_changed_on_commit

from .generation import CodeFormat, generate_codes
from .loader import load_batch
from .models import Import, Rejection
from .readers import ImportFileError, open_table
from .signals import import_finished_on_commit, import_queued_on_commit
from .validation import DUPLICATE_IN_FILE, Rejected, clean_row

logger = logging.getLogger(__name__)

WORKER_LOST = (
    "The worker stopped during the import {attempts} times; the codes of the finished batches "
    "are kept. Run it again to go on."
)
UNEXPECTED_ERROR = (
    "The import stopped on an unexpected error; the codes of the finished batches are kept. "
    "Run it again, or tell an administrator: {error}"
)

# Attempts before an import whose worker keeps dying is marked failed (it can be run again).
MAX_ATTEMPTS = 3


def _batch_size() -> int:
    # settings.IMPORT_BATCH_SIZE: 20,000 rows are one transaction of a fraction of a second on
    # PostgreSQL and a few MB in the worker, so progress moves about once a second.
    return settings.IMPORT_BATCH_SIZE


def _heartbeat_cutoff():
    return timezone.now() - timedelta(seconds=settings.IMPORT_HEARTBEAT_TIMEOUT)


class RunOutcome(Enum):
    FINISHED = "finished"
    BUSY = "busy"  # another worker holds the job or the pool; try again later
    GONE = "gone"  # finished already, or deleted


class _ClaimLost(Exception):
    """Another attempt took the job over: this attempt's batch must not be committed."""


def imports_recover_stale() -> int:
    """Queue again the running imports whose worker died; fail those tried MAX_ATTEMPTS times.

    Runs when a worker starts and periodically, for workers killed outright, whose tasks the
    broker only redelivers after its visibility timeout.
    """
    cutoff = _heartbeat_cutoff()
    recovered = 0
    for job_id in Import.objects.filter(
        status=Import.Status.RUNNING, heartbeat_at__lt=cutoff
    ).values_list("pk", flat=True):
        with transaction.atomic():
            job = Import.objects.select_for_update(skip_locked=True).filter(pk=job_id).first()
            if job is None or job.status != Import.Status.RUNNING or job.heartbeat_at >= cutoff:
                continue
            if job.attempts >= MAX_ATTEMPTS:
                _finish(job, Import.Status.FAILED, WORKER_LOST.format(attempts=job.attempts))
            else:
                Import.objects.filter(pk=job.pk).update(status=Import.Status.QUEUED)
                import_queued_on_commit(job.pk)
            recovered += 1
    return recovered


def import_run(*, import_id: int) -> RunOutcome:
    """Run (or resume) an import: claim it, load its rows in batches, record the outcome."""
    job = _claim(import_id)
    if not isinstance(job, Import):
        return job
    try:
        if job.source == Import.Source.GENERATION:
            _run_generation(job)
        else:
            _run_rows(job)
    except _ClaimLost:
        return RunOutcome.BUSY
    except ImportFileError as error:
        _finish(job, Import.Status.FAILED, str(error))
    except Exception as error:
        logger.exception("Import %s failed", import_id)
        _finish(job, Import.Status.FAILED, UNEXPECTED_ERROR.format(error=error))
    return RunOutcome.FINISHED


@transaction.atomic
def _claim(import_id: int) -> Import | RunOutcome:
    job = Import.objects.select_for_update().filter(pk=import_id).first()
    if job is None or job.is_finished:
        return RunOutcome.GONE
    now = timezone.now()
    cutoff = _heartbeat_cutoff()
    if job.status == Import.Status.RUNNING and job.heartbeat_at and job.heartbeat_at >= cutoff:
        return RunOutcome.BUSY
    # One import at a time per pool: the duplicate check relies on it (see code_watermark).
    Pool.objects.select_for_update().filter(pk=job.pool_id).first()
    if (
        Import.objects.filter(
            pool_id=job.pool_id, status=Import.Status.RUNNING, heartbeat_at__gte=cutoff
        )
        .exclude(pk=job.pk)
        .exists()
    ):
        return RunOutcome.BUSY
    if job.code_watermark is None:
        job.code_watermark = (
            Code.objects.filter(pool_id=job.pool_id).aggregate(top=Max("id"))["top"] or 0
        )
    job.status = Import.Status.RUNNING
    job.attempts += 1
    job.started_at = job.started_at or now
    job.heartbeat_at = now
    job.save(update_fields=["status", "attempts", "started_at", "heartbeat_at", "code_watermark"])
    return job


class _Committer:
    """Commit batches in order, one at a time.

    On PostgreSQL, outside a transaction (as in a worker), the commits run in a second thread
    with its own connection, so that the database works on one batch while the next is read and
    validated: the two take about as long, and there are two cores. Inside a transaction (as in
    tests) a second connection could not see the caller's rows, so the commits run inline.
    """

    # The commit thread waits on the database, then needs the interpreter lock back for a moment,
    # many times a batch; at the default 5 ms switch interval the reading thread keeps it so long
    # that the two barely overlap (measured: 27 s instead of 19 s for a million rows).
    SWITCH_INTERVAL = 0.0005

    def __init__(self):
        threaded = connection.vendor == "postgresql" and not connection.in_atomic_block
        self.executor = ThreadPoolExecutor(1, "import-commit") if threaded else None
        self.pending = None
        self.switch_interval = sys.getswitchinterval()

    def submit(self, commit, *args, **kwargs) -> None:
        self.wait()
        if self.executor is None:
            commit(*args, **kwargs)
        else:
            self.pending = self.executor.submit(commit, *args, **kwargs)

    def wait(self) -> None:
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()  # re-raises what the commit raised

    def __enter__(self):
        if self.executor is not None:
            sys.setswitchinterval(self.SWITCH_INTERVAL)
        return self

    def __exit__(self, *exc_info):
        try:
            self.wait()
        finally:
            if self.executor is not None:
                self.executor.submit(lambda: connection.close()).result()
                self.executor.shutdown()
                sys.setswitchinterval(self.switch_interval)


def _run_rows(job: Import) -> None:
    tz = timezone.get_current_timezone()
    with job.file.open("rb") as file, _Committer() as committer:
        table = open_table(
            file, name=job.file_name, size=job.file_size, pasted=job.source == Import.Source.TEXT
        )
        if table.ignored_columns and not job.message:
            job.message = "Columns ignored: " + ", ".join(table.ignored_columns) + "."
            Import.objects.filter(pk=job.pk).update(message=job.message)
        Import.objects.filter(pk=job.pk).update(progress_total=table.total)
        clean, rejected = [], []
        batch_size = _batch_size()
        # Read once: the commit thread moves job.rows_done on while this loop reads ahead.
        resume_after = last_row = job.rows_done
        for row_number, cells in table.rows:
            if row_number <= resume_after:
                continue  # committed by an earlier attempt
            last_row = row_number
            row = clean_row(row_number, cells, tz)
            (rejected if isinstance(row, Rejected) else clean).append(row)
            if len(clean) + len(rejected) >= batch_size:
                committer.submit(_commit_batch, job, clean, rejected, last_row, table.progress())
                clean, rejected = [], []
        committer.submit(_commit_batch, job, clean, rejected, last_row, table.progress())
    job.refresh_from_db()
    _finish(
        job,
        Import.Status.COMPLETED_WITH_ERRORS if job.rows_rejected else Import.Status.COMPLETED,
        job.message,
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
            raise ImportFileError("No more free codes of this format could be drawn.")
    _finish(job, Import.Status.COMPLETED, "")


def _commit_batch(job, clean, rejected, last_row, progress, *, generated=False) -> None:
    with transaction.atomic():
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
                value=r.value[:1000],
                reason=r.reason,
                cells=[_json_cell(c) for c in r.cells],
            )
            for r in rejected
        ]
        if not generated:
            rejections += [
                Rejection(
                    job=job,
                    row_number=row_number,
                    column="Code",
                    value=code,
                    reason=DUPLICATE_IN_FILE,
                    cells=[_json_cell(c) for c in by_row[row_number][1:]],
                )
                for row_number, code in result.duplicates
            ]
        Rejection.objects.bulk_create(rejections, batch_size=1000)
        code_addition_record(addition_id=job.addition_id, pool_id=job.pool_id, count=result.added)
        updates = {
            "codes_added": F("codes_added") + result.added,
            "heartbeat_at": timezone.now(),
        }
        if generated:
            updates["progress_done"] = F("codes_added") + result.added
        else:
            updates.update(
                rows_done=last_row,
                rows_read=F("rows_read") + len(clean) + len(rejected),
                duplicates_in_file=F("duplicates_in_file") + len(result.duplicates),
                already_in_pool=F("already_in_pool") + result.already_in_pool,
                rows_rejected=F("rows_rejected") + len(rejections),
                progress_done=progress,
            )
        claimed = Import.objects.filter(
            pk=job.pk, status=Import.Status.RUNNING, attempts=job.attempts
        ).update(**updates)
        if not claimed:
            raise _ClaimLost
    job.rows_done = last_row


def _json_cell(value):
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _finish(job: Import, status: str, message: str) -> None:
    now = timezone.now()
    Import.objects.filter(pk=job.pk).update(
        status=status,
        message=message,
        finished_at=now,
        heartbeat_at=now,
    )
    job.status, job.message, job.finished_at = status, message, now
    # New codes may re-arm the pool's low-stock alert; the starter hears of the outcome.
    stock_changed_on_commit(job.pool)
    import_finished_on_commit(job)
