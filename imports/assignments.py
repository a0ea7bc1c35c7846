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
again to write the list), and the list with codes is written while the slices commit. The
slices go to two connections in turn (lanes, each its own thread), so that one slice's
statements run while the one before it commits, on the database's other core (a job took 85 s
for 1,000,000 customers on one connection, 50 s on two); they commit in file order. The
assignments of one pool run one at a time.
"""

import csv
import io
import json
import logging
import os
import queue
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import (
    DatabaseError,
    IntegrityError,
    OperationalError,
    connection,
    connections,
    transaction,
)
from django.db.models import F
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
from pools.counters import COUNTER_SHARDS, counter_shard
from pools.jobs import (
    DATABASE_GONE,
    FAILED,
    Claim,
    job_beat,
    job_claim,
    job_enqueue_on_commit,
    job_finish,
    job_held,
    job_queue,
)
from pools.models import Code, CodeIssue, Pool, PoolCounter
from pools.refusals import CodeRefused, Refusal
from pools.signals import stock_changed_on_commit

from .models import Assignment
from .readers import FIX_THE_FILE, ImportFileError, UnreadableRow, check_size, open_customer_list

logger = logging.getLogger(__name__)

# The key every assignment's issue to a customer is recorded under (with the customer id).
ASSIGNMENT_KEY = "assignment"
POOL_NOT_ACTIVE = "Codes can be assigned from an active pool only."
BAD_CUSTOMER = "No customer id, or one longer than 200 characters or with a NUL character."
STOPPED = "The pool stopped issuing ({reason}); the customers so far have their codes. {hint}"
RUN_AGAIN = "Run it again once the pool issues again."
RESULT_COLUMN = "Code"
# How often an assignment waiting for another of the same pool to finish looks again.
POOL_TURN_POLL_SECONDS = 0.5
# The longest a slice waits for a lock before it is rolled back and done again (see
# _plan_for_lookups).
LOCK_TIMEOUT = "10s"


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
        pool=pool,
        file=file,
        file_name=name,
        created_by=user,
        progress_total=file.size,
        enqueued_at=timezone.now(),
    )
    job_enqueue_on_commit(job)
    return job


def assignment_run(*, assignment_id: int) -> Assignment | None:
    """Run (or resume) an assignment as a job (pools.jobs): claim it, issue slice by slice, each
    slice committed with its counts, then store the list with codes. A job finished, or running
    in a live worker, is left alone."""
    job = job_claim(Assignment, assignment_id)
    if isinstance(job, Claim):
        return Assignment.objects.filter(pk=assignment_id).first()
    try:
        with tempfile.TemporaryFile() as out:
            text = io.TextIOWrapper(out, encoding="utf-8", newline="")
            # From the first row, each slice's rows are written with their codes once the
            # slice commits; a job resumed after a kill looks its earlier rows' codes up.
            writer = csv.writer(text) if job.rows_done == 0 else None
            if not _issue_all(job, writer):
                job.refresh_from_db()
                return job
            if writer is None:
                _write_result(job)
            else:
                _store_result(job, text)
    except DATABASE_GONE:
        raise
    except Exception as error:
        job_finish(job, FAILED, message=str(error))
        raise
    job.refresh_from_db(fields=["shortfall"])  # as the slices counted it
    status = (
        Assignment.Status.COMPLETED_WITH_SHORTFALL if job.shortfall else Assignment.Status.COMPLETED
    )
    job_finish(job, status)
    return job


NOT_RERUNNABLE = "Only a failed assignment can be run again."


@transaction.atomic
def assignment_rerun(*, job: Assignment) -> Assignment:
    """Queue a failed assignment (its pool was paused, say) again: it goes on after the rows it
    committed, and the customers so far keep their codes."""
    job = Assignment.objects.select_for_update().get(pk=job.pk)
    if job.status != Assignment.Status.FAILED:
        raise ValidationError(NOT_RERUNNABLE, code="not_rerunnable")
    job_queue(job)
    return job


class _ClaimLost(Exception):
    pass


class _Stopped(Exception):
    """An earlier slice stopped the job: this one is rolled back."""


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


def _slices(job: Assignment, table):
    """Yield the slices of the rows after the committed ones, parsed."""
    batch, seen, number = [], 0, 0
    for row_number, cells in table.rows:
        seen += 1
        if seen <= job.rows_done:
            continue
        batch.append((row_number, cells))
        if len(batch) >= settings.ASSIGN_BATCH_SIZE:
            yield _slice(number, batch, table)
            batch, number = [], number + 1
    if batch:
        yield _slice(number, batch, table)


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
            rejected.append([row_number, value[:200], BAD_CUSTOMER])
            customer = None
        else:
            customers.append(customer)
        rows.append((cells, customer))
    return _Slice(number, len(batch), table.progress(), rows, customers, rejected)


class _Turns:
    """The order slices commit in: the file's, so that the committed rows are always the first
    rows_done of the list (a resumed job starts after them) and the counts follow the rows.
    Also holds the last slice's shortfall."""

    def __init__(self):
        self._changed = threading.Condition()
        self.committed = -1
        self.stopped = False
        self.short = frozenset()

    def wait(self, number: int) -> bool:
        """Wait until the slice before `number` committed; False if the job stopped."""
        with self._changed:
            self._changed.wait_for(lambda: self.committed == number - 1 or self.stopped)
            return not self.stopped

    def commit(self, number: int, short: frozenset) -> None:
        with self._changed:
            self.committed, self.short = number, short
            self._changed.notify_all()

    def stop(self) -> None:
        with self._changed:
            self.stopped = True
            self._changed.notify_all()


def _issue_all(job: Assignment, writer) -> bool:
    """Issue to every row after the committed ones, writing them with their codes to `writer`
    (if given); return False if the pool stopped it (or another worker took the job over)."""
    turns = _Turns()
    issuer = _SliceIssuer.for_pool(job)
    with job.file.open("rb") as stored:
        table = open_customer_list(stored, name=job.file_name, size=job.file.size)
        if writer is not None:
            writer.writerow([*table.header, RESULT_COLUMN])
        with issuer.pool_turn(job, turns) as ours:
            if not ours:
                return False
            return _issue_in_order(job, _slices(job, table), issuer, turns, writer)


def _lanes(issuer) -> int:
    # Two connections for the set-based form: a slice's statements run while the one before
    # it is still being issued or committed, on the database's other core. Not inside a
    # transaction (the shell, tests): other connections would not see its uncommitted rows.
    if isinstance(issuer, _SetIssuer) and not connection.in_atomic_block:
        return max(1, settings.ASSIGN_CONNECTIONS)
    return 1


def _issue_in_order(job: Assignment, slices, issuer, turns: _Turns, writer) -> bool:
    """Issue slice after slice, on one connection or several lanes (each its own thread and
    connection, a slice to each in turn), and write each slice's rows once it committed."""
    lanes = _lanes(issuer)
    previous_codes: dict[str, str] = {}

    def settle(piece: _Slice, outcome) -> bool:
        nonlocal previous_codes
        if isinstance(outcome, CodeRefused):
            job_finish(
                job, FAILED, message=STOPPED.format(reason=outcome.reason.label, hint=RUN_AGAIN)
            )
            return False
        if isinstance(outcome, _ClaimLost | _Stopped):
            return False
        codes = outcome
        if writer is not None:
            for cells, customer in piece.rows:
                code = codes.get(customer) or previous_codes.get(customer, "")
                writer.writerow([*cells, code])
        previous_codes = codes
        return True

    if lanes == 1:
        for piece in slices:
            try:
                outcome = _commit_slice(job, piece, issuer, turns, shard=None)
            except (CodeRefused, _ClaimLost) as stop:
                outcome = stop
            if not settle(piece, outcome):
                return False
        return True

    inboxes = [queue.SimpleQueue() for _ in range(lanes)]

    def lane(inbox, shard):
        try:
            while (item := inbox.get()) is not None:
                piece, future = item
                try:
                    future.set_result(_commit_slice(job, piece, issuer, turns, shard=shard))
                except BaseException as error:
                    turns.stop()
                    future.set_exception(error)
        finally:
            connections.close_all()  # this thread's own

    # Each lane adds to its own counter row, so that two slices in flight never wait for
    # each other's.
    first_shard = counter_shard()
    threads = [
        threading.Thread(target=lane, args=(inbox, (first_shard + n) % COUNTER_SHARDS))
        for n, inbox in enumerate(inboxes)
    ]
    for thread in threads:
        thread.start()
    pending: deque = deque()
    try:
        previous = None
        for piece in slices:
            if previous is not None:
                piece.carried = frozenset(previous.customers).intersection(piece.customers)
            future = Future()
            inboxes[piece.number % lanes].put((piece, future))
            pending.append((piece, future))
            previous = piece
            if len(pending) == lanes and not settle(*_take(pending)):
                return False
        while pending:
            if not settle(*_take(pending)):
                return False
        return True
    finally:
        if pending:
            turns.stop()
        for inbox in inboxes:
            inbox.put(None)
        for thread in threads:
            thread.join()


def _take(pending: deque):
    piece, future = pending.popleft()
    try:
        return piece, future.result()
    except (CodeRefused, _ClaimLost, _Stopped) as outcome:
        return piece, outcome


# Errors after which a slice is rolled back and done again: it waited on another's lock in a
# cycle (the database broke it, or the lock timeout did, for a cycle through a slice waiting
# for its turn), or an issue under the same key came first.
_AGAIN = ("40P01", "55P03")


def _commit_slice(job: Assignment, piece: _Slice, issuer, turns: _Turns, *, shard):
    """Issue to the slice's customers and record the job's counts, in one transaction, after
    the slice before it committed; return customer → code string."""
    for _attempt in range(5):
        try:
            return _slice_transaction(job, piece, issuer, turns, shard)
        except IntegrityError:
            # An issue under the same assignment key in this pool's fallback (an assignment
            # from another pool) came first: done again, the slice finds that customer's code.
            continue
        except OperationalError as error:
            if getattr(error.__cause__, "sqlstate", None) not in _AGAIN:
                raise
            continue
    raise CodeRefused(Refusal.KEY_REUSED)


def _slice_transaction(job: Assignment, piece: _Slice, issuer, turns: _Turns, shard):
    with transaction.atomic():
        codes, new, from_fallback, short = {}, set(), 0, []
        todo = [c for c in dict.fromkeys(piece.customers) if c not in piece.carried]
        if todo:
            codes, new, from_fallback, short = issuer.issue(todo, shard=shard)
        if not turns.wait(piece.number):
            raise _Stopped
        now = timezone.now()
        # Ours still? A job taken over by another worker (this one was thought dead) stops
        # here: its slice is rolled back, and the other goes on from the committed rows.
        held = job_held(job).select_for_update()
        current = held.first()
        if current is None:
            raise _ClaimLost
        room = Assignment.SAMPLE
        # A carried customer the slice before left without a code is short here too.
        short_set = set(short) | (piece.carried & turns.short)
        short_rows = sum(1 for c in piece.customers if c in short_set)
        held.update(
            rows_done=F("rows_done") + piece.size,
            customers_read=F("customers_read") + len(piece.customers),
            codes_issued=F("codes_issued") + len(new),
            # Rows of customers who got no new code yet have one: held before, or listed
            # twice.
            already_held=F("already_held") + len(piece.customers) - len(new) - short_rows,
            from_fallback=F("from_fallback") + from_fallback,
            rows_rejected=F("rows_rejected") + len(piece.rejected),
            shortfall=F("shortfall") + len(short),
            rejected_sample=(current.rejected_sample + piece.rejected)[:room],
            short_sample=(current.short_sample + short)[:room],
            progress_done=piece.progress,
            heartbeat_at=now,
        )
    turns.commit(piece.number, frozenset(short_set))
    return codes


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

    @contextmanager
    def pool_turn(self, job: Assignment, turns: "_Turns"):
        # code_issue_batch serializes the calls under one key itself.
        yield True

    def issue(self, customers: list[str], *, shard=None):
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

    @contextmanager
    def pool_turn(self, job: Assignment, turns: "_Turns"):
        """Assignments of one pool run one at a time, a second waiting with its heartbeat
        kept: of two overlapping lists, the second finds the customers the first gave a code
        as holding one (rather than both issuing to them and one giving way, slice by slice).
        Yield False if the job was taken over while waiting."""
        key = [f"assignment:{self.pool.pk}"]
        with connection.cursor() as cursor:
            while True:
                cursor.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", key)
                if cursor.fetchone()[0]:
                    break
                if not job_beat(job):
                    yield False
                    return
                time.sleep(POOL_TURN_POLL_SECONDS)
            try:
                yield True
            finally:
                # A connection gone took its session's locks with it.
                with suppress(DatabaseError):
                    cursor.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", key)

    def issue(self, customers: list[str], *, shard=None):
        with connection.cursor() as cursor:
            _plan_for_lookups(cursor)
            codes = _held_codes(cursor, self.pool_ids, customers)
            todo = [c for c in customers if c not in codes]
            new = set()
            from_fallback = 0
            for pool in (self.pool, self.fallback):
                if not todo or pool is None:
                    break
                claimed = self._claim(cursor, pool, todo, shard)
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

    def _claim(self, cursor, pool: Pool, customers: list[str], shard) -> dict[str, str]:
        start = self.start.get(pool.pk, 0)
        params = {
            "count": len(customers),
            "pool": pool.pk,
            "now": timezone.now(),
            "available": Code.Status.AVAILABLE,
            "issued": Code.Status.ISSUED,
            "caller": self.caller,
            "shard": counter_shard() if shard is None else shard,
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
            # The codes and their customers as one JSON list, and the codes' id range: joined
            # to the codes on an estimate, the claim read all the table's codes (a hash join
            # of 2,000,000 rows, 1 s for 20,000 customers) or paired every code with every
            # customer (a nested loop, 70 s). JSON rather than arrays: psycopg builds an
            # array parameter in Python, element by element (7 ms for 5,000 ids, 2 here).
            cursor.execute(
                f"""
                WITH claimed AS (
                    UPDATE {Code._meta.db_table} c SET status = %(issued)s,
                        issued_to = w.customer, issued_at = %(now)s
                    FROM (
                        SELECT (e->>0)::bigint, e->>1, e->>2
                        FROM json_array_elements(%(claims)s::json) AS e
                    ) AS w(id, customer, key)
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
                    "claims": json.dumps(
                        [
                            (code_id, c, batch_key(ASSIGNMENT_KEY, c))
                            for code_id, c in zip(ids, taking, strict=True)
                        ]
                    ),
                    "first": ids[0],
                    "last": ids[-1],
                },
            )
            # Two lanes claim beside each other: the start only moves on.
            self.start[pool.pk] = max(self.start.get(pool.pk, 0), ids[-1] + 1)
        claimed = dict(cursor.fetchall()) if ids else {}
        if len(claimed) < len(customers) and start:
            # Short after the starting point: look from the first code (released codes, codes
            # whose issue window opened, claims of others rolled back).
            self.start.pop(pool.pk, None)
            rest = [c for c in customers if c not in claimed]
            claimed.update(self._claim(cursor, pool, rest, shard))
        return claimed


def _plan_for_lookups(cursor) -> None:
    """Plan the rest of the transaction's statements as the look-ups by index they are, not
    by estimates: the customers' look-up's estimate (a loop per customer) passed the threshold
    of JIT compilation, which then took 0.1 s of each 5,000 customers' 0.11 s; and while the
    issues table was small when last analyzed, each customer's look-up read it whole (20 s of
    an assignment of 1,000,000 customers, in its first 200,000)."""
    cursor.execute("SET LOCAL jit = off")
    cursor.execute("SET LOCAL enable_seqscan = off")
    # A slice waiting for its turn holds its locks: a wait on them this long is a cycle the
    # database cannot see, broken by redoing the slice.
    cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")


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
        SELECT w.customer, held.code FROM json_array_elements_text(%s::json) AS w(customer)
        CROSS JOIN LATERAL (
            SELECT c.code FROM {CodeIssue._meta.db_table} i
            JOIN {Code._meta.db_table} c ON c.id = i.code_id
            WHERE i.customer = w.customer AND i.released_at IS NULL
                AND i.pool_id + 0 = ANY(%s)
            ORDER BY i.id DESC LIMIT 1
        ) held
        """,
        [json.dumps(customers), pool_ids],
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
