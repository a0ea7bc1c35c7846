"""An assignment's entry points beside its run (assignments.py): the upload of a customer list
that queues the job, running a failed one again, and the release of codes its customers never
received."""

import os

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from pools.code_services import batch_key, code_release, customer_holdings
from pools.jobs import job_enqueue_on_commit, job_run_again
from pools.models import Pool
from pools.refusals import CodeRefused, Refusal

from .customer_lists import open_customer_list
from .inspection import sheets_loadable
from .models import Assignment
from .readers import FIX_THE_FILE, ImportFileError, check_size

# The key every assignment's issue to a customer is recorded under (with the customer id).
ASSIGNMENT_KEY = "assignment"
POOL_NOT_ACTIVE = _("Codes can be assigned from an active pool only.")


def assignment_start(*, pool: Pool, file, user=None) -> Assignment:
    """Store an uploaded customer list and queue its assignment from `pool`.

    The list is opened first, so that a file the worker would refuse as a whole (no customer
    column, not a table) is refused here, while the manager waits; a workbook too large to
    parse in a moment is checked as a container only (inspection.sheets_loadable).
    """
    if not pool.is_active:
        # The code on the field's error: Django drops a code given beside a dict of messages.
        raise ValidationError({"file": ValidationError(POOL_NOT_ACTIVE, code="pool_not_active")})
    name = os.path.basename(file.name)
    try:
        check_size(name=name, size=file.size)
        file.seek(0)
        load = sheets_loadable(file, size=file.size)
        open_customer_list(file, name=name, size=file.size, load_sheets=load)
        file.seek(0)
    except ImportFileError as error:
        message = f"{error} {FIX_THE_FILE}"
        raise ValidationError({"file": ValidationError(message, code="bad_file")}) from error
    job = Assignment.objects.create(
        pool=pool,
        file=file,
        file_name=name,
        created_by=user,
        progress_total=file.size,
        enqueued_at=timezone.now(),
    )
    job_enqueue_on_commit(job)
    return job


NOT_RERUNNABLE = _("Only a failed assignment can be run again.")


def assignment_rerun(*, job: Assignment) -> Assignment:
    """Queue a failed assignment (its pool was paused, say) again: it goes on after the rows it
    committed, and the customers so far keep their codes."""
    return job_run_again(job, refused=NOT_RERUNNABLE)


def assignment_release(*, job: Assignment, customers: list[str]) -> dict[str, int]:
    """Give back to stock the codes this pool's assignments issued to `customers` (their
    messages were never delivered): only codes issued under the assignment key and not
    redeemed (code_release decides). Return counts: released; redeemed (kept); held_elsewhere,
    customers holding a live code that no assignment issued them (from the API, marked as
    issued: an assignment's list hands such codes on, and giving them back is for whoever
    issued them); not_found, customers with no live code in the pool."""
    counts = {"released": 0, "redeemed": 0, "held_elsewhere": 0, "not_found": 0}
    wanted = list(dict.fromkeys(c.strip() for c in customers if c and c.strip()))
    holdings = customer_holdings(pool=job.pool, customers=wanted)
    for customer in wanted:
        code = holdings.live.get(customer)
        if code is None:
            counts["redeemed" if customer in holdings.redeemed else "not_found"] += 1
            continue
        try:
            code_release(
                pool=code.pool,
                code=code.code,
                idempotency_key=batch_key(ASSIGNMENT_KEY, customer),
            )
        except CodeRefused as refused:
            if refused.reason == Refusal.ALREADY_REDEEMED:
                counts["redeemed"] += 1
            elif refused.reason == Refusal.UNKNOWN_CODE:
                # Not issued under the assignment key: the customer's code came from elsewhere.
                counts["held_elsewhere"] += 1
            else:
                counts["not_found"] += 1
        else:
            counts["released"] += 1
    return counts
