"""Assignments (issue 15): issue a code of a pool to every customer of an uploaded list, as one
job, and hand the list back with a Code column.

Here rather than in pools because the list is read with imports' readers (CSV, XLSX and the
rest, with their checks); the issuing itself is pools' code_issue_batch, so that every rule of
issuing holds (one code per customer, issue windows, pause and end, the fallback pool).

Every customer's issue is recorded under the key "assignment:<customer>" in the pool, and a
customer who already holds a code of the pool gets it back: running the same list again, or two
overlapping lists at the same time, never gives anyone a second code (the key is unique per
pool, so of two concurrent claims for one customer only one commits).
"""

import csv
import io
import logging
import os
import tempfile
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from pools.code_services import (
    batch_key,
    code_issue_batch,
    code_release,
    codes_held,
    customer_clean,
)
from pools.models import Pool
from pools.refusals import CodeRefused, Refusal

from .models import Assignment
from .readers import FIX_THE_FILE, ImportFileError, UnreadableRow, check_size, open_customer_list
from .signals import assignment_queued_on_commit

logger = logging.getLogger(__name__)

# The key every assignment's issue to a customer is recorded under (with the customer id).
ASSIGNMENT_KEY = "assignment"
POOL_NOT_ACTIVE = "Codes can be assigned from an active pool only."
BAD_CUSTOMER = "No customer id, or one longer than 200 characters or with a NUL character."
STOPPED = "The pool stopped issuing ({reason}); the customers so far have their codes. {hint}"
RUN_AGAIN = "Run it again once the pool issues again."
RESULT_COLUMN = "Code"


def assignment_start(*, pool: Pool, file, user=None) -> Assignment:
    """Store an uploaded customer list and queue its assignment from `pool`.

    The list is opened first, so that a file the worker would refuse as a whole (no customer
    column, not a table) is refused here, while the manager waits.
    """
    if not pool.is_active:
        raise ValidationError({"file": POOL_NOT_ACTIVE}, code="pool_not_active")
    name = os.path.basename(file.name)
    try:
        check_size(name=name, size=file.size)
        file.seek(0)
        open_customer_list(file, name=name, size=file.size)
        file.seek(0)
    except ImportFileError as error:
        raise ValidationError({"file": f"{error} {FIX_THE_FILE}"}, code="bad_file") from error
    job = Assignment.objects.create(
        pool=pool, file=file, file_name=name, created_by=user, progress_total=file.size
    )
    assignment_queued_on_commit(job.pk)
    return job


def _stale():
    return timezone.now() - timedelta(seconds=settings.IMPORT_HEARTBEAT_TIMEOUT)


def assignment_run(*, assignment_id: int) -> Assignment | None:
    """Run (or resume) an assignment: claim it (queued, failed, or running with a dead
    worker's heartbeat), issue batch by batch, each batch committed with its counts, then
    write the list with codes. A job already running in a live worker is left alone."""
    claimable = Q(status__in=(Assignment.Status.QUEUED, Assignment.Status.FAILED)) | Q(
        status=Assignment.Status.RUNNING, heartbeat_at__lt=_stale()
    )
    now = timezone.now()
    claimed = Assignment.objects.filter(claimable, pk=assignment_id).update(
        status=Assignment.Status.RUNNING,
        heartbeat_at=now,
        started_at=Coalesce("started_at", now),
        message="",
    )
    job = Assignment.objects.filter(pk=assignment_id).first()
    if not claimed or job is None:
        return job
    try:
        if not _issue_all(job, now):
            return job
        _write_result(job)
    except Exception as error:
        Assignment.objects.filter(pk=job.pk, heartbeat_at=job.heartbeat_at).update(
            status=Assignment.Status.FAILED, message=str(error), finished_at=timezone.now()
        )
        raise
    status = (
        Assignment.Status.COMPLETED_WITH_SHORTFALL if job.shortfall else Assignment.Status.COMPLETED
    )
    Assignment.objects.filter(pk=job.pk).update(status=status, finished_at=timezone.now())
    job.refresh_from_db()
    return job


class _ClaimLost(Exception):
    pass


def _issue_all(job: Assignment, heartbeat) -> bool:
    """Issue to every row after the committed ones; return False if the pool stopped it."""
    job.heartbeat_at = heartbeat
    with job.file.open("rb") as stored:
        table = open_customer_list(stored, name=job.file_name, size=job.file.size)
        batch = []
        seen = 0
        for row_number, cells in table.rows:
            seen += 1
            if seen <= job.rows_done:
                continue
            batch.append((row_number, cells))
            if len(batch) >= settings.ASSIGN_BATCH_SIZE:
                if not _issue_batch(job, batch, table, table.progress()):
                    return False
                batch = []
        if batch and not _issue_batch(job, batch, table, table.progress()):
            return False
    return True


def _issue_batch(job: Assignment, batch, table, progress: int) -> bool:
    rejected, customers = [], []
    for row_number, cells in batch:
        if isinstance(cells, UnreadableRow):
            rejected.append([row_number, "", cells.reason])
            continue
        value = cells[table.customer_index]
        try:
            customers.append(customer_clean(value))
        except ValidationError:
            rejected.append([row_number, value[:200], BAD_CUSTOMER])
    now = timezone.now()
    try:
        with transaction.atomic():
            # Ours still? A job taken over by another worker (this one was thought dead) stops
            # here: its batch is rolled back, and the other goes on from the committed rows.
            held = Assignment.objects.select_for_update().filter(
                pk=job.pk, status=Assignment.Status.RUNNING, heartbeat_at=job.heartbeat_at
            )
            current = held.first()
            if current is None:
                raise _ClaimLost
            issued, short = [], []
            if customers:
                outcome = code_issue_batch(
                    pool=job.pool,
                    customers=customers,
                    idempotency_key=ASSIGNMENT_KEY,
                    caller=f"assignment-{job.pk}",
                    once_per_customer=True,
                )
                issued, short = outcome.issued, outcome.short
            room = Assignment.SAMPLE
            new = sum(1 for i in issued if not i.again)
            short_set = set(short)
            short_rows = sum(1 for c in customers if c in short_set)
            held.update(
                rows_done=F("rows_done") + len(batch),
                customers_read=F("customers_read") + len(customers),
                codes_issued=F("codes_issued") + new,
                # Rows of customers who got no new code yet have one: held before, or listed
                # twice.
                already_held=F("already_held") + len(customers) - new - short_rows,
                from_fallback=F("from_fallback")
                + sum(1 for i in issued if i.from_fallback and not i.again),
                rows_rejected=F("rows_rejected") + len(rejected),
                shortfall=F("shortfall") + len(short),
                rejected_sample=(current.rejected_sample + rejected)[:room],
                short_sample=(current.short_sample + short)[:room],
                progress_done=progress,
                heartbeat_at=now,
            )
    except _ClaimLost:
        return False
    except CodeRefused as refused:
        Assignment.objects.filter(pk=job.pk, heartbeat_at=job.heartbeat_at).update(
            status=Assignment.Status.FAILED,
            message=STOPPED.format(reason=refused.reason.label, hint=RUN_AGAIN),
            finished_at=timezone.now(),
        )
        return False
    job.heartbeat_at = now
    job.rows_done += len(batch)
    job.shortfall += len(short)
    return True


def _write_result(job: Assignment) -> None:
    """Write the uploaded list again with a Code column: each customer's code (the one they
    hold from the pool or its fallback), empty for rows rejected or left without a code."""
    with tempfile.TemporaryFile() as out, job.file.open("rb") as stored:
        text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
        writer = csv.writer(text)
        table = open_customer_list(stored, name=job.file_name, size=job.file.size)
        writer.writerow([*table.header, RESULT_COLUMN])
        batch = []

        def flush():
            ids = []
            for _, cells in batch:
                if not isinstance(cells, UnreadableRow):
                    ids.append(cells[table.customer_index].strip())
            held = codes_held(pool=job.pool, customers=ids)
            for _, cells in batch:
                if isinstance(cells, UnreadableRow):
                    continue
                code = held.get(cells[table.customer_index].strip())
                writer.writerow([*cells, code.code if code else ""])
            batch.clear()

        for row in table.rows:
            batch.append(row)
            if len(batch) >= settings.ASSIGN_BATCH_SIZE * 2:
                flush()
        flush()
        text.flush()
        out.seek(0)
        stem = os.path.splitext(job.file_name)[0] or "customers"
        job.result.save(f"{stem}-with-codes.csv", File(out), save=False)
        text.detach()
    Assignment.objects.filter(pk=job.pk).update(result=job.result.name)


def assignments_recover_stale() -> int:
    """Queue again the running assignments whose worker died (heartbeat gone stale); return
    how many. Runs when a worker starts and periodically."""
    stale = list(
        Assignment.objects.filter(
            status=Assignment.Status.RUNNING, heartbeat_at__lt=_stale()
        ).values_list("pk", flat=True)
    )
    for job_id in stale:
        assignment_queued_on_commit(job_id)
    return len(stale)


def assignment_release(*, job: Assignment, customers: list[str]) -> dict[str, int]:
    """Give back to stock the codes this pool's assignments issued to `customers` (their
    messages were never delivered): only codes issued under the assignment key and not
    redeemed (code_release decides). Return counts: released, redeemed (kept), not_found."""
    counts = {"released": 0, "redeemed": 0, "not_found": 0}
    wanted = list(dict.fromkeys(c.strip() for c in customers if c and c.strip()))
    held = codes_held(pool=job.pool, customers=wanted)
    for customer in wanted:
        code = held.get(customer)
        if code is None:
            counts["not_found"] += 1
            continue
        try:
            code_release(
                pool=code.pool,
                code=code.code,
                idempotency_key=batch_key(ASSIGNMENT_KEY, customer),
            )
        except CodeRefused as refused:
            key = "redeemed" if refused.reason == Refusal.ALREADY_REDEEMED else "not_found"
            counts[key] += 1
        else:
            counts["released"] += 1
    return counts
