"""Assignments (issue 15): issue a code of a pool to every customer of an uploaded list, as one
job, and hand the list back with a Code column.

Here rather than in pools because the list is read with imports' readers (CSV, XLSX and the
rest, with their checks); the issuing itself is pools' code_issue_batch, so that every rule of
issuing holds (one code per customer, issue windows, pause and end, the fallback pool).

Every customer's issue is recorded under the key "assignment:<customer>" in the pool, and a
customer who already holds a code of the pool gets it back: running the same list again, or two
overlapping lists at the same time, never gives anyone a second code (the key is unique per
pool, so of two concurrent claims for one customer only one commits).

On PostgreSQL, from a pool of single-use codes, each slice of the list is issued set-based (a
few statements for the whole slice, not a call per customer: 200,000 customers took 60 s
through code_issue_batch, most of it building a Code object per customer and looking them up
again to write the list), and the list with codes is written while the slices commit.
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
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from pools.code_services import (
    BATCH_MAX,
    ISSUABLE_NOW,
    batch_key,
    code_issue_batch,
    code_release,
    codes_held,
    customer_clean,
    pool_fallback,
)
from pools.counters import counter_shard
from pools.models import Code, CodeIssue, Pool, PoolCounter
from pools.refusals import CodeRefused, Refusal
from pools.signals import stock_changed_on_commit

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
        # The code on the field's error: Django drops a code given beside a dict of messages.
        raise ValidationError({"file": ValidationError(POOL_NOT_ACTIVE, code="pool_not_active")})
    name = os.path.basename(file.name)
    try:
        check_size(name=name, size=file.size)
        file.seek(0)
        open_customer_list(file, name=name, size=file.size)
        file.seek(0)
    except ImportFileError as error:
        message = f"{error} {FIX_THE_FILE}"
        raise ValidationError({"file": ValidationError(message, code="bad_file")}) from error
    job = Assignment.objects.create(
        pool=pool, file=file, file_name=name, created_by=user, progress_total=file.size
    )
    assignment_queued_on_commit(job.pk)
    return job


def _stale():
    return timezone.now() - timedelta(seconds=settings.IMPORT_HEARTBEAT_TIMEOUT)


def assignment_run(*, assignment_id: int) -> Assignment | None:
    """Run (or resume) an assignment: claim it (queued, failed, or running with a dead
    worker's heartbeat), issue slice by slice, each slice committed with its counts, then
    store the list with codes. A job already running in a live worker is left alone."""
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
        with tempfile.TemporaryFile() as out:
            text = io.TextIOWrapper(out, encoding="utf-8", newline="")
            # From the first row, each slice's rows are written with their codes once the
            # slice commits; a job resumed after a kill looks its earlier rows' codes up.
            writer = csv.writer(text) if job.rows_done == 0 else None
            if not _issue_all(job, now, writer):
                return job
            if writer is None:
                _write_result(job)
            else:
                _store_result(job, text)
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


def _issue_all(job: Assignment, heartbeat, writer) -> bool:
    """Issue to every row after the committed ones, writing them with their codes to `writer`
    (if given); return False if the pool stopped it."""
    job.heartbeat_at = heartbeat
    issuer = _SliceIssuer.for_pool(job)
    with job.file.open("rb") as stored:
        table = open_customer_list(stored, name=job.file_name, size=job.file.size)
        if writer is not None:
            writer.writerow([*table.header, RESULT_COLUMN])
        batch = []
        seen = 0
        for row_number, cells in table.rows:
            seen += 1
            if seen <= job.rows_done:
                continue
            batch.append((row_number, cells))
            if len(batch) >= settings.ASSIGN_BATCH_SIZE:
                if not _issue_batch(job, batch, table, table.progress(), issuer, writer):
                    return False
                batch = []
        if batch and not _issue_batch(job, batch, table, table.progress(), issuer, writer):
            return False
    return True


def _issue_batch(job: Assignment, batch, table, progress: int, issuer, writer) -> bool:
    rejected, customers, row_customers = [], [], []
    for row_number, cells in batch:
        if isinstance(cells, UnreadableRow):
            rejected.append([row_number, "", cells.reason])
            continue
        value = cells[table.customer_index]
        try:
            customer = customer_clean(value)
        except ValidationError:
            rejected.append([row_number, value[:200], BAD_CUSTOMER])
            customer = None
        else:
            customers.append(customer)
        row_customers.append((cells, customer))
    now = timezone.now()
    try:
        for _attempt in range(5):
            try:
                outcome = _commit_slice(job, batch, customers, rejected, progress, now, issuer)
                break
            except (IntegrityError, OperationalError) as error:
                # An issue under the same assignment key in this pool's fallback (an
                # assignment from another pool) came first, or the two waited on each other:
                # the slice is rolled back and done again, and finds that customer's code.
                if isinstance(error, OperationalError) and "deadlock" not in str(error):
                    raise
                continue
        else:
            raise CodeRefused(Refusal.KEY_REUSED)
    except _ClaimLost:
        return False
    except CodeRefused as refused:
        Assignment.objects.filter(pk=job.pk, heartbeat_at=job.heartbeat_at).update(
            status=Assignment.Status.FAILED,
            message=STOPPED.format(reason=refused.reason.label, hint=RUN_AGAIN),
            finished_at=timezone.now(),
        )
        return False
    codes, short = outcome
    job.heartbeat_at = now
    job.rows_done += len(batch)
    job.shortfall += len(short)
    if writer is not None:
        for cells, customer in row_customers:
            writer.writerow([*cells, codes.get(customer, "")])
    return True


def _commit_slice(job, batch, customers, rejected, progress, now, issuer):
    """Issue to the slice's customers and record the job's counts, in one transaction; return
    (customer → code string, customers left without a code)."""
    with transaction.atomic():
        # Ours still? A job taken over by another worker (this one was thought dead) stops
        # here: its slice is rolled back, and the other goes on from the committed rows.
        held = Assignment.objects.select_for_update().filter(
            pk=job.pk, status=Assignment.Status.RUNNING, heartbeat_at=job.heartbeat_at
        )
        current = held.first()
        if current is None:
            raise _ClaimLost
        codes, new, from_fallback, short = {}, set(), 0, []
        if customers:
            codes, new, from_fallback, short = issuer.issue(list(dict.fromkeys(customers)))
        room = Assignment.SAMPLE
        short_set = set(short)
        short_rows = sum(1 for c in customers if c in short_set)
        held.update(
            rows_done=F("rows_done") + len(batch),
            customers_read=F("customers_read") + len(customers),
            codes_issued=F("codes_issued") + len(new),
            # Rows of customers who got no new code yet have one: held before, or listed
            # twice.
            already_held=F("already_held") + len(customers) - len(new) - short_rows,
            from_fallback=F("from_fallback") + from_fallback,
            rows_rejected=F("rows_rejected") + len(rejected),
            shortfall=F("shortfall") + len(short),
            rejected_sample=(current.rejected_sample + rejected)[:room],
            short_sample=(current.short_sample + short)[:room],
            progress_done=progress,
            heartbeat_at=now,
        )
    return codes, short


class _SliceIssuer:
    """Issue codes of the job's pool to the distinct customers of one slice, inside the
    slice's transaction: return (customer → code string, customers with a new code, how many
    of those came from the fallback, customers left without one)."""

    def __init__(self, job: Assignment):
        self.pool = job.pool
        self.caller = f"assignment-{job.pk}"

    @staticmethod
    def for_pool(job: Assignment) -> "_SliceIssuer":
        # The fallback pool is read once per run of the job.
        fallback = pool_fallback(job.pool)
        set_based = connection.vendor == "postgresql" and not any(
            pool.allow_multiple_use for pool in (job.pool, fallback) if pool is not None
        )
        return _SetIssuer(job, fallback) if set_based else _SliceIssuer(job)

    def issue(self, customers: list[str]):
        codes, new, from_fallback, short = {}, set(), 0, []
        for start in range(0, len(customers), BATCH_MAX):
            outcome = code_issue_batch(
                pool=self.pool,
                customers=customers[start : start + BATCH_MAX],
                idempotency_key=ASSIGNMENT_KEY,
                caller=self.caller,
                once_per_customer=True,
            )
            for issued in outcome.issued:
                codes[issued.customer] = issued.code.code
                if not issued.again:
                    new.add(issued.customer)
                    from_fallback += issued.from_fallback
            short += outcome.short
        return codes, new, from_fallback, short


class _SetIssuer(_SliceIssuer):
    """The PostgreSQL form for single-use codes: the slice's customers who hold a code of the
    pool (or its fallback) get it back, the others get the pool's next issuable codes, the
    n-th code to the n-th customer, then the fallback's for those still without one; every
    issue recorded under its assignment key and counted, a few statements for the slice."""

    def __init__(self, job: Assignment, fallback: Pool | None):
        super().__init__(job)
        self.fallback = fallback
        self.pool_ids = [self.pool.pk] + ([fallback.pk] if fallback else [])
        # Where the next claim in each pool starts: after the codes this job claimed (claims
        # go in id order), so that a slice does not walk past the index entries of the codes
        # the slices before it issued (they stay until vacuum).
        self.start = {}

    def issue(self, customers: list[str]):
        with connection.cursor() as cursor:
            # Assignments of one pool take turns slice by slice: of two overlapping lists, the
            # second finds the customers the first gave a code as holding one.
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                [f"assignment:{self.pool.pk}"],
            )
            _plan_for_lookups(cursor)
            codes = _held_codes(cursor, self.pool_ids, customers)
            todo = [c for c in customers if c not in codes]
            new = set()
            from_fallback = 0
            for pool in (self.pool, self.fallback):
                if not todo or pool is None:
                    break
                claimed = self._claim(cursor, pool, todo)
                if pool is self.pool and len(claimed) < len(todo):
                    # A pause or end of the pool itself is not "dry": it stops the job.
                    status = Pool.objects.filter(pk=pool.pk).values_list("status", flat=True)
                    refusal = Pool(status=status.first()).issue_refusal()
                    if refusal:
                        raise CodeRefused(refusal)
                if claimed:
                    stock_changed_on_commit(pool)
                codes.update(claimed)
                new.update(claimed)
                if pool is self.fallback:
                    from_fallback = len(claimed)
                todo = [c for c in todo if c not in claimed]
        return codes, new, from_fallback, todo

    def _claim(self, cursor, pool: Pool, customers: list[str]) -> dict[str, str]:
        start = self.start.get(pool.pk, 0)
        params = {
            "count": len(customers),
            "pool": pool.pk,
            "now": timezone.now(),
            "available": Code.Status.AVAILABLE,
            "issued": Code.Status.ISSUED,
            "caller": self.caller,
            "shard": counter_shard(),
            "start": start,
        }
        cursor.execute(
            f"SELECT id FROM {Code._meta.db_table}"
            f" WHERE pool_id = %(pool)s AND {ISSUABLE_NOW} AND id >= %(start)s"
            " ORDER BY id LIMIT %(count)s FOR UPDATE SKIP LOCKED",
            params,
        )
        ids = [row[0] for row in cursor.fetchall()]
        taking = customers[: len(ids)]
        if ids:
            # The codes and their customers as arrays, and the codes' id range: joined to the
            # codes on an estimate, the claim read all the table's codes (a hash join of
            # 2,000,000 rows, 1 s for 20,000 customers) or paired every code with every
            # customer (a nested loop, 70 s).
            cursor.execute(
                f"""
                WITH claimed AS (
                    UPDATE {Code._meta.db_table} c SET status = %(issued)s,
                        issued_to = w.customer, issued_at = %(now)s
                    FROM unnest(%(ids)s::bigint[], %(customers)s::text[], %(keys)s::text[])
                        AS w(id, customer, key)
                    WHERE c.id BETWEEN %(first)s AND %(last)s AND c.id = w.id
                    RETURNING c.id, c.code, w.customer, w.key
                ), recorded AS (
                    INSERT INTO {CodeIssue._meta.db_table}
                        (pool_id, code_id, customer, idempotency_key, marked, issued_at,
                         issued_by, released_key)
                    SELECT %(pool)s, id, customer, key, false, %(now)s, %(caller)s, ''
                    FROM claimed
                ), counted AS (
                    INSERT INTO {PoolCounter._meta.db_table}
                        (pool_id, shard, available, issued, redeemed)
                    SELECT %(pool)s, %(shard)s, -count(*), count(*), 0 FROM claimed
                    HAVING count(*) > 0
                    ON CONFLICT (pool_id, shard) DO UPDATE SET
                        available = {PoolCounter._meta.db_table}.available + excluded.available,
                        issued = {PoolCounter._meta.db_table}.issued + excluded.issued
                )
                SELECT customer, code FROM claimed
                """,
                {
                    **params,
                    "ids": ids,
                    "first": ids[0],
                    "last": ids[-1],
                    "customers": taking,
                    "keys": [batch_key(ASSIGNMENT_KEY, c) for c in taking],
                },
            )
            self.start[pool.pk] = ids[-1] + 1
        claimed = dict(cursor.fetchall()) if ids else {}
        if len(claimed) < len(customers) and start:
            # Short after the starting point: look from the first code (released codes, codes
            # whose issue window opened, claims of others rolled back).
            self.start.pop(pool.pk)
            claimed.update(self._claim(cursor, pool, [c for c in customers if c not in claimed]))
        return claimed


def _plan_for_lookups(cursor) -> None:
    """Plan the rest of the transaction's statements as the look-ups by index they are, not
    by estimates: the customers' look-up's estimate (a loop per customer) passed the threshold
    of JIT compilation, which then took 0.1 s of each 5,000 customers' 0.11 s; and while the
    issues table was small when last analyzed, each customer's look-up read it whole (20 s of
    an assignment of 1,000,000 customers, in its first 200,000)."""
    cursor.execute("SET LOCAL jit = off")
    cursor.execute("SET LOCAL enable_seqscan = off")


def _held_codes(cursor, pool_ids: list[int], customers: list[str]) -> dict[str, str]:
    """Return the code string each of `customers` holds from the pools (issued and not given
    back; the latest when there are several), as codes_held does, in one query."""
    # One look-up by the customer's index per customer (with _plan_for_lookups): as one scan
    # for all the slice's customers, a table grown since it was last analyzed (by the
    # assignment's own issues) was read whole, slice after slice (up to 0.2 s each at
    # 1,000,000 issues). "pool_id + 0": the pools filtered on the rows found, not ANDed in
    # from the pool's index (see codes_held).
    cursor.execute(
        f"""
        SELECT w.customer, held.code FROM unnest(%s::text[]) AS w(customer)
        CROSS JOIN LATERAL (
            SELECT c.code FROM {CodeIssue._meta.db_table} i
            JOIN {Code._meta.db_table} c ON c.id = i.code_id
            WHERE i.customer = w.customer AND i.released_at IS NULL
                AND i.pool_id + 0 = ANY(%s)
            ORDER BY i.id DESC LIMIT 1
        ) held
        """,
        [customers, pool_ids],
    )
    return dict(cursor.fetchall())


def _store_result(job: Assignment, text: io.TextIOWrapper) -> None:
    text.flush()
    out = text.detach()
    out.seek(0)
    stem = os.path.splitext(job.file_name)[0] or "customers"
    job.result.save(f"{stem}-with-codes.csv", File(out), save=False)
    Assignment.objects.filter(pk=job.pk).update(result=job.result.name)


def _write_result(job: Assignment) -> None:
    """Write the uploaded list again with a Code column: each customer's code (the one they
    hold from the pool or its fallback), empty for rows rejected or left without a code."""
    with tempfile.TemporaryFile() as out, job.file.open("rb") as stored:
        text = io.TextIOWrapper(out, encoding="utf-8", newline="")
        writer = csv.writer(text)
        table = open_customer_list(stored, name=job.file_name, size=job.file.size)
        writer.writerow([*table.header, RESULT_COLUMN])
        batch = []

        def flush():
            ids = []
            for _, cells in batch:
                if not isinstance(cells, UnreadableRow):
                    ids.append(cells[table.customer_index].strip())
            held = _codes_held(job.pool, ids)
            for _, cells in batch:
                if isinstance(cells, UnreadableRow):
                    continue
                writer.writerow([*cells, held.get(cells[table.customer_index].strip(), "")])
            batch.clear()

        for row in table.rows:
            batch.append(row)
            if len(batch) >= settings.ASSIGN_BATCH_SIZE * 2:
                flush()
        flush()
        _store_result(job, text)


def _codes_held(pool: Pool, customers: list[str]) -> dict[str, str]:
    if connection.vendor == "postgresql":
        fallback = pool_fallback(pool)
        with transaction.atomic(), connection.cursor() as cursor:
            _plan_for_lookups(cursor)
            return _held_codes(cursor, [pool.pk] + ([fallback.pk] if fallback else []), customers)
    return {c: code.code for c, code in codes_held(pool=pool, customers=customers).items()}


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
