"""The records of additions of codes to a pool (an upload, a paste, a generation run), and
their undo.

An undo's report stores counts (removed, kept by status), worded when shown; the one text it
stores, why it failed, is written in the language of whoever started it (jobs.job_speaking)."""

from collections import Counter
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..counters import pool_counts_add
from ..jobs import (
    DATABASE_GONE,
    FAILED,
    Claim,
    ClaimLost,
    job_claim,
    job_enqueue_on_commit,
    job_finish,
    job_speaking,
    job_step,
)
from ..models import (
    AdditionUndo,
    Code,
    CodeAddition,
    CodeIssue,
    Pool,
)
from ..signals import stock_changed_on_commit


def code_addition_create(*, pool: Pool) -> CodeAddition:
    """Open a record of codes about to be added to `pool` (by an upload, a paste or a
    generation run)."""
    return CodeAddition.objects.create(pool=pool)


def code_addition_record(*, addition_id: int, pool_id: int, count: int) -> None:
    """Count `count` codes just added to a pool as available, and as part of the addition, in
    the caller's transaction (the one that added them)."""
    if not count:
        return
    pool_counts_add(pool_id=pool_id, available=count)
    CodeAddition.objects.filter(pk=addition_id).update(
        codes_added=F("codes_added") + count, added_at=timezone.now()
    )


# What an undo removes: codes never handed out (expired ones were available until they expired).
# A code of these statuses may still have a history: a multiple-use code handed out, or a
# single-use one issued and given back to stock (code_release); it is kept (kept_used).
UNDO_FAILED = _(
    "The undo stopped on an unexpected error; the codes removed so far stay removed. "
    "Start it again from the import's report, or tell an administrator: {error}"
)
_REMOVABLE = (Code.Status.AVAILABLE, Code.Status.EXPIRED)


@dataclass
class UndoOutcome:
    removed: int = 0
    kept_issued: int = 0
    kept_redeemed: int = 0
    kept_withdrawn: int = 0
    # Codes still available (or expired) but handed out before: multiple-use codes handed out or
    # redeemed, single-use ones given back to stock. They have a history.
    kept_used: int = 0

    @property
    def kept(self) -> int:
        return self.kept_issued + self.kept_redeemed + self.kept_withdrawn + self.kept_used


def code_addition_counts(*, addition: CodeAddition) -> dict[str, int]:
    """Return how many of the addition's codes there are now, by status (served by the
    (addition, id) index, which includes the status: no scan of the pool)."""
    return dict(
        Code.objects.filter(addition=addition)
        .values("status")
        .annotate(n=models.Count("id"))
        .values_list("status", "n")
    )


def code_addition_undo_preview(*, addition: CodeAddition) -> UndoOutcome:
    """Return what undoing the addition would do now, without doing it."""
    counts = code_addition_counts(addition=addition)
    removable = sum(counts.get(status, 0) for status in _REMOVABLE)
    removable_now = _removable(addition).count() if removable else 0
    return UndoOutcome(
        removed=removable_now,
        kept_issued=counts.get(Code.Status.ISSUED, 0),
        kept_redeemed=counts.get(Code.Status.REDEEMED, 0),
        kept_withdrawn=counts.get(Code.Status.WITHDRAWN, 0),
        kept_used=removable - removable_now,
    )


def _removable(addition: CodeAddition):
    return (
        Code.objects.filter(addition=addition, status__in=_REMOVABLE)
        .exclude(models.Exists(CodeIssue.objects.filter(code=models.OuterRef("pk"))))
        .exclude(times_redeemed__gt=0)
    )


def addition_undo_start(*, addition: CodeAddition, user=None) -> AdditionUndo:
    """Queue the undo of an addition as a job (see addition_undo_run) and return it; an undo of
    the same addition already queued or running is returned instead of a second one."""
    with transaction.atomic():
        CodeAddition.objects.select_for_update().filter(pk=addition.pk).first()
        undo = addition.undos.filter(status__in=UNDO_ACTIVE).first()
        if undo is None:
            undo = _undo_create(addition, user)
            job_enqueue_on_commit(undo)
    return undo


def _undo_create(addition: CodeAddition, user) -> AdditionUndo:
    counts = code_addition_counts(addition=addition)
    return AdditionUndo.objects.create(
        addition=addition,
        pool_id=addition.pool_id,
        created_by=user,
        progress_total=sum(counts.values()),
        enqueued_at=timezone.now(),
    )


UNDO_ACTIVE = (AdditionUndo.Status.QUEUED, AdditionUndo.Status.RUNNING)


def addition_undo_run(*, undo_id: int) -> AdditionUndo | None:
    """Run (or resume) an undo as a job (pools.jobs): remove the codes its addition brought in
    that were never handed out, keep the others (issued, redeemed, withdrawn, or handed out
    before: multiple-use codes, codes given back to stock), which have a history; then count
    what was kept into its report.

    Walks the addition's codes in id order, UNDO_SLICE (a setting) at a time, each slice its own
    transaction with the pool's counts and the job's progress, so that issuing from the pool
    never waits long and a job taken over after a kill goes on after the last committed slice;
    codes being issued meanwhile are skipped (and kept)."""
    undo = job_claim(AdditionUndo, undo_id)
    if isinstance(undo, Claim):
        return AdditionUndo.objects.filter(pk=undo_id).first()
    addition = undo.addition
    try:
        while True:
            with transaction.atomic():
                last, scanned, gone = _undo_slice(addition, undo.last_id)
                if last is None:
                    break
                _undo_record(undo, addition, last, scanned, gone)
    except ClaimLost:
        return AdditionUndo.objects.filter(pk=undo_id).first()
    except DATABASE_GONE:
        raise
    except Exception as error:
        with job_speaking(undo):
            message = UNDO_FAILED.format(error=error)
        job_finish(undo, FAILED, message=message)
        raise
    kept = code_addition_undo_preview(addition=addition)
    job_finish(
        undo,
        AdditionUndo.Status.COMPLETED,
        kept_issued=kept.kept_issued,
        kept_redeemed=kept.kept_redeemed,
        kept_withdrawn=kept.kept_withdrawn,
        kept_used=kept.kept_used,
    )
    return undo


def _undo_record(undo: AdditionUndo, addition: CodeAddition, last: int, scanned: int, gone):
    """Record a slice in the caller's transaction: the pool's counts, the addition's record and
    the job's progress, or raise ClaimLost (rolling the slice back) if the job is not ours."""
    removed = sum(gone.values())
    job_step(
        undo,
        last_id=last,
        progress_done=F("progress_done") + scanned,
        removed=F("removed") + removed,
    )
    if not removed:
        return
    pool_counts_add(
        pool_id=addition.pool_id,
        available=-gone[Code.Status.AVAILABLE],
        expired=-gone[Code.Status.EXPIRED],
    )
    CodeAddition.objects.filter(pk=addition.pk).update(
        codes_removed=F("codes_removed") + removed,
        removed_at=timezone.now(),
        removed_by=undo.created_by,
    )
    stock_changed_on_commit(addition.pool)


def code_addition_undo(*, addition: CodeAddition, user=None) -> UndoOutcome:
    """Undo an addition here and now, as a job run in this process rather than by a worker (the
    shell, scripts, benchmarks); return what was removed and what was kept."""
    undo = _undo_create(addition, user)
    undo = addition_undo_run(undo_id=undo.pk)
    return UndoOutcome(
        removed=undo.removed,
        kept_issued=undo.kept_issued,
        kept_redeemed=undo.kept_redeemed,
        kept_withdrawn=undo.kept_withdrawn,
        kept_used=undo.kept_used,
    )


def _undo_slice(addition: CodeAddition, after: int) -> tuple[int | None, int, Counter]:
    """Delete the removable codes among the addition's next UNDO_SLICE codes after id `after`;
    return the last id looked at (None when there are no more), how many were looked at, and
    how many went, by status.

    Walking by id (keyset) rather than asking again for "the first removable codes" each time
    matters: deleted rows stay in the index until vacuumed, and every slice would step over all
    the slices before it (measured on a million codes: 159 s, against 17 s walking by id).
    """
    if connection.vendor == "postgresql":
        table = Code._meta.db_table
        # A code with a history (see _REMOVABLE) is kept, and the database would refuse it.
        used = (
            f" AND NOT EXISTS (SELECT 1 FROM {CodeIssue._meta.db_table} i WHERE i.code_id = c.id)"
            " AND c.times_redeemed = 0"
        )
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                WITH scanned AS (
                    SELECT id FROM {table}
                    WHERE addition_id = %(addition)s AND id > %(after)s
                    ORDER BY id LIMIT %(slice)s
                ), doomed AS (
                    SELECT c.id FROM {table} c JOIN scanned USING (id)
                    WHERE c.status = ANY(%(removable)s){used}
                    FOR UPDATE OF c SKIP LOCKED
                ), gone AS (
                    DELETE FROM {table} WHERE id IN (SELECT id FROM doomed) RETURNING status
                )
                SELECT (SELECT max(id) FROM scanned), (SELECT count(*) FROM scanned),
                    (SELECT count(*) FROM gone WHERE status = %(available)s),
                    (SELECT count(*) FROM gone WHERE status = %(expired)s)
                """,
                {
                    "addition": addition.pk,
                    "after": after,
                    "slice": settings.UNDO_SLICE,
                    "removable": list(_REMOVABLE),
                    "available": Code.Status.AVAILABLE,
                    "expired": Code.Status.EXPIRED,
                },
            )
            last, scanned, available, expired = cursor.fetchone()
        gone = Counter({Code.Status.AVAILABLE: available, Code.Status.EXPIRED: expired})
        return last, scanned, gone
    scanned = list(
        Code.objects.filter(addition=addition, pk__gt=after)
        .order_by("pk")
        .values_list("pk", flat=True)[: settings.UNDO_SLICE]
    )
    if not scanned:
        return None, 0, Counter()
    rows = list(_removable(addition).filter(pk__in=scanned).values_list("pk", "status"))
    Code.objects.filter(pk__in=[pk for pk, _ in rows]).delete()
    return scanned[-1], len(scanned), Counter(status for _, status in rows)
