"""A pool's life after launch: pause, resume, end; withdrawing codes; undoing an addition."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db.models import F
from django.utils import timezone

from pools import counters
from pools.code_services import (
    code_addition_create,
    code_addition_record,
    code_addition_undo,
    code_addition_undo_preview,
    code_check,
    code_issue,
    code_mark_issued,
    code_redeem,
    codes_withdraw,
    withdrawals,
)
from pools.models import Code, CodeAddition, Pool, PoolEvent, Withdrawal
from pools.refusals import Refusal
from pools.selectors import pool_stock
from pools.services import (
    END_NEEDS_LAUNCHED,
    PAUSE_NEEDS_ACTIVE,
    RESUME_NEEDS_PAUSED,
    pool_end,
    pool_launch,
    pool_pause,
    pool_resume,
    pool_update,
)
from tests.factories import counts_by_status, make_codes, make_manager, make_pool, refusal

pytestmark = pytest.mark.django_db


# Pause, resume, end


def test_pause_refuses_issue_mark_and_redeem_then_resume_allows_them():
    manager = make_manager()
    pool = make_pool(launched=True)
    make_codes(pool, ["P1", "P2", "P3"])
    held = code_issue(pool=pool, customer="c1")

    event = pool_pause(pool=pool, user=manager, reason="Leak under investigation")

    assert (event.action, event.user, event.reason) == (
        "paused",
        manager,
        "Leak under investigation",
    )
    assert Pool.objects.get(pk=pool.pk).status == Pool.Status.PAUSED
    assert refusal(code_issue, pool=pool, customer="c2") == Refusal.POOL_PAUSED
    assert refusal(code_mark_issued, code="P3", customer="c2") == Refusal.POOL_PAUSED
    assert refusal(code_check, code=held.code, customer="c1") == Refusal.POOL_PAUSED
    assert refusal(code_redeem, code=held.code, customer="c1") == Refusal.POOL_PAUSED

    pool_resume(pool=pool, user=manager)

    assert code_issue(pool=pool, customer="c2").code
    assert code_redeem(code=held.code, customer="c1").customer == "c1"
    actions = list(PoolEvent.objects.filter(pool=pool).values_list("action", flat=True))
    assert actions == ["resumed", "paused", "launched"]


def test_pause_takes_effect_for_a_caller_holding_the_pool_in_memory():
    pool = make_pool(launched=True)
    make_codes(pool, ["M1", "M2"])
    in_memory = Pool.objects.get(pk=pool.pk)  # as the API's cache holds it

    pool_pause(pool=Pool.objects.get(pk=pool.pk))

    assert in_memory.status == Pool.Status.ACTIVE
    assert refusal(code_issue, pool=in_memory, customer="c") == Refusal.POOL_PAUSED
    assert pool_stock(pool=pool) == 2


def test_issue_tells_no_codes_left_from_a_pool_that_is_not_issuing():
    pool = make_pool(launched=True)
    assert refusal(code_issue, pool=pool, customer="c") == Refusal.NO_CODES_LEFT
    pool_end(pool=pool)
    assert refusal(code_issue, pool=pool, customer="c") == Refusal.POOL_ENDED


def test_multiple_use_pool_refuses_issue_while_paused():
    pool = make_pool(launched=True, allow_multiple_use=True)
    make_codes(pool, ["MULTI"])
    pool_pause(pool=pool)
    assert refusal(code_issue, pool=pool, customer="c") == Refusal.POOL_PAUSED


def test_retry_with_the_key_returns_the_code_issued_before_the_pause():
    pool = make_pool(launched=True)
    make_codes(pool, ["K1", "K2"])
    first = code_issue(pool=pool, customer="c1", idempotency_key="msg-1")
    pool_pause(pool=pool)

    assert code_issue(pool=pool, customer="c1", idempotency_key="msg-1").code == first.code
    assert refusal(code_issue, pool=pool, customer="c1", idempotency_key="msg-2") == (
        Refusal.POOL_PAUSED
    )


def test_ended_pool_honours_issued_codes_until_available_till():
    pool = make_pool(launched=True)
    soon = timezone.now() + timedelta(days=1)
    make_codes(pool, ["E1", "E2"], available_till=soon)
    held = code_issue(pool=pool, customer="c1")
    never_issued = "E2" if held.code == "E1" else "E1"

    pool_end(pool=pool, reason="Campaign over")

    assert refusal(code_issue, pool=pool, customer="c2") == Refusal.POOL_ENDED
    assert refusal(code_check, code=never_issued, customer="c2") == Refusal.POOL_ENDED
    assert code_check(code=held.code, customer="c1").code == held.code
    later = soon + timedelta(seconds=1)
    assert held.redeem_refusal("c1", at=later) == Refusal.EXPIRED
    assert code_redeem(code=held.code, customer="c1").customer == "c1"


def test_ended_with_stop_redemptions_refuses_issued_codes_too():
    pool = make_pool(launched=True)
    make_codes(pool, ["S1"])
    held = code_issue(pool=pool, customer="c1")

    event = pool_end(pool=pool, stop_redemptions=True)

    assert event.action == PoolEvent.Action.ENDED_AND_STOPPED
    assert refusal(code_redeem, code=held.code, customer="c1") == Refusal.POOL_ENDED


def test_ended_multiple_use_pool_honours_the_customers_it_was_issued_to():
    pool = make_pool(launched=True, allow_multiple_use=True)
    make_codes(pool, ["MU"])
    code_issue(pool=pool, customer="c1")
    pool_end(pool=pool)

    assert code_check(code="MU", customer="c1")
    assert refusal(code_check, code="MU", customer="c2") == Refusal.POOL_ENDED


@pytest.mark.parametrize(
    ("setup", "transition", "message"),
    [
        ([], pool_pause, PAUSE_NEEDS_ACTIVE),
        ([], pool_resume, RESUME_NEEDS_PAUSED),
        ([], pool_end, END_NEEDS_LAUNCHED),
        ([pool_launch], pool_resume, RESUME_NEEDS_PAUSED),
        ([pool_launch, pool_pause], pool_pause, PAUSE_NEEDS_ACTIVE),
        ([pool_launch, pool_end], pool_end, END_NEEDS_LAUNCHED),
        ([pool_launch, pool_end], pool_resume, RESUME_NEEDS_PAUSED),
        ([pool_launch, pool_end], pool_launch, "The pool has been launched already; it is ended."),
    ],
)
def test_transitions_only_from_their_statuses(setup, transition, message):
    pool = make_pool()
    for step in setup:
        step(pool=pool)
    before = Pool.objects.get(pk=pool.pk).status
    events = PoolEvent.objects.count()

    with pytest.raises(ValidationError) as excinfo:
        transition(pool=pool)

    status = Pool.Status(before).label.lower()
    assert excinfo.value.messages == [message.format(status=status)]
    assert Pool.objects.get(pk=pool.pk).status == before
    assert PoolEvent.objects.count() == events


# A pool's life, whole: from each status, the transitions that lead somewhere.
LIFE = {
    "draft": {"launch": "active"},
    "active": {"pause": "paused", "end": "ended"},
    "paused": {"resume": "active", "end": "ended"},
    "ended": {},
}
TRANSITIONS = {"launch": pool_launch, "pause": pool_pause, "resume": pool_resume, "end": pool_end}
REACHED_BY = {"draft": [], "active": ["launch"], "paused": ["launch", "pause"]}
REACHED_BY["ended"] = ["launch", "end"]


@pytest.mark.parametrize("status", LIFE)
def test_each_status_allows_exactly_its_transitions(status):
    for name, transition in TRANSITIONS.items():
        pool = make_pool()
        for step in REACHED_BY[status]:
            TRANSITIONS[step](pool=pool)
        events = PoolEvent.objects.filter(pool=pool).count()
        if name in LIFE[status]:
            transition(pool=pool)
            assert Pool.objects.get(pk=pool.pk).status == LIFE[status][name], (status, name)
            assert PoolEvent.objects.filter(pool=pool).count() == events + 1, (status, name)
        else:
            with pytest.raises(ValidationError):
                transition(pool=pool)
            assert Pool.objects.get(pk=pool.pk).status == status, (status, name)
            assert PoolEvent.objects.filter(pool=pool).count() == events, (status, name)


def test_paused_pool_keeps_its_frozen_settings_and_edits_others():
    pool = make_pool(launched=True)
    pool_pause(pool=pool)
    with pytest.raises(ValidationError):
        pool_update(pool=Pool.objects.get(pk=pool.pk), slug="another")
    pool_update(pool=Pool.objects.get(pk=pool.pk), description="Still paused")
    assert Pool.objects.get(pk=pool.pk).status == Pool.Status.PAUSED


def test_status_cannot_be_set_around_the_services():
    pool = make_pool(launched=True)
    pool.status = Pool.Status.ENDED
    with pytest.raises(ValidationError):
        pool_update(pool=pool)


# Withdrawals


def test_withdraw_a_list_moves_counts_and_refuses_the_codes():
    pool = make_pool(launched=True)
    make_codes(pool, ["W1", "W2", "W3", "W4"])
    held = code_issue(pool=pool, customer="c1")
    used = code_issue(pool=pool, customer="c2")
    code_redeem(code=used.code, customer="c2")
    spare = sorted({"W1", "W2", "W3", "W4"} - {held.code, used.code})

    withdrawal = codes_withdraw(
        pool=pool, codes=[held.code, used.code, spare[0], "NOPE"], reason="Leaked on a deal site"
    )

    assert withdrawal.status == Withdrawal.Status.COMPLETED
    assert (withdrawal.codes_requested, withdrawal.codes_withdrawn) == (4, 2)
    assert (withdrawal.from_stock, withdrawal.already_redeemed, withdrawal.not_found) == (1, 1, 1)
    assert withdrawal.not_found_sample == "NOPE"
    assert counts_by_status(pool) == {
        "available": 1,
        "issued": 0,
        "redeemed": 1,
        "expired": 0,
        "withdrawn": 2,
        "total": 4,
    }
    assert refusal(code_check, code=held.code, customer="c1") == Refusal.WITHDRAWN
    assert refusal(code_redeem, code=spare[0], customer="c1") == Refusal.WITHDRAWN
    assert refusal(code_mark_issued, code=spare[0], customer="c1") == Refusal.WITHDRAWN
    assert code_issue(pool=pool, customer="c3").code == spare[1]
    assert Code.objects.get(pool=pool, code=held.code).withdrawal == withdrawal

    again = codes_withdraw(pool=pool, codes=[held.code])
    assert (again.codes_withdrawn, again.already_withdrawn) == (0, 1)


def test_withdraw_by_ids_and_nothing_to_withdraw():
    pool = make_pool(launched=True)
    codes = make_codes(pool, ["I1", "I2", "I3"])
    withdrawal = codes_withdraw(pool=pool, code_ids=[codes[0].pk, codes[2].pk])
    assert withdrawal.codes_withdrawn == 2 and pool_stock(pool=pool) == 1
    with pytest.raises(ValidationError):
        codes_withdraw(pool=pool, codes=["", "  "])


def test_a_long_list_is_a_job_that_runs_in_slices(
    settings, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(withdrawals, "WITHDRAW_AT_ONCE", 3)
    settings.WITHDRAW_SLICE = 2
    pool = make_pool(launched=True)
    make_codes(pool, [f"L{i}" for i in range(5)])

    with django_capture_on_commit_callbacks(execute=True):
        withdrawal = codes_withdraw(pool=pool, codes=[f"L{i}" for i in range(6)])

    assert withdrawal.status == Withdrawal.Status.QUEUED  # as returned; the task ran on commit
    withdrawal.refresh_from_db()
    assert withdrawal.status == Withdrawal.Status.COMPLETED
    assert (withdrawal.codes_done, withdrawal.codes_withdrawn, withdrawal.not_found) == (6, 5, 1)
    assert counts_by_status(pool)["withdrawn"] == 5 and pool_stock(pool=pool) == 0
    # A finished job run again does nothing.
    assert withdrawals.withdrawal_run(withdrawal_id=withdrawal.pk).codes_withdrawn == 5


def test_a_withdrawal_taken_over_mid_slice_leaves_that_slice_whole_and_the_next_attempt_ends_it(
    settings, monkeypatch
):
    """This worker was thought dead while it withdrew a slice, and another attempt took the job
    over: that slice is rolled back whole (its codes with the pool's counts), and the attempt
    that goes on withdraws every code exactly once."""
    settings.WITHDRAW_SLICE = 2
    pool = make_pool(launched=True)
    codes = [f"O{i}" for i in range(5)]
    make_codes(pool, codes)
    withdrawal = Withdrawal.objects.create(
        pool=pool, requested="\n".join(codes), codes_requested=len(codes)
    )
    real_add = withdrawals.pool_counts_add
    slices = []

    def counted_then_taken_over(**counts):
        real_add(**counts)
        slices.append(counts)
        if len(slices) == 2:
            Withdrawal.objects.filter(pk=withdrawal.pk).update(attempts=F("attempts") + 1)

    monkeypatch.setattr(withdrawals, "pool_counts_add", counted_then_taken_over)
    withdrawals.withdrawal_run(withdrawal_id=withdrawal.pk)
    monkeypatch.setattr(withdrawals, "pool_counts_add", real_add)

    statuses = dict(Code.objects.filter(pool=pool).values_list("code", "status"))
    assert [c for c in codes if statuses[c] == "withdrawn"] == ["O0", "O1"]
    assert (counts_by_status(pool)["available"], counts_by_status(pool)["withdrawn"]) == (3, 2)

    stale = timezone.now() - timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT + 1)
    Withdrawal.objects.filter(pk=withdrawal.pk).update(heartbeat_at=stale)
    done = withdrawals.withdrawal_run(withdrawal_id=withdrawal.pk)

    assert done.status == Withdrawal.Status.COMPLETED
    assert (done.codes_done, done.codes_withdrawn, done.from_stock) == (5, 5, 5)
    assert (done.already_withdrawn, done.not_found) == (0, 0)
    assert set(Code.objects.filter(pool=pool).values_list("status", flat=True)) == {"withdrawn"}
    assert (counts_by_status(pool)["available"], counts_by_status(pool)["withdrawn"]) == (0, 5)


# Undoing an addition


def add_codes_as_an_import(pool, codes, **fields) -> CodeAddition:
    addition = code_addition_create(pool=pool)
    Code.objects.bulk_create(Code(pool=pool, code=c, addition=addition, **fields) for c in codes)
    code_addition_record(addition_id=addition.pk, pool_id=pool.pk, count=len(codes))
    return addition


def test_undo_removes_what_was_never_handed_out_and_keeps_the_rest(settings, monkeypatch):
    settings.UNDO_SLICE = 2
    manager = make_manager()
    pool = make_pool(launched=True)
    addition = add_codes_as_an_import(pool, [f"U{i}" for i in range(7)])
    make_codes(pool, ["OTHER"])
    first = code_issue(pool=pool, customer="c1")
    second = code_issue(pool=pool, customer="c2")
    code_redeem(code=second.code, customer="c2")
    codes_withdraw(pool=pool, codes=["U6"])
    Code.objects.filter(code="U5").update(status=Code.Status.EXPIRED)
    counters.pool_counts_add(pool_id=pool.pk, available=-1, expired=1)

    preview = code_addition_undo_preview(addition=addition)
    outcome = code_addition_undo(addition=addition, user=manager)

    assert (preview.removed, preview.kept) == (outcome.removed, outcome.kept)
    assert outcome.removed == 3 + 1  # three available, one expired
    assert (outcome.kept_issued, outcome.kept_redeemed, outcome.kept_withdrawn) == (1, 1, 1)
    remaining = set(Code.objects.filter(pool=pool).values_list("code", flat=True))
    assert remaining == {"OTHER", first.code, second.code, "U6"} == {"OTHER", "U0", "U1", "U6"}
    assert counts_by_status(pool) == {
        "available": 1,
        "issued": 1,
        "redeemed": 1,
        "expired": 0,
        "withdrawn": 1,
        "total": 4,
    }
    addition.refresh_from_db()
    assert (addition.codes_removed, addition.removed_by) == (4, manager)
    assert code_addition_undo(addition=addition).removed == 0


def test_undo_keeps_multiple_use_codes_that_were_handed_out():
    pool = make_pool(launched=True, allow_multiple_use=True)
    addition = add_codes_as_an_import(pool, ["MU1", "MU2"])
    code_issue(pool=pool, customer="c1")  # hands out MU1 without using it up

    outcome = code_addition_undo(addition=addition)

    assert (outcome.removed, outcome.kept_used) == (1, 1)
    assert list(Code.objects.filter(pool=pool).values_list("code", flat=True)) == ["MU1"]


def test_a_failed_withdrawal_keeps_its_slices_and_runs_again(settings, monkeypatch):
    monkeypatch.setattr(withdrawals, "WITHDRAW_AT_ONCE", 10)
    settings.WITHDRAW_SLICE = 2
    pool = make_pool(launched=True)
    make_codes(pool, ["F1", "F2", "F3", "F4"])
    real_slice = withdrawals._withdraw_slice
    calls = []

    def failing_second_slice(withdrawal, chunk):
        calls.append(chunk)
        if len(calls) == 2:
            raise RuntimeError("database went away")
        return real_slice(withdrawal, chunk)

    monkeypatch.setattr(withdrawals, "_withdraw_slice", failing_second_slice)
    with pytest.raises(RuntimeError):
        codes_withdraw(pool=pool, codes=["F1", "F2", "F3", "F4"])
    withdrawal = Withdrawal.objects.get()
    assert (withdrawal.status, withdrawal.codes_done) == (Withdrawal.Status.FAILED, 2)
    assert withdrawal.message == (
        "The withdrawal stopped on an unexpected error; the codes withdrawn so far stay "
        "withdrawn. Run it again, or tell an administrator: database went away"
    )

    withdrawals.withdrawal_rerun(withdrawal=withdrawal)
    again = withdrawals.withdrawal_run(withdrawal_id=withdrawal.pk)

    assert (again.status, again.codes_withdrawn) == (Withdrawal.Status.COMPLETED, 4)
    assert calls == [["F1", "F2"], ["F3", "F4"], ["F3", "F4"]]
    assert pool_stock(pool=pool) == 0
