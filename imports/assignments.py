"""Assignments: issue a code of a pool to every customer of an uploaded list, as one
job, and hand the list back with a Code column.

Here rather than in pools because the list is read with imports' readers (CSV, XLSX and the
rest, with their checks); the issuing itself is pools' codes_issue_many (the core of batches),
so that every rule of issuing holds (one code per customer, issue windows, pause and end, the
fallback pool, what a customer "holds") and pools' tables are written by pools alone.

Every customer's issue is recorded under the key "assignment:<customer>" in the pool, and a
customer who already holds a live code of the pool gets it back: running the same list again,
or two overlapping lists at the same time, never gives anyone a second code (the key is unique
per pool, so of two concurrent claims for one customer only one commits). A customer whose code
was withdrawn or expired gets a fresh one (counted as replaced); one who redeemed theirs gets
nothing (counted as already redeemed; their Code cell stays empty): see pools'
code_services/holdings.py.

On PostgreSQL, from a pool of single-use codes, each slice of the list is claimed set-based
(one statement per pool for the whole slice, not a call per customer), and the list with codes
is written while the slices commit (assignment_results.py). The
slices go to two connections in turn (lanes, each its own thread), so that one slice's
statements run while the one before it commits, on the database's other core (a job took 85 s
for 1,000,000 customers on one connection, 50 s on two); they commit in file order. The
assignments of one pool run one at a time.
"""

import io
import logging
import queue
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import Future
from contextlib import contextmanager, suppress

from django.conf import settings
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
from django.utils.translation import gettext_lazy

from pools.code_services import batch_key, codes_issue_many, pool_fallback
from pools.counters import COUNTER_SHARDS, counter_shard
from pools.exports import FormulaSafeWriter
from pools.jobs import (
    DATABASE_GONE,
    FAILED,
    Claim,
    ClaimLost,
    JobPace,
    job_beat,
    job_claim,
    job_finish,
    job_held,
    job_speaking,
)
from pools.refusals import CodeRefused, Refusal

# The list with codes is written by assignment_results; named here as the job's steps call it.
from .assignment_results import RESULT_COLUMN, plan_for_lookups
from .assignment_results import result_store as _store_result
from .assignment_results import result_write as _write_result
from .assignment_services import (  # noqa: F401 (callers import the job's services from here)
    ASSIGNMENT_KEY,
    POOL_NOT_ACTIVE,
    assignment_release,
    assignment_rerun,
    assignment_start,
)
from .assignment_slices import _Slice, _slices
from .customer_lists import open_customer_list
from .models import Assignment
from .templates_download import column_title

logger = logging.getLogger(__name__)

STOPPED = gettext_lazy(
    "The pool stopped issuing (%(reason)s); the customers so far have their codes. %(hint)s"
)
RUN_AGAIN = gettext_lazy("Run it again once the pool issues again.")
# How often an assignment waiting for another of the same pool to finish looks again.
POOL_TURN_POLL_SECONDS = 0.5
# The longest a slice waits for a lock before it is rolled back and done again (see
# _SliceIssuer.issue).
LOCK_TIMEOUT = "10s"


def assignment_run(*, assignment_id: int) -> Assignment | None:
    """Run (or resume) an assignment as a job (pools.jobs): claim it, issue slice by slice, each
    slice committed with its counts, then store the list with codes. A job finished, or running
    in a live worker, is left alone."""
    job = job_claim(Assignment, assignment_id)
    if isinstance(job, Claim):
        return Assignment.objects.filter(pk=assignment_id).first()
    # Its message and rejected rows' reasons are read by whoever started it, in their language.
    with job_speaking(job):
        return _run(job)


def _run(job: Assignment) -> Assignment:
    try:
        with tempfile.TemporaryFile() as out:
            text = io.TextIOWrapper(out, encoding="utf-8", newline="")
            # From the first row, each slice's rows are written with their codes once the
            # slice commits; a job resumed after a kill looks its earlier rows' codes up.
            writer = FormulaSafeWriter(text) if job.rows_done == 0 else None
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


class _Stopped(Exception):
    """An earlier slice stopped the job: this one is rolled back."""


class _Turns:
    """The order slices commit in: the file's, so that the committed rows are always the first
    rows_done of the list (a resumed job starts after them) and the counts follow the rows.
    Also holds the last slice's shortfall."""

    def __init__(self):
        self._changed = threading.Condition()
        self.committed = -1
        self.stopped = False
        self.short = frozenset()
        self.pace = JobPace()

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
            writer.writerow([*table.header, column_title(RESULT_COLUMN)])
        with issuer.pool_turn(job, turns) as ours:
            if not ours:
                return False
            slices = _slices(job, table, turns.pace)
            return _issue_in_order(job, slices, issuer, turns, writer)


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
                job, FAILED, message=STOPPED % {"reason": outcome.reason.label, "hint": RUN_AGAIN}
            )
            return False
        if isinstance(outcome, ClaimLost | _Stopped):
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
            except (CodeRefused, ClaimLost) as stop:
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
    except (CodeRefused, ClaimLost, _Stopped) as outcome:
        return piece, outcome


# Errors after which a slice is rolled back and done again: it waited on another's lock in a
# cycle (the database broke it, or the lock timeout did, for a cycle through a slice waiting
# for its turn), or an issue under the same key came first.
_AGAIN = ("40P01", "55P03")


def _commit_slice(job: Assignment, piece: _Slice, issuer, turns: _Turns, *, shard):
    """Issue to the slice's customers and record the job's counts, in one transaction, after
    the slice before it committed; return customer → code string."""
    since = turns.pace.started()
    for _attempt in range(5):
        try:
            codes = _slice_transaction(job, piece, issuer, turns, shard)
            turns.pace.committed(piece.size, since)
            return codes
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
        codes, new, from_fallback, short, (replaced, redeemed) = {}, set(), 0, [], (0, ())
        todo = [c for c in dict.fromkeys(piece.customers) if c not in piece.carried]
        if todo:
            codes, new, from_fallback, short, (replaced, redeemed) = issuer.issue(todo, shard=shard)
        if not turns.wait(piece.number):
            raise _Stopped
        now = timezone.now()
        # Ours still? A job taken over by another worker (this one was thought dead) stops
        # here: its slice is rolled back, and the other goes on from the committed rows.
        held = job_held(job).select_for_update()
        current = held.first()
        if current is None:
            raise ClaimLost
        room = Assignment.SAMPLE
        # A carried customer the slice before left without a code is short here too.
        short_set = set(short) | (piece.carried & turns.short)
        short_rows = sum(1 for c in piece.customers if c in short_set)
        redeemed_rows = sum(1 for c in piece.customers if c in redeemed)
        held.update(
            rows_done=F("rows_done") + piece.size,
            customers_read=F("customers_read") + len(piece.customers),
            codes_issued=F("codes_issued") + len(new),
            codes_replaced=F("codes_replaced") + replaced,
            # Rows of customers who got no new code yet have one: held before, or listed
            # twice.
            already_held=F("already_held")
            + (len(piece.customers) - len(new) - short_rows - redeemed_rows),
            already_redeemed=F("already_redeemed") + redeemed_rows,
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
    slice's transaction, through pools' codes_issue_many (once per customer, each issue under
    its assignment key): return (customer → code string, customers with a new code, how many
    of those came from the fallback, customers left without one, (how many new codes replaced
    a dead one, the customers who redeemed theirs and get nothing))."""

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
        return _SetIssuer(job) if set_based else _SliceIssuer(job)

    @contextmanager
    def pool_turn(self, job: Assignment, turns: "_Turns"):
        # Two assignments issuing to one customer at once: the assignment key is unique in the
        # pool, so one slice's claim fails and that slice is done again (see _commit_slice).
        yield True

    def issue(self, customers: list[str], *, shard=None):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                plan_for_lookups(cursor)
                # A slice waiting for its turn holds its locks: a wait on them this long is a
                # cycle the database cannot see, broken by redoing the slice.
                cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        outcome = codes_issue_many(
            pool=self.pool,
            customers=customers,
            keys={c: batch_key(ASSIGNMENT_KEY, c) for c in customers},
            caller=self.caller,
            once_per_customer=True,
            shard=shard,
        )
        codes, new, from_fallback = {}, set(), 0
        for issued in outcome.issued:
            codes[issued.customer] = issued.code.code
            if not issued.again:
                new.add(issued.customer)
                from_fallback += issued.from_fallback
        extra = (len(outcome.replaced), frozenset(outcome.redeemed))
        return codes, new, from_fallback, outcome.short, extra


class _SetIssuer(_SliceIssuer):
    """The PostgreSQL form for single-use codes: pools' claim takes the slice's codes in one
    statement per pool (the pool, then its fallback), and the slices go to lanes (_lanes)."""

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
