"""An assignment's customer list read in slices: the rows issued and committed together."""

from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy

from pools.code_services import customer_clean, issue_room
from pools.jobs import JobPace

from .cells import shown
from .models import Assignment
from .readers import UnreadableRow

BAD_CUSTOMER = gettext_lazy(
    "No customer id, or one longer than 200 characters or with a NUL character."
)


@dataclass
class _Slice:
    """Rows of the list issued and committed together, with the customer ids read from them."""

    number: int
    size: int  # rows read, rejected ones included
    progress: int
    rows: list  # (cells, customer id or None) of each readable row, in file order
    customers: list[str]  # the usable ids, in row order (twice for a customer listed twice)
    rejected: list
    # Customers of the slice before it, which is still being issued beside this one: they get
    # (or miss) their code there, so that the two slices never wait on each other's issue.
    carried: frozenset = frozenset()


def _slices(job: Assignment, table, pace: JobPace | None = None):
    """Yield the slices of the rows after the committed ones, parsed, each as large as `pace`
    tells (ASSIGN_BATCH_SIZE without one)."""
    batch, seen, number = [], 0, 0
    size = _slice_size(job, 0, pace)
    for row_number, cells in table.rows:
        seen += 1
        if seen <= job.rows_done:
            continue
        batch.append((row_number, cells))
        if len(batch) >= size:
            yield _slice(number, batch, table)
            batch, number = [], number + 1
            size = _slice_size(job, seen - job.rows_done, pace)
    if batch:
        yield _slice(number, batch, table)


def _slice_size(job: Assignment, rows_given: int, pace: JobPace | None = None) -> int:
    """Return how many rows the next slice takes: ASSIGN_BATCH_SIZE, or fewer when the pool's
    stock would cross a level it watches (its low-stock alert, its refill) inside the slice.
    The slice then ends at the crossing, and the alert starts when it commits (see pools'
    issue_room), not once the stock is at 0.

    At most one row is one new code: rows of customers who hold a code, or listed twice, make
    the slice end a little before the crossing, which then falls in the next one. The slices
    given out but not committed yet (another lane's) are counted as taking a code a row."""
    size = settings.ASSIGN_BATCH_SIZE if pace is None else pace.size(settings.ASSIGN_BATCH_SIZE)
    room = issue_room(job.pool)
    if room is None:
        return size
    done = Assignment.objects.filter(pk=job.pk).values_list("rows_done", flat=True).first() or 0
    room -= rows_given - (done - job.rows_done)
    return room if 0 < room < size else size


def _slice(number: int, batch, table) -> _Slice:
    rejected, customers, rows = [], [], []
    for row_number, cells in batch:
        if isinstance(cells, UnreadableRow):
            rejected.append([row_number, "", cells.reason])
            continue
        value = cells[table.customer_index]
        try:
            customer = customer_clean(value)
        except ValidationError:
            # As the report can store it: a NUL as its visible symbol (JSON in PostgreSQL
            # cannot hold one).
            rejected.append([row_number, shown(value[:200], limit=200), str(BAD_CUSTOMER)])
            customer = None
        else:
            customers.append(customer)
        rows.append((cells, customer))
    return _Slice(number, len(batch), table.progress(), rows, customers, rejected)
