"""Redemption: check, redeem and mark as issued, and their refusals; what a caller may learn and
what is recorded (moments to the second, counts); order references replayed; when a code may be
redeemed (available from/till, issue before redemption, the validity period). Race tests fail
for sure when the lock they rely on is removed. The HTTP API's answers are in test_api.py."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from pools.code_services import code_check, code_issue, code_mark_issued, code_redeem, redemption
from pools.counters import pool_counts_add
from pools.models import Code, CodeIssue, Pool, Redemption
from pools.refusals import CodeRefused, Refusal
from pools.selectors import pool_stock, pools_with_counts
from pools.services import pool_end, pool_pause
from tests.factories import NOW, counts, make_codes, make_pool, refusal
from tests.pools.locks import in_thread, wait_inside_until_the_other_arrives

pytestmark = pytest.mark.django_db


def counts_with_expired(pool):
    counted = pools_with_counts().get(pk=pool.pk)
    return (
        counted.codes_available,
        counted.codes_issued,
        counted.codes_redeemed,
        counted.codes_expired,
    )


def personal_pool():
    pool = make_pool(require_issue_before_redeem=True, issued_validity_days=3, launched=True)
    make_codes(pool, ["P1", "P2"])
    return pool


# Check and redeem: which refusal comes when


def test_redeem_single_use_code_once():
    pool = make_pool(launched=True)
    make_codes(pool, ["R1"])

    redemption = code_redeem(code="R1", customer="c", order_reference="order-9")

    assert redemption.code.code == "R1"
    code = Code.objects.get()
    assert (code.status, code.times_redeemed) == (Code.Status.REDEEMED, 1)
    assert counts(pool) == (0, 0, 1)
    assert code_redeem(code="R1", customer="c", order_reference="order-9").pk == redemption.pk
    assert refusal(code_redeem, code="R1", customer="c") == Refusal.ALREADY_REDEEMED
    assert refusal(code_redeem, code="R1", customer="x", order_reference="order-9") == (
        Refusal.ALREADY_REDEEMED
    )
    assert counts(pool) == (0, 0, 1)


@pytest.mark.parametrize(
    "pool_fields, code_fields, reason",
    [
        ({"launched": False}, {}, Refusal.POOL_NOT_ACTIVE),
        ({"processing": Pool.Processing.EXTERNAL}, {}, Refusal.PROCESSED_EXTERNALLY),
        ({}, {"available_from": timezone.now() + timedelta(days=1)}, Refusal.NOT_YET_AVAILABLE),
        ({}, {"available_till": timezone.now() - timedelta(days=1)}, Refusal.EXPIRED),
        (
            {"require_issue_before_redeem": True, "issued_validity_days": 3},
            {},
            Refusal.NOT_ISSUED_TO_CUSTOMER,
        ),
    ],
)
def test_redeem_refusals(pool_fields, code_fields, reason):
    pool = make_pool(**{"launched": True, **pool_fields})
    make_codes(pool, ["X1"], **code_fields)

    assert refusal(code_check, code="X1", customer="c") == reason
    assert refusal(code_redeem, code="X1", customer="c") == reason
    assert not Redemption.objects.exists()


def test_unknown_and_ambiguous_codes_and_naming_the_pool():
    first, second = make_pool(launched=True), make_pool(launched=True)
    make_codes(first, ["SAME", "ONLY1"])
    make_codes(second, ["SAME"])

    assert refusal(code_check, code="NOPE", customer="c") == Refusal.UNKNOWN_CODE
    assert refusal(code_check, code="SAME", customer="c") == Refusal.AMBIGUOUS_CODE
    assert code_check(code="SAME", customer="c", pool=second).pool_id == second.pk
    # A code of another pool answers like a wrong code.
    assert refusal(code_check, code="ONLY1", customer="c", pool=second) == Refusal.UNKNOWN_CODE


def test_a_paused_pool_answers_paused_for_its_codes_and_unknown_for_others():
    pool = make_pool(launched=True)
    make_codes(pool, ["REAL"])
    pool_pause(pool=pool)

    assert refusal(code_check, code="REAL", customer="c", pool=pool) == Refusal.POOL_PAUSED
    assert refusal(code_redeem, code="REAL", customer="c", pool=pool) == Refusal.POOL_PAUSED
    assert refusal(code_check, code="MADE-UP", customer="c", pool=pool) == Refusal.UNKNOWN_CODE
    assert refusal(code_redeem, code="MADE-UP", customer="c", pool=pool) == Refusal.UNKNOWN_CODE
    assert refusal(code_check, code="MADE-UP", customer="c") == Refusal.UNKNOWN_CODE


def test_an_empty_or_missing_code_is_unknown_whatever_codes_there_are():
    make_codes(make_pool(launched=True), ["A", "XXXX", "None"])

    assert refusal(code_check, code="", customer="c") == Refusal.UNKNOWN_CODE
    assert refusal(code_check, code=None, customer="c") == Refusal.UNKNOWN_CODE
    assert refusal(code_redeem, code=None, customer="c") == Refusal.UNKNOWN_CODE


@pytest.mark.django_db(transaction=True)
def test_a_check_outside_any_transaction_answers():
    """The API checks in autocommit: a check locks nothing (a lock needs a transaction)."""
    pool = make_pool(launched=True)
    make_codes(pool, ["FREE"])

    assert code_check(code="FREE", customer="c").code == "FREE"


def test_a_refused_redemption_records_nothing():
    pool = make_pool(launched=True)
    make_codes(pool, ["W1"])
    Code.objects.filter(code="W1").update(status=Code.Status.WITHDRAWN)

    assert refusal(code_redeem, code="W1", customer="c") == Refusal.WITHDRAWN
    assert not Redemption.objects.exists()
    assert Code.objects.get().times_redeemed == 0


# What a redemption records, and replaying an order reference


def test_a_redemption_records_the_moment_and_the_order_and_counts_the_code(frozen):
    pool = make_pool(launched=True)
    make_codes(pool, ["R1", "R2"])

    redemption = code_redeem(code="R1", customer="c", order_reference="  o-7 ")

    stored = Redemption.objects.get()
    assert (stored.pk, stored.customer, stored.order_reference, stored.redeemed_at) == (
        redemption.pk,
        "c",
        "o-7",
        NOW,
    )
    code = Code.objects.get(code="R1")
    assert (code.status, code.redeemed_at, code.times_redeemed) == (Code.Status.REDEEMED, NOW, 1)
    assert counts_with_expired(pool) == (1, 0, 1, 0)


def test_redeeming_an_issued_code_moves_it_from_issued_to_redeemed():
    pool = personal_pool()
    issued = code_issue(pool=pool, customer="alice")
    assert counts_with_expired(pool) == (1, 1, 0, 0)

    code_redeem(code=issued.code, customer="alice")

    assert counts_with_expired(pool) == (1, 0, 1, 0)


def test_an_order_reference_returns_its_redemption_only_to_its_customer():
    pool = make_pool(allow_multiple_use=True, launched=True)
    make_codes(pool, ["MULTI"])

    first = code_redeem(code="MULTI", customer="c1", order_reference="o-1")
    again = code_redeem(code="MULTI", customer="c1", order_reference="o-1")
    other_order = code_redeem(code="MULTI", customer="c1", order_reference="o-2")
    no_order = [code_redeem(code="MULTI", customer="c1") for _ in range(2)]

    assert again.pk == first.pk
    assert len({first.pk, other_order.pk, *[r.pk for r in no_order]}) == 4
    assert refusal(code_redeem, code="MULTI", customer="c2", order_reference="o-1") == (
        Refusal.ALREADY_REDEEMED
    )
    code = Code.objects.get()
    assert (code.status, code.times_redeemed) == (Code.Status.AVAILABLE, 4)
    assert counts_with_expired(pool) == (1, 0, 0, 0)


# When a code may be redeemed: available from/till, issue before redemption, validity period


def test_a_code_is_redeemable_from_its_available_from_moment_on():
    pool = make_pool(launched=True)
    start = timezone.now().replace(microsecond=0) - timedelta(hours=1)
    (code,) = make_codes(pool, ["LATER"], available_from=start)
    code = Code.objects.select_related("pool").get(pk=code.pk)

    assert code.redeem_refusal("c", at=start - timedelta(microseconds=1)) == (
        Refusal.NOT_YET_AVAILABLE
    )
    assert code.redeem_refusal("c", at=start) is None
    redemption = code_redeem(code="LATER", customer="c")
    assert redemption.code_id == code.pk
    assert counts(pool) == (0, 0, 1)


def test_a_code_is_redeemable_until_its_available_till_moment():
    pool = make_pool(launched=True)
    till = timezone.now().replace(microsecond=0) + timedelta(hours=1)
    (code,) = make_codes(pool, ["SOON"], available_till=till)
    code = Code.objects.select_related("pool").get(pk=code.pk)

    assert code.redeem_refusal("c", at=till) is None
    assert code.redeem_refusal("c", at=till + timedelta(microseconds=1)) == Refusal.EXPIRED


def test_expired_codes_stay_counted_until_redeemed():
    from pools.code_services import codes_expire

    pool = make_pool(launched=True)
    now = timezone.now()
    make_codes(pool, ["LATE"], issue_end=now - timedelta(days=1), available_till=now + timedelta(1))
    make_codes(pool, ["FRESH"])

    assert codes_expire() == {pool.pk: 1}
    counted = pools_with_counts().get(pk=pool.pk)
    assert (counted.codes_available, counted.codes_expired, counted.codes_total) == (1, 1, 2)

    # Past its issue window, but a customer who has it may still redeem it until Available-till.
    code_redeem(code="LATE", customer="c")
    counted = pools_with_counts().get(pk=pool.pk)
    assert (counted.codes_expired, counted.codes_redeemed, counted.codes_total) == (0, 1, 2)
    assert pool_stock(pool=pool) == 1


def test_issue_check_before_redemption():
    pool = make_pool(require_issue_before_redeem=True, issued_validity_days=3, launched=True)
    make_codes(pool, ["V1", "V2"])
    issued = code_issue(pool=pool, customer="alice")

    assert refusal(code_redeem, code=issued.code, customer="bob") == (
        Refusal.NOT_ISSUED_TO_CUSTOMER
    )
    Code.objects.filter(pk=issued.pk).update(issued_at=timezone.now() - timedelta(days=4))
    assert refusal(code_redeem, code=issued.code, customer="alice") == (
        Refusal.VALIDITY_PERIOD_OVER
    )
    Code.objects.filter(pk=issued.pk).update(issued_at=timezone.now() - timedelta(days=2))
    assert code_check(code=issued.code, customer="alice").pk == issued.pk
    code_redeem(code=issued.code, customer="alice")
    assert counts(pool) == (1, 0, 1)


def test_the_validity_period_ends_exactly_so_many_days_after_issue():
    pool = make_pool(require_issue_before_redeem=True, issued_validity_days=3, launched=True)
    make_codes(pool, ["P1"])
    issued = code_issue(pool=pool, customer="c")
    code = Code.objects.select_related("pool").get(pk=issued.pk)
    end = code.issued_at + timedelta(days=3)

    assert code.redeem_refusal("c", at=end) is None
    assert code.redeem_refusal("c", at=end + timedelta(microseconds=1)) == (
        Refusal.VALIDITY_PERIOD_OVER
    )


def test_who_hears_that_a_personal_code_is_someone_elses():
    pool = personal_pool()
    issued = code_issue(pool=pool, customer="alice", caller="key-a")
    code_mark_issued(code="P2", customer="alice", caller="key-m")

    def asked_by(caller, code=issued.code):
        return refusal(code_check, code=code, customer="bob", caller=caller)

    # The admin and the shell (no caller), and the key that handed it out, hear the reason.
    assert asked_by(None) == Refusal.NOT_ISSUED_TO_CUSTOMER
    assert asked_by("key-a") == Refusal.NOT_ISSUED_TO_CUSTOMER
    assert asked_by("key-m", code="P2") == Refusal.NOT_ISSUED_TO_CUSTOMER
    # Any other key, or a key without a name, hears what a made-up code hears.
    assert asked_by("key-m") == Refusal.UNKNOWN_CODE
    assert asked_by("key-a", code="P2") == Refusal.UNKNOWN_CODE
    assert asked_by("") == Refusal.UNKNOWN_CODE
    assert refusal(code_redeem, code=issued.code, customer="bob", caller="key-x") == (
        Refusal.UNKNOWN_CODE
    )
    # The pool's state is told only to those who may hear of the code.
    pool_pause(pool=pool)
    assert asked_by("key-x") == Refusal.UNKNOWN_CODE
    assert asked_by("key-a") == Refusal.NOT_ISSUED_TO_CUSTOMER
    holder = refusal(code_check, code=issued.code, customer="alice", caller="key-x")
    assert holder == Refusal.POOL_PAUSED


# Mark as issued (a code handed out elsewhere, e.g. printed)


def test_mark_as_issued():
    pool = make_pool(require_issue_before_redeem=True, issued_validity_days=1, launched=True)
    make_codes(pool, ["PRINTED"])

    code = code_mark_issued(code="PRINTED", customer="alice")
    code_mark_issued(code="PRINTED", customer="alice")

    assert (code.status, code.issued_to) == (Code.Status.ISSUED, "alice")
    assert CodeIssue.objects.get().marked
    assert refusal(code_mark_issued, code="PRINTED", customer="bob") == Refusal.ALREADY_ISSUED
    code_redeem(code="PRINTED", customer="alice")
    assert refusal(code_mark_issued, code="PRINTED", customer="alice") == (Refusal.ALREADY_REDEEMED)


def test_marking_a_code_issued_moves_it_from_stock_to_issued():
    pool = make_pool(launched=True)
    make_codes(pool, ["M1", "M2", "M3"])

    marked = code_mark_issued(code="M2", customer="alice")

    assert (marked.status, marked.issued_to) == (Code.Status.ISSUED, "alice")
    assert counts(pool) == (2, 1, 0)
    assert pool_stock(pool=pool) == 2
    # Marking it again for the same customer changes nothing.
    code_mark_issued(code="M2", customer="alice")
    assert counts(pool) == (2, 1, 0)
    assert CodeIssue.objects.filter(code=marked, marked=True).count() == 1


def test_marking_issued_records_the_customer_the_moment_and_the_caller(frozen):
    pool = make_pool(launched=True)
    make_codes(pool, ["M1"])

    marked = code_mark_issued(code="M1", customer="alice", caller="key-m")

    code = Code.objects.get()
    assert (code.status, code.issued_to, code.issued_at) == (Code.Status.ISSUED, "alice", NOW)
    assert marked.pk == code.pk
    issue = CodeIssue.objects.get()
    assert (issue.pool, issue.code, issue.customer, issue.marked, issue.issued_by) == (
        pool,
        code,
        "alice",
        True,
        "key-m",
    )
    assert counts_with_expired(pool) == (0, 1, 0, 0)


def test_marking_issued_is_refused_where_issuing_is():
    draft = make_pool()
    make_codes(draft, ["D1"])
    paused = make_pool(launched=True)
    make_codes(paused, ["PA1"])
    pool_pause(pool=paused)
    ended = make_pool(launched=True)
    make_codes(ended, ["E1"])
    pool_end(pool=ended)

    assert refusal(code_mark_issued, code="D1", customer="c") == Refusal.POOL_NOT_ACTIVE
    assert refusal(code_mark_issued, code="PA1", customer="c") == Refusal.POOL_PAUSED
    assert refusal(code_mark_issued, code="E1", customer="c") == Refusal.POOL_ENDED
    assert not CodeIssue.objects.exists()


@pytest.mark.parametrize("multiple_use", [False, True])
def test_a_withdrawn_code_cannot_be_marked_issued(multiple_use):
    pool = make_pool(allow_multiple_use=multiple_use, launched=True)
    make_codes(pool, ["W1"])
    Code.objects.filter(code="W1").update(status=Code.Status.WITHDRAWN)

    assert refusal(code_mark_issued, code="W1", customer="c") == Refusal.WITHDRAWN
    assert not CodeIssue.objects.exists()
    assert Code.objects.get().issued_to == ""


def test_a_multiple_use_code_is_marked_once_per_customer_and_stays_in_stock():
    pool = make_pool(allow_multiple_use=True, launched=True)
    make_codes(pool, ["MULTI"])

    for customer in ("c1", "c1", "c2"):
        code_mark_issued(code="MULTI", customer=customer, caller="key")

    assert sorted(CodeIssue.objects.values_list("customer", "marked", "issued_by")) == [
        ("c1", True, "key"),
        ("c2", True, "key"),
    ]
    code = Code.objects.get()
    assert (code.status, code.issued_to, code.issued_at) == (Code.Status.AVAILABLE, "", None)
    assert counts_with_expired(pool) == (1, 0, 0, 0)


def test_a_single_use_code_marked_again_for_another_customer_is_refused():
    pool = make_pool(launched=True)
    make_codes(pool, ["S1"])
    code_mark_issued(code="S1", customer="alice")

    assert refusal(code_mark_issued, code="S1", customer="bob") == Refusal.ALREADY_ISSUED
    assert code_mark_issued(code="S1", customer="alice").issued_to == "alice"
    assert CodeIssue.objects.count() == 1
    assert counts_with_expired(pool) == (0, 1, 0, 0)


def test_an_expired_code_marked_issued_leaves_the_expired_count():
    pool = make_pool(launched=True)
    make_codes(pool, ["E1"])
    Code.objects.filter(code="E1").update(status=Code.Status.EXPIRED)
    pool_counts_add(pool_id=pool.pk, available=-1, expired=1)

    code_mark_issued(code="E1", customer="bob")

    assert counts_with_expired(pool) == (0, 1, 0, 0)


def test_an_expired_code_marked_issued_counts_as_issued_not_expired():
    pool = make_pool(launched=True)
    (code,) = make_codes(pool, ["E1"])
    Code.objects.filter(pk=code.pk).update(status=Code.Status.EXPIRED)
    from pools.counters import pool_counts_add

    pool_counts_add(pool_id=pool.pk, available=-1, expired=1)

    code_mark_issued(code="E1", customer="bob")

    counted = pools_with_counts().get(pk=pool.pk)
    assert (counted.codes_available, counted.codes_issued, counted.codes_expired) == (0, 1, 0)


def test_a_code_marked_from_the_admin_names_no_caller():
    pool = make_pool(launched=True)
    make_codes(pool, ["A1"])

    code_mark_issued(code="A1", customer="alice")

    assert CodeIssue.objects.get().issued_by == ""


# Races: the second party is made to arrive inside the critical section


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_redemptions_of_a_single_use_code_racing_redeem_it_once(monkeypatch):
    """The first redemption waits inside its transaction, after its refusal check, until the
    second is past its own check too or blocked on the code's row lock: without the lock both
    would redeem."""
    pool = make_pool(launched=True)
    make_codes(pool, ["ONCE"])
    inside = []
    real_refusal_for = redemption._refusal_for

    def refusal_for_then_wait(*args, **kwargs):
        refusal_ = real_refusal_for(*args, **kwargs)
        inside.append(1)
        if len(inside) == 1:
            wait_inside_until_the_other_arrives(inside)
        return refusal_

    monkeypatch.setattr(redemption, "_refusal_for", refusal_for_then_wait)
    results = {}

    def second():
        while not inside:
            time.sleep(0.01)
        return code_redeem(code="ONCE", customer="c2")

    threads = [
        in_thread(lambda: code_redeem(code="ONCE", customer="c1"), results, "first"),
        in_thread(second, results, "second"),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert isinstance(results["first"], Redemption)
    assert isinstance(results["second"], CodeRefused)
    assert results["second"].reason == Refusal.ALREADY_REDEEMED
    assert Redemption.objects.count() == 1
    assert counts(pool) == (0, 0, 1)


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_marks_of_one_code_for_two_customers_racing_mark_it_once(monkeypatch):
    """The first mark waits inside its transaction, past the code's row lock, until the second
    is either inside too or blocked on that lock: without the lock both would mark the code,
    the second over the first, with two issues recorded."""
    from pools.models import Pool

    pool = make_pool(launched=True)
    make_codes(pool, ["ONCE"])
    inside = []
    real_refusal = Pool.issue_refusal

    def refusal_then_wait(self):
        inside.append(1)
        if len(inside) == 1:
            wait_inside_until_the_other_arrives(inside)
        return real_refusal(self)

    monkeypatch.setattr(Pool, "issue_refusal", refusal_then_wait)
    results = {}

    def mark(customer):
        try:
            results[customer] = code_mark_issued(code="ONCE", customer=customer)
        except CodeRefused as refused:
            results[customer] = refused.reason
        finally:
            connection.close()

    first = threading.Thread(target=mark, args=("alice",))
    first.start()
    while not inside:
        time.sleep(0.01)
    second = threading.Thread(target=mark, args=("bob",))
    second.start()
    first.join()
    second.join()

    assert results["bob"] == Refusal.ALREADY_ISSUED
    assert Code.objects.get().issued_to == "alice"
    assert list(CodeIssue.objects.values_list("customer", flat=True)) == ["alice"]
    assert counts_with_expired(pool) == (0, 1, 0, 0)
