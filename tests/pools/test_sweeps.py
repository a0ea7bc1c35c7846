"""Expiry, withdrawals and additions at their edges: dates at the microsecond on both sides,
slice sizes met exactly, every count of a withdrawal's report, the moments recorded (mutants
of these functions that the rest of the suite let through)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.utils import timezone

from pools import counters
from pools.code_services import (
    NOTHING_TO_WITHDRAW,
    additions,
    code_addition_counts,
    code_addition_create,
    code_addition_record,
    code_addition_undo,
    code_addition_undo_preview,
    code_issue,
    code_redeem,
    codes_expire,
    codes_withdraw,
    sweeps,
    withdrawal_rerun,
    withdrawal_run,
    withdrawals,
)
from pools.models import AdditionUndo, Code, CodeAddition, Withdrawal
from pools.services import pool_pause
from pools.signals import stock_changed
from tests.factories import NOW, counts_by_status, make_codes, make_manager, make_pool
from tests.pools.locks import row_held_elsewhere

pytestmark = pytest.mark.django_db

TICK = timedelta(microseconds=1)


def statuses(pool) -> dict:
    return dict(Code.objects.filter(pool=pool).values_list("code", "status"))


# Expiry


def test_a_code_expires_once_its_issue_end_or_available_till_is_past_not_at_it():
    pool = make_pool(launched=True)
    make_codes(pool, ["END-AT"], issue_end=NOW)
    make_codes(pool, ["END-PAST"], issue_end=NOW - TICK)
    make_codes(pool, ["TILL-AT"], available_till=NOW)
    make_codes(pool, ["TILL-PAST"], available_till=NOW - TICK)
    make_codes(pool, ["OPEN"])

    assert codes_expire(at=NOW) == {pool.pk: 2}

    assert statuses(pool) == {
        "END-AT": "available",
        "END-PAST": "expired",
        "TILL-AT": "available",
        "TILL-PAST": "expired",
        "OPEN": "available",
    }
    assert counts_by_status(pool) == {
        "available": 3,
        "issued": 0,
        "redeemed": 0,
        "expired": 2,
        "withdrawn": 0,
        "total": 5,
    }


def test_the_sweep_runs_at_now_by_default_and_leaves_codes_not_in_stock(frozen):
    pool = make_pool(launched=True)
    make_codes(pool, ["I"])
    make_codes(pool, ["A", "B"], issue_end=NOW - TICK)
    issued = code_issue(pool=pool, customer="c")
    Code.objects.filter(pk=issued.pk).update(issue_end=NOW - TICK)
    other = make_pool(launched=True)
    make_codes(other, ["O1", "O2", "O3"], available_till=NOW - TICK)
    make_codes(make_pool(launched=True), ["FRESH"], available_till=NOW)

    # Handed out before Available-till passed: issued, and redeemed, codes stay as they are.
    late = make_pool(launched=True)
    make_codes(late, ["L1", "L2"], available_till=NOW + TICK)
    late_issued = code_issue(pool=late, customer="c")
    code_redeem(code=code_issue(pool=late, customer="d").code, customer="d")
    Code.objects.filter(pool=late).update(available_till=NOW - TICK)

    # Whether the pool is live or not: its stock is what the manager reads.
    paused, draft = make_pool(launched=True), make_pool()
    pool_pause(pool=paused)
    make_codes(paused, ["P1"], issue_end=NOW - TICK)
    make_codes(draft, ["D1"], available_till=NOW - TICK)

    assert codes_expire() == {pool.pk: 2, other.pk: 3, paused.pk: 1, draft.pk: 1}
    assert Code.objects.get(pk=issued.pk).status == Code.Status.ISSUED
    assert (statuses(paused), statuses(draft)) == ({"P1": "expired"}, {"D1": "expired"})
    assert statuses(late) == {late_issued.code: "issued", "L2": "redeemed"}
    assert counts_by_status(late) == {
        "available": 0,
        "issued": 1,
        "redeemed": 1,
        "expired": 0,
        "withdrawn": 0,
        "total": 2,
    }


@pytest.mark.parametrize("count, slices", [(4, [4, 0]), (5, [4, 1]), (3, [3])])
def test_a_slice_exactly_full_goes_on_to_the_next(monkeypatch, count, slices):
    monkeypatch.setattr(sweeps, "EXPIRY_SLICE", 4)
    seen = []
    real = sweeps._expire_slice

    def counted(*args):
        outcome = real(*args)
        seen.append(outcome[0])
        return outcome

    monkeypatch.setattr(sweeps, "_expire_slice", counted)
    pool = make_pool(launched=True)
    make_codes(pool, [f"X{i}" for i in range(count)], issue_end=NOW - TICK)

    assert codes_expire(at=NOW) == {pool.pk: count}
    assert seen == slices


# Additions


def test_an_addition_counts_its_codes_as_available_and_records_when(frozen):
    pool = make_pool()
    addition = code_addition_create(pool=pool)
    assert (addition.pool, addition.codes_added, addition.added_at) == (pool, 0, None)

    code_addition_record(addition_id=addition.pk, pool_id=pool.pk, count=3)
    code_addition_record(addition_id=addition.pk, pool_id=pool.pk, count=2)

    addition.refresh_from_db()
    assert (addition.codes_added, addition.added_at) == (5, NOW)
    assert counts_by_status(pool)["available"] == 5


def test_an_addition_of_nothing_records_nothing():
    pool = make_pool()
    addition = code_addition_create(pool=pool)

    code_addition_record(addition_id=addition.pk, pool_id=pool.pk, count=0)

    addition.refresh_from_db()
    assert (addition.codes_added, addition.added_at) == (0, None)
    assert not pool.counters.exists()


# Withdrawals


def test_a_withdrawal_reports_every_count_and_its_moment(frozen):
    pool = make_pool(launched=True)
    make_codes(pool, ["AV", "IS", "RE", "EX", "WD"])
    code_issue(pool=pool, customer="c")  # AV: the first code
    Code.objects.filter(code="IS").update(status=Code.Status.ISSUED)
    Code.objects.filter(code="RE").update(status=Code.Status.REDEEMED)
    Code.objects.filter(code="EX").update(status=Code.Status.EXPIRED)
    Code.objects.filter(code="WD").update(status=Code.Status.WITHDRAWN)
    counters.pool_counts_add(
        pool_id=pool.pk, available=-4, issued=1, redeemed=1, expired=1, withdrawn=1
    )
    user = make_manager()

    withdrawal = codes_withdraw(
        pool=pool,
        codes=[" AV ", "IS", "RE", "EX", "WD", "NO1", "AV", "", "NO2"],
        user=user,
        reason="  leaked ",
    )

    stored = Withdrawal.objects.get()
    assert stored.pk == withdrawal.pk
    assert (stored.created_by, stored.reason, stored.requested) == (
        user,
        "leaked",
        "AV\nIS\nRE\nEX\nWD\nNO1\nNO2",
    )
    assert (stored.status, stored.codes_requested, stored.codes_done) == ("completed", 7, 7)
    assert (
        stored.codes_withdrawn,
        stored.from_stock,
        stored.already_withdrawn,
        stored.already_redeemed,
        stored.not_found,
        stored.not_found_sample,
        stored.finished_at,
    ) == (3, 0, 1, 1, 2, "NO1\nNO2", NOW)
    assert statuses(pool) == {
        "AV": "withdrawn",
        "IS": "withdrawn",
        "RE": "redeemed",
        "EX": "withdrawn",
        "WD": "withdrawn",
    }
    assert counts_by_status(pool) == {
        "available": 0,
        "issued": 0,
        "redeemed": 1,
        "expired": 0,
        "withdrawn": 4,
        "total": 5,
    }


def test_codes_in_stock_withdrawn_are_counted_from_stock():
    pool = make_pool(launched=True)
    make_codes(pool, ["S1", "S2", "S3"])
    make_codes(make_pool(launched=True), ["S3-ELSEWHERE", "S2"])

    withdrawal = codes_withdraw(pool=pool, codes=["S1", "S2"])

    assert (withdrawal.from_stock, withdrawal.codes_withdrawn) == (2, 2)
    assert Code.objects.filter(status=Code.Status.WITHDRAWN, pool=pool).count() == 2
    assert Code.objects.filter(status=Code.Status.AVAILABLE).count() == 3


def test_nothing_to_withdraw_is_refused_with_its_message():
    pool = make_pool(launched=True)

    for codes in (["", "  "], None):
        with pytest.raises(ValidationError) as excinfo:
            codes_withdraw(pool=pool, codes=codes)
        assert excinfo.value.messages == [NOTHING_TO_WITHDRAW]
        assert excinfo.value.code == "nothing_to_withdraw"
    with pytest.raises(ValidationError):
        codes_withdraw(pool=pool, code_ids=[])
    assert not Withdrawal.objects.exists()


def test_withdraw_by_ids_takes_only_the_pools_codes():
    pool = make_pool(launched=True)
    mine = make_codes(pool, ["I1", "I2"])
    theirs = make_codes(make_pool(launched=True), ["I1"])

    withdrawal = codes_withdraw(pool=pool, code_ids=[mine[1].pk, theirs[0].pk])
    without_reason = codes_withdraw(pool=pool, codes=["I1"], reason=None)

    assert (withdrawal.requested, withdrawal.codes_withdrawn, withdrawal.reason) == ("I2", 1, "")
    assert without_reason.reason == ""
    assert Code.objects.get(pk=theirs[0].pk).status == Code.Status.AVAILABLE


def test_a_list_at_the_limit_is_withdrawn_at_once_and_one_more_is_queued(
    monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(withdrawals, "WITHDRAW_AT_ONCE", 3)
    pool = make_pool(launched=True)
    make_codes(pool, [f"L{i}" for i in range(7)])

    with django_capture_on_commit_callbacks() as queued:
        at_once = codes_withdraw(pool=pool, codes=["L0", "L1", "L2"])
    assert (at_once.status, len(queued)) == (Withdrawal.Status.COMPLETED, 1)  # stock changed

    with django_capture_on_commit_callbacks() as queued:
        later = codes_withdraw(pool=pool, codes=["L3", "L4", "L5", "L6"])
    assert later.status == Withdrawal.Status.QUEUED
    assert Withdrawal.objects.get(pk=later.pk).codes_done == 0
    assert statuses(pool)["L3"] == "available"
    assert len(queued) == 1


def test_a_running_or_finished_withdrawal_is_left_alone_and_a_failed_one_runs_again():
    pool = make_pool(launched=True)
    make_codes(pool, ["R1"])

    def job(status):
        return Withdrawal.objects.create(
            pool=pool, requested="R1", codes_requested=1, status=status, heartbeat_at=timezone.now()
        ).pk

    for status in (Withdrawal.Status.RUNNING, Withdrawal.Status.COMPLETED, "failed"):
        left = withdrawal_run(withdrawal_id=job(status))
        assert (left.status, left.codes_done) == (status, 0)
    assert statuses(pool) == {"R1": "available"}

    failed = Withdrawal.objects.get(status="failed")
    withdrawal_rerun(withdrawal=failed)
    again = withdrawal_run(withdrawal_id=failed.pk)

    assert (again.status, again.codes_done, again.codes_withdrawn) == ("completed", 1, 1)
    with pytest.raises(ValidationError, match="Only a failed withdrawal can be run again."):
        withdrawal_rerun(withdrawal=again)


def test_a_failed_withdrawal_records_why_and_when(frozen, monkeypatch):
    pool = make_pool(launched=True)
    make_codes(pool, ["F1"])

    def broken(withdrawal, chunk):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(withdrawals, "_withdraw_slice", broken)
    with pytest.raises(RuntimeError):
        codes_withdraw(pool=pool, codes=["F1"])

    stored = Withdrawal.objects.get()
    assert (stored.status, stored.message, stored.finished_at) == (
        Withdrawal.Status.FAILED,
        "The withdrawal stopped on an unexpected error; the codes withdrawn so far stay "
        "withdrawn. Run it again, or tell an administrator: disk on fire",
        NOW,
    )


def test_the_sample_of_codes_not_found_stops_at_its_size_across_slices(settings, monkeypatch):
    monkeypatch.setattr(withdrawals, "NOT_FOUND_SAMPLE", 3)
    settings.WITHDRAW_SLICE = 2
    pool = make_pool(launched=True)
    make_codes(pool, ["HERE"])

    withdrawal = codes_withdraw(pool=pool, codes=["N1", "HERE", "N2", "N3", "N4", "N5"])

    assert (withdrawal.not_found, withdrawal.not_found_sample) == (5, "N1\nN2\nN3")
    assert withdrawal.codes_withdrawn == 1


# Undo


def add_codes(pool, codes, **fields) -> CodeAddition:
    addition = code_addition_create(pool=pool)
    Code.objects.bulk_create(Code(pool=pool, code=c, addition=addition, **fields) for c in codes)
    code_addition_record(addition_id=addition.pk, pool_id=pool.pk, count=len(codes))
    return addition


def test_undo_preview_counts_every_kind_and_changes_nothing():
    pool = make_pool(launched=True)
    addition = add_codes(pool, ["A1", "A2", "A3", "A4", "A5", "A6"])
    code_issue(pool=pool, customer="c1")  # A1
    code_redeem(code=code_issue(pool=pool, customer="c2").code, customer="c2")  # A2
    Code.objects.filter(code="A3").update(status=Code.Status.WITHDRAWN)
    Code.objects.filter(code="A4").update(status=Code.Status.EXPIRED)

    preview = code_addition_undo_preview(addition=addition)

    assert code_addition_counts(addition=addition) == {
        "issued": 1,
        "redeemed": 1,
        "withdrawn": 1,
        "expired": 1,
        "available": 2,
    }
    assert (
        preview.removed,
        preview.kept_issued,
        preview.kept_redeemed,
        preview.kept_withdrawn,
        preview.kept_used,
        preview.kept,
    ) == (3, 1, 1, 1, 0, 3)
    assert Code.objects.filter(pool=pool).count() == 6


def test_undo_of_a_multiple_use_pool_keeps_codes_issued_or_redeemed(frozen):
    pool = make_pool(launched=True, allow_multiple_use=True)
    addition = add_codes(pool, ["M1", "M2", "M3", "M4"])
    code_issue(pool=pool, customer="c1")  # M1: handed out, still available
    Code.objects.filter(code="M2").update(times_redeemed=1)
    Code.objects.filter(code="M4").update(status=Code.Status.EXPIRED)
    counters.pool_counts_add(pool_id=pool.pk, available=-1, expired=1)
    user = make_manager()

    preview = code_addition_undo_preview(addition=addition)
    outcome = code_addition_undo(addition=addition, user=user)

    assert (preview.removed, preview.kept_used) == (2, 2)
    assert (outcome.removed, outcome.kept_used, outcome.kept) == (2, 2, 2)
    assert sorted(Code.objects.filter(pool=pool).values_list("code", flat=True)) == ["M1", "M2"]
    assert counts_by_status(pool) == {
        "available": 2,
        "issued": 0,
        "redeemed": 0,
        "expired": 0,
        "withdrawn": 0,
        "total": 2,
    }
    addition.refresh_from_db()
    assert (addition.codes_removed, addition.removed_at, addition.removed_by) == (2, NOW, user)


def test_undo_walks_slices_exactly_full_and_counts_each_status(settings, monkeypatch):
    settings.UNDO_SLICE = 2
    pool = make_pool(launched=True)
    addition = add_codes(pool, ["U1", "U2", "U3", "U4"])
    make_codes(pool, ["KEPT"])
    Code.objects.filter(code__in=["U2", "U3"]).update(status=Code.Status.EXPIRED)
    counters.pool_counts_add(pool_id=pool.pk, available=-2, expired=2)

    outcome = code_addition_undo(addition=addition)

    assert (outcome.removed, outcome.kept) == (4, 0)
    assert list(Code.objects.filter(pool=pool).values_list("code", flat=True)) == ["KEPT"]
    assert counts_by_status(pool) == {
        "available": 1,
        "issued": 0,
        "redeemed": 0,
        "expired": 0,
        "withdrawn": 0,
        "total": 1,
    }
    addition.refresh_from_db()
    assert addition.codes_removed == 4


def test_an_undo_that_removes_nothing_leaves_who_removed_the_codes_and_when(monkeypatch):
    pool = make_pool(launched=True)
    addition = add_codes(pool, ["G1", "G2"])
    code_issue(pool=pool, customer="c")  # G1
    ann, bob = make_manager("ann"), make_manager("bob")
    first = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
    monkeypatch.setattr(timezone, "now", lambda: first)
    assert code_addition_undo(addition=addition, user=ann).removed == 1

    monkeypatch.setattr(timezone, "now", lambda: first + timedelta(hours=1))
    outcome = code_addition_undo(addition=addition, user=bob)

    assert (outcome.removed, outcome.kept_issued) == (0, 1)
    addition.refresh_from_db()
    assert (addition.codes_removed, addition.removed_at, addition.removed_by) == (1, first, ann)


def test_the_very_first_code_of_the_database_expires_and_is_undone_too():
    """Both sweeps walk by id from the start: the code with id 1 (a new database's first)
    must not be stepped over."""
    pool = make_pool(launched=True)
    Code.objects.create(pk=1, pool=pool, code="FIRST", issue_end=NOW - TICK)
    counters.pool_counts_add(pool_id=pool.pk, available=1)

    assert codes_expire(at=NOW) == {pool.pk: 1}

    addition = code_addition_create(pool=pool)
    Code.objects.create(pk=2, pool=pool, code="SECOND", addition=addition)
    Code.objects.filter(pk=1).update(addition=addition)
    code_addition_record(addition_id=addition.pk, pool_id=pool.pk, count=1)

    assert code_addition_undo(addition=addition).removed == 2
    assert not Code.objects.filter(pool=pool).exists()


@pytest.fixture
def stock_news():
    """The pools whose stock_changed signal was sent (what alerts and refills listen to)."""
    heard = []

    def receiver(sender, pool, **kwargs):
        heard.append(pool.pk)

    stock_changed.connect(receiver)
    yield heard
    stock_changed.disconnect(receiver)


def test_the_sweep_announces_the_pools_it_expired_codes_of_and_only_those(
    stock_news, django_capture_on_commit_callbacks
):
    touched = make_pool(launched=True)
    make_codes(touched, ["OLD"], issue_end=NOW - TICK)
    untouched = make_pool(launched=True)
    make_codes(untouched, ["NEW"])

    with django_capture_on_commit_callbacks(execute=True):
        codes_expire(at=NOW)

    assert stock_news == [touched.pk]
    assert untouched.pk not in stock_news


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_the_sweep_skips_a_code_being_issued_and_expires_it_next_time():
    """A second connection holds a row lock on one expirable code (as an issue in progress
    does): the sweep must not wait for it (the lock timeout set here would make that an
    error); the next sweep expires it."""
    pool = make_pool(launched=True)
    make_codes(pool, ["HELD", "FREE"], issue_end=NOW - TICK)
    with row_held_elsewhere(f"SELECT id FROM {Code._meta.db_table} WHERE code = 'HELD' FOR UPDATE"):
        assert codes_expire(at=NOW) == {pool.pk: 1}
    assert statuses(pool) == {"HELD": "available", "FREE": "expired"}
    assert codes_expire(at=NOW) == {pool.pk: 1}


def test_a_sweep_one_code_at_a_time_expires_every_code(monkeypatch):
    monkeypatch.setattr(sweeps, "EXPIRY_SLICE", 1)
    pool = make_pool(launched=True)
    make_codes(pool, ["X1", "X2", "X3"], issue_end=NOW - TICK)

    assert codes_expire(at=NOW) == {pool.pk: 3}
    assert set(statuses(pool).values()) == {"expired"}


# A sweep killed between a slice's codes and the pool's counts


class Killed(BaseException):
    """The process ends here (SIGKILL): no handler runs."""


def counted_as_they_are(pool) -> dict:
    """The pool's counters, as they are and as its codes say."""
    codes = Code.objects.filter(pool=pool).values("status").annotate(n=Count("id"))
    actual = {row["status"]: row["n"] for row in codes}
    statuses = ("available", "issued", "redeemed", "expired", "withdrawn")
    said = {status: actual.get(status, 0) for status in statuses}
    said["total"] = sum(actual.values())
    return {"counted": counts_by_status(pool), "codes": said}


@pytest.mark.parametrize("sweep", ["expiry", "withdrawal", "undo"])
def test_a_sweep_killed_while_it_counts_a_slice_leaves_the_pools_counts_true(
    sweep, settings, monkeypatch
):
    """A slice's codes and the pool's counts of them commit together: a process killed in
    between leaves both as they were, and the next run (the job's next attempt) ends with every
    code dealt with and the counts true."""
    monkeypatch.setattr(sweeps, "EXPIRY_SLICE", 2)
    settings.WITHDRAW_SLICE = settings.UNDO_SLICE = 2
    pool = make_pool(launched=True)
    codes = [f"S{i}" for i in range(5)]
    addition = add_codes(pool, codes, issue_end=NOW - TICK if sweep == "expiry" else None)
    if sweep == "expiry":
        module, run = sweeps, lambda: codes_expire(at=NOW)
    elif sweep == "withdrawal":
        job = Withdrawal.objects.create(pool=pool, requested="\n".join(codes), codes_requested=5)
        module, run = withdrawals, lambda: withdrawal_run(withdrawal_id=job.pk)
    else:
        job = additions.addition_undo_start(addition=addition)
        module, run = additions, lambda: additions.addition_undo_run(undo_id=job.pk)
    real = module.pool_counts_add
    calls = []

    def killed_counting_the_second_slice(**counts):
        calls.append(counts)
        if len(calls) == 2:
            raise Killed
        real(**counts)

    monkeypatch.setattr(module, "pool_counts_add", killed_counting_the_second_slice)
    with pytest.raises(Killed):
        run()
    monkeypatch.setattr(module, "pool_counts_add", real)

    counts = counted_as_they_are(pool)
    assert counts["counted"] == counts["codes"]
    assert counts["codes"]["available"] == 3  # the first slice's two codes, no more
    if sweep != "expiry":
        stale = timezone.now() - timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT + 1)
        type(job).objects.filter(pk=job.pk).update(heartbeat_at=stale)
    run()
    counts = counted_as_they_are(pool)
    assert counts["counted"] == counts["codes"]
    assert counts["codes"]["available"] == 0
    if sweep == "undo":
        assert AdditionUndo.objects.get(pk=job.pk).removed == 5
