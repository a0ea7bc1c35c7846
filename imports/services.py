"""Start and re-run imports of codes into pools, and stage files to check before importing.

The admin (and the shell) call the *_start services, which store the input and queue the job
once the transaction commits (imports/tasks.py hands it to a worker); the worker runs it with
engine.import_run. "Check the file" stages an Upload (upload_stage), which keeps the manager's
choices (upload_choose) and becomes an import only through upload_start.
"""

import os
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models.fields.files import FieldFile
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from pools.code_services import (
    UndoOutcome,
    addition_undo_start,
    code_addition_create,
    code_addition_undo_preview,
)
from pools.jobs import job_enqueue_on_commit, job_queue
from pools.models import AdditionUndo, Pool
from pools.selectors import pool_code_total

from .column_choices import file_width, remembered_mapping
from .generation import CodeFormat, normalize_alphabet
from .headers import ColumnMapping
from .inspection import AmbiguousDates, inspect_file, sheets_loadable
from .models import Import, Upload, generated_name
from .preview import Preview, Question, chosen_mapping
from .readers import (
    FIX_THE_FILE,
    ColumnsUnclear,
    EncodingUnclear,
    ImportFileError,
    check_size,
    open_table,
)
from .selectors import generation_allowed

GENERATION_CLOSED = gettext_lazy(
    "Codes were uploaded to this pool by hand, so it no longer offers generation."
)
NOTHING_PASTED = gettext_lazy("Paste at least one code.")
NOT_RERUNNABLE = gettext_lazy("Only a failed import can be run again.")
NEEDS_NEW_FILE = gettext_lazy("Running it again cannot help: fix the file and upload it again.")
UNDO_NOT_FINISHED = gettext_lazy(
    "The import is still running: wait until it has finished to remove its codes."
)
UPLOAD_STARTED = gettext_lazy("This file's import has already been started.")
QUESTION_OPEN = gettext_lazy("Answer the question first, then check the file again: %(question)s")
# A staged file never started is deleted after this long: time enough to check a file and
# start it, short enough that forgotten files do not pile up.
STALE_UPLOAD_AGE = timedelta(days=1)
# Stale uploads deleted per new upload: each upload sweeps up after a few old ones, so the
# sweep stays a few milliseconds and no periodic task is needed.
STALE_UPLOADS_PER_SWEEP = 20
UNDO_NOT_RECORDED = gettext_lazy(
    "This import added its codes before codes recorded which import added them: they cannot be "
    "told apart from the pool's other codes."
)


class FileQuestion(ValidationError):
    """The file asks something before it can be imported (a preview.Question: which columns,
    which encoding, which date order). The admin stages the file and asks on its preview page;
    from the shell, pass the answer to import_file_start."""

    def __init__(self, message: str, *, question: str):
        super().__init__(
            {"date_order" if question == Question.DATE_ORDER else "file": message}, code=question
        )
        self.question = question
        self.text = message


def import_file_start(
    *,
    pool: Pool,
    file,
    user=None,
    date_order: str = "",
    encoding: str = "",
    column_mapping: dict | None = None,
    name: str = "",
    inspect: bool = True,
) -> Import:
    """Store an uploaded file (CSV or a spreadsheet) and queue its import into `pool`.

    The file is looked at first (inspection.inspect_file), so that a file the worker would
    refuse as a whole is refused here, with the same message, while the manager waits; a file
    that asks a question raises FileQuestion. The answers: `date_order` ("dmy" or "mdy") says
    how to read slashed dates such as 03/04/2026 (without it the file must say, with a date
    like 31/01/2026); `encoding` a CSV's codec; `column_mapping` the columns to read
    (headers.ColumnMapping.as_json()) when the header does not name them. Without one, a file
    whose header names no columns is read with the columns chosen for the pool's last upload
    when they fit (column_choices.remembered_mapping), and the report says so.

    `name` is the file's name as the manager knows it (the base of `file.name` by default). A
    file already stored (an upload's FieldFile) is shared by the import, not copied.
    `inspect=False` leaves every check to the worker.
    """
    name = name or os.path.basename(file.name)
    column_mapping = column_mapping or {}
    message = ""
    try:
        check_size(name=name, size=file.size)
        if inspect:
            date_order, column_mapping, message = _inspect(
                pool,
                file,
                name=name,
                date_order=date_order,
                encoding=encoding,
                chosen=column_mapping,
            )
    except ColumnsUnclear as error:
        raise FileQuestion(str(error), question=Question.COLUMNS) from error
    except EncodingUnclear as error:
        raise FileQuestion(str(error), question=Question.ENCODING) from error
    except ImportFileError as error:
        raise ValidationError({"file": f"{error} {FIX_THE_FILE}"}, code="bad_file") from error
    except AmbiguousDates as error:
        raise FileQuestion(str(error), question=Question.DATE_ORDER) from error
    return _start(
        pool=pool,
        user=user,
        source=Import.Source.FILE,
        file=file.name if isinstance(file, FieldFile) else file,
        file_name=name,
        file_size=file.size,
        date_order=date_order,
        encoding=encoding,
        column_mapping=column_mapping,
        message=message,
    )


def _inspect(pool, file, *, name, date_order, encoding, chosen: dict) -> tuple[str, dict, str]:
    """Return the date order, the columns to read and the import's first note."""
    mapping = ColumnMapping.from_json(chosen) if chosen else None
    look = {"name": name, "size": file.size, "date_order": date_order, "encoding": encoding}
    try:
        return inspect_file(file, mapping=mapping, **look), chosen, ""
    except ColumnsUnclear as unclear:
        if mapping is not None:
            raise
        remembered = remembered_mapping(
            pool=pool, file=file, name=name, size=file.size, encoding=encoding, unclear=unclear
        )
        if remembered is None:
            raise
        chosen = {**remembered.as_json(), "width": file_width(unclear.first_rows)}
        # The worker's report names the columns (readers.REMEMBERED_COLUMNS).
        return inspect_file(file, mapping=remembered, **look), chosen, ""


def import_text_start(*, pool: Pool, text: str, user=None) -> Import:
    """Queue the import of a pasted list of codes into `pool`."""
    if not text.strip():
        raise ValidationError({"text": NOTHING_PASTED})
    content = text.encode("utf-8")
    try:
        check_size(name=_("The pasted list"), size=len(content))
    except ImportFileError as error:
        raise ValidationError({"text": str(error)}) from error
    return _start(
        pool=pool,
        user=user,
        source=Import.Source.TEXT,
        file=ContentFile(content, name="pasted-codes.txt"),
        file_name=_("Pasted list"),
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
        file_name=generated_name(count, refill=refill),
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


def upload_stage(
    *, pool: Pool, file, user=None, date_order: str = "", check: bool = True
) -> Upload:
    """Store an uploaded file to be checked before it is imported; return the Upload.

    With `check`, a file the import would refuse as a whole (not a table, damaged, no rows …)
    is refused here with the import's message; a file that asks a question (its columns, its
    encoding) is staged, to be asked on its preview. Stale uploads are swept first
    (uploads_clean_stale).
    """
    name = os.path.basename(file.name)
    try:
        check_size(name=name, size=file.size)
        if check:
            open_table(
                file,
                name=name,
                size=file.size,
                load_sheets=sheets_loadable(file, size=file.size),
            )
    except (ColumnsUnclear, EncodingUnclear):
        pass  # questions for the preview
    except ImportFileError as error:
        raise ValidationError({"file": f"{error} {FIX_THE_FILE}"}, code="bad_file") from error
    finally:
        file.seek(0)
    uploads_clean_stale()
    return Upload.objects.create(
        pool=pool,
        file=file,
        file_name=name,
        file_size=file.size,
        created_by=user,
        date_order=date_order,
    )


def upload_choose(
    *,
    upload: Upload,
    preview: Preview,
    encoding: str = "",
    date_order: str = "",
    header_row: int | None = None,
    columns: tuple | None = None,
) -> Upload:
    """Keep the manager's choices for reading a staged file, as made on its `preview`.

    `header_row` (0: none) and `columns` (the index of each template column's column, or None)
    are kept as a chosen mapping when the preview asked for the columns or they differ from
    the columns read; the same columns as found leave the file to its header, and the encoding
    it was read in is no choice either. Refused once the import was started.
    """
    if upload.is_started:
        raise ValidationError(UPLOAD_STARTED, code="started")
    if columns is not None:
        found = preview.mapping
        unchanged = (
            preview.question != Question.COLUMNS
            and found is not None
            and (found.header_row, tuple(found.columns)) == (header_row or 0, tuple(columns))
        )
        if not unchanged:
            upload.column_mapping = chosen_mapping(
                preview, header_row=header_row or 0, columns=columns
            )
    if encoding == preview.encoding and not upload.encoding:
        encoding = ""  # the encoding the file was read in: not a choice
    upload.encoding, upload.date_order = encoding, date_order
    upload.save(update_fields=["encoding", "date_order", "column_mapping"])
    return upload


def upload_start(*, upload: Upload, user=None) -> Import:
    """Queue the import of a staged file with the choices kept on it (import_file_start), and
    mark the upload started; return the import. Refused (ValidationError) while the file asks
    a question, and once started."""
    with transaction.atomic():
        upload = Upload.objects.select_for_update().select_related("pool").get(pk=upload.pk)
        if upload.is_started:
            raise ValidationError(UPLOAD_STARTED, code="started")
        try:
            with upload.file.open("rb") as file:
                job = import_file_start(
                    pool=upload.pool,
                    file=file,
                    name=upload.file_name,
                    user=user,
                    date_order=upload.date_order,
                    encoding=upload.encoding,
                    column_mapping=upload.column_mapping,
                )
        except FileQuestion as question:
            raise ValidationError(
                QUESTION_OPEN % {"question": question.text}, code=question.question
            ) from question
        upload.import_job = job
        upload.save(update_fields=["import_job"])
    return job


def uploads_clean_stale(*, now=None, limit: int = STALE_UPLOADS_PER_SWEEP) -> int:
    """Delete up to `limit` uploads never started and older than STALE_UPLOAD_AGE, with their
    files; return how many.

    Called where uploads are made (upload_stage): each new upload sweeps up after a few old
    ones, which keeps the sweep cheap and needs no periodic task; a pool nobody uploads to any
    more keeps its last forgotten files until the next upload anywhere.
    """
    cutoff = (now or timezone.now()) - STALE_UPLOAD_AGE
    stale = Upload.objects.filter(import_job__isnull=True, created_at__lt=cutoff)
    removed = 0
    for upload in stale.order_by("created_at")[:limit]:
        # The row first, on the same condition: an upload started meanwhile keeps its file.
        if stale.filter(pk=upload.pk).delete()[0]:
            upload.file.delete(save=False)
            removed += 1
    return removed


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
