"""Start and re-run imports of codes into pools.

The admin (and the shell) call the *_start services, which store the input and queue the job
once the transaction commits (imports/tasks.py hands it to a worker); the worker runs it with
engine.import_run.
"""

import os

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from pools.code_services import (
    UndoOutcome,
    addition_undo_start,
    code_addition_create,
    code_addition_undo_preview,
)
from pools.jobs import job_enqueue_on_commit, job_queue
from pools.models import AdditionUndo, Pool
from pools.selectors import pool_code_total

from .generation import CodeFormat, normalize_alphabet
from .inspection import AmbiguousDates, inspect_file
from .models import Import
from .readers import FIX_THE_FILE, ImportFileError, check_size
from .selectors import generation_allowed

GENERATION_CLOSED = "Codes were uploaded to this pool by hand, so it no longer offers generation."
NOTHING_PASTED = "Paste at least one code."
NOT_RERUNNABLE = "Only a failed import can be run again."
NEEDS_NEW_FILE = "Running it again cannot help: fix the file and upload it again."
UNDO_NOT_FINISHED = "The import is still running: wait until it has finished to remove its codes."
UNDO_NOT_RECORDED = (
    "This import added its codes before codes recorded which import added them: they cannot be "
    "told apart from the pool's other codes."
)


def import_file_start(
    *, pool: Pool, file, user=None, date_order: str = "", inspect: bool = True
) -> Import:
    """Store an uploaded file (CSV or a spreadsheet) and queue its import into `pool`.

    The file is looked at first (inspection.inspect_file), so that a file the worker would
    refuse as a whole is refused here, with the same message, while the manager waits.
    `date_order` ("dmy" or "mdy") says how to read slashed dates such as 03/04/2026; without
    it the file must say (a date like 31/01/2026 or 01/31/2026), or the upload is refused with
    a question. `inspect=False` leaves every check to the worker.
    """
    name = os.path.basename(file.name)
    try:
        check_size(name=name, size=file.size)
        if inspect:
            date_order = inspect_file(file, name=name, size=file.size, date_order=date_order)
    except ImportFileError as error:
        raise ValidationError({"file": f"{error} {FIX_THE_FILE}"}, code="bad_file") from error
    except AmbiguousDates as error:
        raise ValidationError({"date_order": str(error)}, code="ambiguous_dates") from error
    return _start(
        pool=pool,
        user=user,
        source=Import.Source.FILE,
        file=file,
        file_name=name,
        file_size=file.size,
        date_order=date_order,
    )


def import_text_start(*, pool: Pool, text: str, user=None) -> Import:
    """Queue the import of a pasted list of codes into `pool`."""
    if not text.strip():
        raise ValidationError({"text": NOTHING_PASTED})
    content = text.encode("utf-8")
    try:
        check_size(name="The pasted list", size=len(content))
    except ImportFileError as error:
        raise ValidationError({"text": str(error)}) from error
    return _start(
        pool=pool,
        user=user,
        source=Import.Source.TEXT,
        file=ContentFile(content, name="pasted-codes.txt"),
        file_name="Pasted list",
        file_size=len(content),
    )


def import_generate_start(
    *,
    pool: Pool,
    count: int,
    length: int,
    alphabet: str,
    prefix: str = "",
    user=None,
    refill: bool = False,
) -> Import:
    """Queue the generation of `count` random codes into `pool`.

    Refused after a manual upload to the pool, and when the format cannot give that many codes
    with a safe margin (see generation.MAX_FILL).
    """
    if not generation_allowed(pool):
        raise ValidationError(GENERATION_CLOSED, code="generation_closed")
    try:
        alphabet = normalize_alphabet(alphabet)
    except ValueError as error:
        raise ValidationError({"alphabet": str(error)}) from error
    code_format = CodeFormat(length=length, alphabet=alphabet, prefix=prefix.strip())
    reason = code_format.too_many(count, pool_code_total(pool))
    if reason:
        raise ValidationError({"count": reason})
    params = {"count": count, "length": length, "alphabet": alphabet, "prefix": prefix.strip()}
    return _start(
        pool=pool,
        user=user,
        source=Import.Source.GENERATION,
        generation=params,
        refill=refill,
        file_name=f"{'Refill: ' if refill else ''}{count:,} generated codes",
        progress_total=count,
    )


def _start(*, pool: Pool, user, **fields) -> Import:
    with transaction.atomic():
        fields.setdefault("progress_total", fields.get("file_size", 0))
        addition = code_addition_create(pool=pool)
        job = Import.objects.create(
            pool=pool, addition=addition, created_by=user, enqueued_at=timezone.now(), **fields
        )
        job_enqueue_on_commit(job)
    return job


@transaction.atomic
def import_rerun(*, job: Import, user=None) -> Import:
    """Queue a failed import again; the batches it already committed are not redone.

    Refused for a failure of the file itself (Import.can_run_again): the same file would fail
    the same way.
    """
    job = Import.objects.select_for_update().get(pk=job.pk)
    if job.status != Import.Status.FAILED:
        raise ValidationError(NOT_RERUNNABLE, code="not_rerunnable")
    if job.needs_new_file:
        raise ValidationError(NEEDS_NEW_FILE, code="needs_new_file")
    job_queue(job)
    return job


def _undoable(job: Import):
    if not job.is_finished:
        raise ValidationError(UNDO_NOT_FINISHED, code="not_finished")
    addition = job.addition
    # Codes loaded before they recorded their addition have none: nothing tells them apart.
    unrecorded = addition is None or (
        addition.codes_added and not addition.codes_removed and not addition.codes.exists()
    )
    if unrecorded:
        raise ValidationError(UNDO_NOT_RECORDED, code="not_recorded")
    return addition


def import_undo_preview(*, job: Import) -> UndoOutcome:
    """Return what removing the codes this import added would do now (a count, no change)."""
    return code_addition_undo_preview(addition=_undoable(job))


def import_undo(*, job: Import, user=None) -> AdditionUndo:
    """Start removing the codes this import added that are still available (never issued, never
    redeemed), keeping the others, as a job; return it (an undo of the import already queued or
    running is returned rather than a second one). See pools.code_services.addition_undo_run."""
    return addition_undo_start(addition=_undoable(job), user=user)
