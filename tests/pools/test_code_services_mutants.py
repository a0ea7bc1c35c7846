"""Tests that fail on the mutants of issuing and redemption that the rest of the suite let
through, and race tests that fail for sure when the lock they rely on is removed:
the second party is made to arrive inside the critical section, not left to luck."""

import hashlib
import threading
import time
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from pools.code_services import (
    batch_key,
    batches,
    code_check,
    code_issue,
    code_issue_batch,
    code_mark_issued,
    code_redeem,
    customer_clean,
    issuing,
    redemption,
)
from pools.models import CUSTOMER_MAX_LENGTH, Code, CodeIssue, Redemption
from pools.refusals import CodeRefused, Refusal
from pools.selectors import pool_stock, pools_with_counts
from tests.factories import counts, make_codes, make_pool, refusal
from tests.pools.locks import wait_inside_until_the_other_arrives

pytestmark = pytest.mark.django_db


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


def test_an_expired_code_marked_issued_leaves_the_expired_count():
    pool = make_pool(launched=True)
    (code,) = make_codes(pool, ["E1"])
    Code.objects.filter(pk=code.pk).update(status=Code.Status.EXPIRED)
    from pools.counters import pool_counts_add

    pool_counts_add(pool_id=pool.pk, available=-1, expired=1)

    code_mark_issued(code="E1", customer="bob")

    counted = pools_with_counts().get(pk=pool.pk)
    assert (counted.codes_available, counted.codes_issued, counted.codes_expired) == (0, 1, 0)


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


def test_customer_ids_are_cleaned_by_every_service():
    pool = make_pool(launched=True)
    make_codes(pool, ["C1", "C2"])

    issued = code_issue(pool=pool, customer="  alice \t", idempotency_key="k")
    assert issued.issued_to == "alice"
    assert CodeIssue.objects.get(code=issued).customer == "alice"
    assert code_issue(pool=pool, customer="alice", idempotency_key="k").pk == issued.pk
    marked = code_mark_issued(code="C2", customer=" bob ")
    assert marked.issued_to == "bob"
    assert code_check(code=issued.code, customer=" alice ").pk == issued.pk
    redemption = code_redeem(code=" C2 ", customer="\tbob  ", order_reference=" o-1 ")
    assert (redemption.customer, redemption.order_reference) == ("bob", "o-1")
    assert code_redeem(code="C2", customer="bob", order_reference="o-1").pk == redemption.pk


def test_a_customer_id_of_the_maximum_length_is_accepted_and_one_more_is_refused():
    longest = "c" * CUSTOMER_MAX_LENGTH
    assert customer_clean(f" {longest} ") == longest
    for refused in (longest + "c", "   ", "", None, "a\x00b"):
        with pytest.raises(ValidationError) as excinfo:
            customer_clean(refused)
        assert excinfo.value.message_dict == {
            "customer": ["Give the customer's id (at most 200 characters)."]
        }


def test_the_generic_claim_hands_out_each_code_once_and_counts_it():
    pool = make_pool(launched=True)
    make_codes(pool, ["G1", "G2"])

    first = issuing._claim_code(pool, "c1")
    second = issuing._claim_code(pool, "c2")

    assert [first.code, second.code] == ["G1", "G2"]
    assert (second.status, second.issued_to) == (Code.Status.ISSUED, "c2")
    assert counts(pool) == (0, 2, 0)
    assert refusal(issuing._claim_code, pool=pool, customer="c3") == Refusal.NO_CODES_LEFT


def test_the_generic_claim_of_a_multiple_use_pool_uses_nothing_up():
    pool = make_pool(allow_multiple_use=True, launched=True)
    make_codes(pool, ["MULTI"])

    assert issuing._claim_code(pool, "c1").code == "MULTI"
    assert issuing._claim_code(pool, "c2").status == Code.Status.AVAILABLE
    assert counts(pool) == (1, 0, 0)


def test_each_database_takes_its_own_claim(monkeypatch):
    """PostgreSQL issues with its one-statement claim; another database with the generic one.
    Sending either down the other's path fails here."""

    def forbidden(*args, **kwargs):
        raise AssertionError("the other database's claim was used")

    other = "_claim_code" if connection.vendor == "postgresql" else "_claim_code_postgresql"
    monkeypatch.setattr(issuing, other, forbidden)
    pool = make_pool(launched=True)
    make_codes(pool, ["V1"])

    with CaptureQueriesContext(connection) as queries:
        issued = code_issue(pool=pool, customer="c")

    assert issued.code == "V1"
    claims = [q["sql"] for q in queries.captured_queries if "UPDATE" in q["sql"]]
    if connection.vendor == "postgresql":
        assert len(claims) == 1 and "claimed AS (" in claims[0]
    assert counts(pool) == (0, 1, 0)


def _in_thread(target, results, name):
    def run():
        try:
            results[name] = target()
        except Exception as error:  # noqa: BLE001  (asserted by the test)
            results[name] = error
        finally:
            connection.close()

    return threading.Thread(target=run)


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_the_claim_skips_a_code_another_transaction_holds():
    """A second connection holds the first code's row lock for the whole issue: the claim must
    take the next code at once. Without SKIP LOCKED it waits for the lock (and the lock timeout
    set here makes that an error), or, once the holder commits, finds nothing."""
    pool = make_pool(launched=True)
    make_codes(pool, ["H1", "H2"])
    holder = connections.create_connection("default")
    try:
        holder.set_autocommit(False)
        with holder.cursor() as cursor:
            cursor.execute(f"SELECT id FROM {Code._meta.db_table} WHERE code = 'H1' FOR UPDATE")
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '3s'")
        try:
            issued = code_issue(pool=pool, customer="c")
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SET lock_timeout = 0")
        assert issued.code == "H2"
    finally:
        holder.rollback()
        holder.close()
    assert counts(pool) == (1, 1, 0)


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_calls_with_one_key_racing_get_one_code(monkeypatch):
    """Both calls look the key up before either records it (a barrier makes sure of it); the
    loser's claim violates the key's constraint, and the recovery branch returns the winner's
    code. Nothing is patched away: the real look-up runs both times."""
    pool = make_pool(launched=True)
    make_codes(pool, ["R1", "R2", "R3"])
    barrier = threading.Barrier(2, timeout=30)
    real_lookup = issuing._issue_by_key
    local = threading.local()

    def lookup_then_wait(*args):
        found = real_lookup(*args)
        if not getattr(local, "waited", False):
            local.waited = True
            barrier.wait()  # both have looked, neither has claimed
        return found

    monkeypatch.setattr(issuing, "_issue_by_key", lookup_then_wait)
    results = {}
    threads = [
        _in_thread(lambda: code_issue(pool=pool, customer="c", idempotency_key="race"), results, n)
        for n in ("a", "b")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert all(isinstance(r, Code) for r in results.values()), results
    assert results["a"].pk == results["b"].pk
    assert CodeIssue.objects.filter(idempotency_key="race").count() == 1
    assert counts(pool) == (2, 1, 0)


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
        _in_thread(lambda: code_redeem(code="ONCE", customer="c1"), results, "first"),
        _in_thread(second, results, "second"),
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


def test_an_issue_from_the_admin_names_no_caller():
    pool = make_pool(launched=True)
    make_codes(pool, ["A1"])

    code_issue(pool=pool, customer="c")

    assert CodeIssue.objects.get().issued_by == ""


def test_a_fallback_pools_own_fallback_is_not_used():
    from pools.models import Pool

    pool = make_pool(launched=True)
    spare = make_pool(pool.campaign, launched=True)
    last = make_pool(pool.campaign, launched=True)
    Pool.objects.filter(pk=pool.pk).update(fallback_pool=spare)
    Pool.objects.filter(pk=spare.pk).update(fallback_pool=last)
    make_codes(last, ["LAST"])

    assert refusal(code_issue, pool=pool, customer="c") == Refusal.NO_CODES_LEFT
    assert code_issue(pool=spare, customer="c").code == "LAST"


def test_issuing_announces_a_stock_change_of_its_pool_unless_nothing_is_used_up(
    django_capture_on_commit_callbacks,
):
    """What alerts and refills listen to (pools that alert here): a single-use code leaves the
    stock, a multiple-use code does not."""
    from pools.signals import stock_changed

    heard = []

    def receiver(sender, pool, **kwargs):
        heard.append(pool.pk)

    alerting = {"notify_below_enabled": True, "notify_below": 1, "launched": True}
    single = make_pool(**alerting)
    make_codes(single, ["S1", "S2"])
    multiple = make_pool(allow_multiple_use=True, **alerting)
    make_codes(multiple, ["M1"])
    stock_changed.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            code_issue(pool=multiple, customer="c")
            code_issue(pool=single, customer="c")
    finally:
        stock_changed.disconnect(receiver)

    assert heard == [single.pk]


@pytest.mark.postgresql
def test_the_one_statement_claim_announces_nothing_for_a_pool_nobody_listens_to(
    django_capture_on_commit_callbacks,
):
    """The claim reads from the pool's row whether it alerts or refills; a pool that does
    neither is not announced (a check per issue for nothing)."""
    from pools.signals import stock_changed

    heard = []

    def receiver(sender, pool, **kwargs):
        heard.append(pool.pk)

    quiet = make_pool(launched=True)
    make_codes(quiet, ["Q1"])
    alerting = make_pool(launched=True, notify_below_enabled=True, notify_below=1)
    make_codes(alerting, ["A1", "A2"])
    stock_changed.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            code_issue(pool=quiet, customer="c")
            code_issue(pool=alerting, customer="c")
    finally:
        stock_changed.disconnect(receiver)

    assert heard == [alerting.pk]


def test_a_batch_key_up_to_the_keys_length_is_kept_and_a_longer_one_is_hashed():
    at_most = batch_key("k" * 190, "c" * 9)  # 190 + ":" + 9 = 200, the column's length
    longer = batch_key("k" * 190, "c" * 10)

    assert at_most == "k" * 190 + ":" + "c" * 9
    assert longer == "sha256:" + hashlib.sha256(("k" * 190 + ":" + "c" * 10).encode()).hexdigest()
    assert len(longer) == 71


def test_a_batch_without_a_key_records_none_and_names_no_caller():
    pool = make_pool(launched=True)
    make_codes(pool, ["B1", "B2"])

    outcome = code_issue_batch(pool=pool, customers=["a", "b"])

    assert [(i.code.code, i.code.pool) for i in outcome.issued] == [("B1", pool), ("B2", pool)]
    assert list(CodeIssue.objects.order_by("id").values_list("idempotency_key", "issued_by")) == [
        ("", ""),
        ("", ""),
    ]
    # Without once_per_customer, a customer who holds a code is asked a new one (none left),
    # not given the one held.
    again = code_issue_batch(pool=pool, customers=["a"])
    assert again.short == ["a"]


def test_codes_held_are_those_of_the_pool_or_its_fallback_not_given_back_the_latest_each():
    from pools.code_services import code_release, codes_held
    from pools.models import Pool

    pool = make_pool(launched=True)
    spare = make_pool(pool.campaign, launched=True)
    Pool.objects.filter(pk=pool.pk).update(fallback_pool=spare)
    other = make_pool(launched=True)
    make_codes(pool, ["P1", "P2", "P3", "P4"])
    make_codes(spare, ["S1"])
    make_codes(other, ["O1"])
    code_issue(pool=pool, customer="a")  # P1
    code_issue(pool=pool, customer="e")  # P2
    code_issue(pool=pool, customer="e")  # P3: the latest
    code_issue(pool=pool, customer="d", idempotency_key="kd")  # P4, given back below
    code_release(pool=pool, code="P4", idempotency_key="kd")
    code_issue(pool=spare, customer="b")  # S1
    code_issue(pool=other, customer="c")  # O1

    held = codes_held(pool=pool, customers=["a", "b", "c", "d", "e", "f"])

    assert {customer: code.code for customer, code in held.items()} == {
        "a": "P1",
        "b": "S1",
        "e": "P3",
    }
    assert held["b"].pool == spare  # read with its pool


def test_a_batch_once_per_customer_gives_a_holder_the_code_held():
    pool = make_pool(launched=True)
    make_codes(pool, ["H1", "H2"])
    code_issue(pool=pool, customer="a")

    outcome = code_issue_batch(pool=pool, customers=["a", "b"], once_per_customer=True)

    assert [(i.customer, i.code.code) for i in outcome.issued] == [("a", "H1"), ("b", "H2")]
    assert CodeIssue.objects.count() == 2


def test_a_batch_whose_keys_were_taken_meanwhile_takes_the_codes_recorded_under_them(monkeypatch):
    """As if a concurrent batch under the same key had recorded some customers after this one
    looked them up: the claim violates the key's constraint, and the next attempt's real
    look-up takes the codes recorded."""
    pool = make_pool(launched=True)
    make_codes(pool, ["K1", "K2", "K3"])
    first = code_issue_batch(pool=pool, customers=["a"], idempotency_key="m")
    real = batches._issued_by_keys
    looked = []

    def missing_them_the_first_time(*args):
        looked.append(1)
        return {} if len(looked) == 1 else real(*args)

    monkeypatch.setattr(batches, "_issued_by_keys", missing_them_the_first_time)

    outcome = code_issue_batch(pool=pool, customers=["a", "b"], idempotency_key="m")

    assert len(looked) == 2
    assert [(i.customer, i.code.code, i.again) for i in outcome.issued] == [
        ("a", first.issued[0].code.code, True),
        ("b", "K2", False),
    ]
    assert CodeIssue.objects.count() == 2


def test_a_batch_refused_on_a_key_it_cannot_find_gives_up_after_one_more_look(monkeypatch):
    """The key that stopped the claim is committed by then: not found under the customer, it
    holds someone else's issue, and trying again cannot help."""
    pool = make_pool(launched=True)
    make_codes(pool, ["K1", "K2"])
    code_issue_batch(pool=pool, customers=["a"], idempotency_key="m")
    looked = []

    def never_finding_them(*args):
        looked.append(1)
        return {}

    monkeypatch.setattr(batches, "_issued_by_keys", never_finding_them)

    assert refusal(code_issue_batch, pool=pool, customers=["a"], idempotency_key="m") == (
        Refusal.KEY_REUSED
    )
    assert len(looked) == 2


def test_a_batch_ended_by_a_deadlock_tries_again_and_other_errors_propagate(monkeypatch):
    from django.db import OperationalError

    pool = make_pool(launched=True)
    make_codes(pool, ["D1", "D2"])
    real = batches._claim_many
    errors = [OperationalError("deadlock detected")]

    def failing_first(*args):
        if errors:
            raise errors.pop(0)
        return real(*args)

    monkeypatch.setattr(batches, "_claim_many", failing_first)
    outcome = code_issue_batch(pool=pool, customers=["a"], idempotency_key="m1")
    assert [(i.customer, i.code.code) for i in outcome.issued] == [("a", "D1")]

    errors.append(OperationalError("server closed the connection"))
    with pytest.raises(OperationalError) as excinfo:
        code_issue_batch(pool=pool, customers=["b"], idempotency_key="m2")
    assert str(excinfo.value) == "server closed the connection"
    assert Code.objects.get(code="D2").status == Code.Status.AVAILABLE

    # A batch that keeps being ended gives up after five tries.
    errors.extend(OperationalError("deadlock detected") for _ in range(5))
    assert refusal(code_issue_batch, pool=pool, customers=["c"], idempotency_key="m3") == (
        Refusal.KEY_REUSED
    )
    assert errors == [] and Code.objects.get(code="D2").status == Code.Status.AVAILABLE


def test_a_batch_of_a_multiple_use_pool_hands_out_the_code_without_using_it_up():
    pool = make_pool(allow_multiple_use=True, launched=True)
    make_codes(pool, ["MULTI"])

    outcome = code_issue_batch(pool=pool, customers=["a", "b"], idempotency_key="m")

    assert [(i.customer, i.code.code) for i in outcome.issued] == [("a", "MULTI"), ("b", "MULTI")]
    code = Code.objects.get()
    assert (code.status, code.issued_to) == (Code.Status.AVAILABLE, "")
    assert counts(pool) == (1, 0, 0)

    Code.objects.update(issue_end=timezone.now() - timedelta(seconds=1))
    assert code_issue_batch(pool=pool, customers=["c", "d"]).short == ["c", "d"]
    from pools.services import pool_pause

    pool_pause(pool=pool)
    assert refusal(code_issue_batch, pool=pool, customers=["e"]) == Refusal.POOL_PAUSED


@pytest.mark.postgresql
def test_the_one_statement_batch_claim_announces_only_pools_that_alert_or_refill(
    django_capture_on_commit_callbacks,
):
    from pools.signals import stock_changed

    heard = []

    def receiver(sender, pool, **kwargs):
        heard.append(pool.pk)

    quiet = make_pool(launched=True)
    make_codes(quiet, ["Q1"])
    alerting = make_pool(launched=True, notify_below_enabled=True, notify_below=1)
    make_codes(alerting, ["A1", "A2", "A3"])
    dry = make_pool(launched=True, notify_below_enabled=True, notify_below=1)
    stock_changed.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            code_issue_batch(pool=quiet, customers=["a"])
            code_issue_batch(pool=alerting, customers=["a", "b"])
            assert code_issue_batch(pool=dry, customers=["a"]).short == ["a"]
    finally:
        stock_changed.disconnect(receiver)

    assert heard == [alerting.pk]  # a dry pool's stock did not change


def test_a_batch_takes_codes_after_the_claims_starting_point_then_before_it(
    django_capture_on_commit_callbacks,
):
    """Claims start after the last code claimed: a batch takes what is after that point, then
    the rest from the first code (a code whose window opened meanwhile)."""
    pool = make_pool(launched=True)
    make_codes(pool, ["EARLY"], issue_start=timezone.now() + timedelta(days=1))
    make_codes(pool, ["MID", "LATE"])
    assert code_issue(pool=pool, customer="a").code == "MID"
    Code.objects.filter(code="EARLY").update(issue_start=None)

    heard = []

    def receiver(sender, pool, **kwargs):
        heard.append(pool.pk)

    from pools.signals import stock_changed

    stock_changed.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            outcome = code_issue_batch(pool=pool, customers=["b", "c", "d"])
    finally:
        stock_changed.disconnect(receiver)

    # A pool that neither alerts nor refills is announced by the generic claim only.
    assert heard == ([] if connection.vendor == "postgresql" else [pool.pk])
    # Which of the two gets which code depends on the database's claim; that each gets one
    # does not.
    given = {i.customer: i.code.code for i in outcome.issued}
    assert (sorted(given), sorted(given.values()), outcome.short) == (
        ["b", "c"],
        ["EARLY", "LATE"],
        ["d"],
    )
    stored = dict(Code.objects.filter(status=Code.Status.ISSUED).values_list("code", "issued_to"))
    assert stored == {"MID": "a", **{code: customer for customer, code in given.items()}}


def test_batches_announce_a_stock_change_unless_nothing_is_used_up(
    django_capture_on_commit_callbacks,
):
    from pools.signals import stock_changed

    heard = []

    def receiver(sender, pool, **kwargs):
        heard.append(pool.pk)

    alerting = {"notify_below_enabled": True, "notify_below": 1, "launched": True}
    single = make_pool(**alerting)
    make_codes(single, ["S1", "S2", "S3"])
    multiple = make_pool(allow_multiple_use=True, **alerting)
    make_codes(multiple, ["M1"])
    stock_changed.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            code_issue_batch(pool=multiple, customers=["a", "b"])
            code_issue_batch(pool=single, customers=["a", "b"])
    finally:
        stock_changed.disconnect(receiver)

    assert heard == [single.pk]


def test_a_release_gives_the_code_back_to_stock_with_its_history_and_moment(
    django_capture_on_commit_callbacks,
):
    from pools.code_services import code_release
    from pools.signals import stock_changed

    heard = []

    def receiver(sender, pool, **kwargs):
        heard.append(pool.pk)

    pool = make_pool(launched=True)
    make_codes(pool, ["G1", "G2"])
    code_issue(pool=pool, customer="a", idempotency_key="msg-1")
    assert counts(pool) == (1, 1, 0)
    stock_changed.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            before = timezone.now()
            released = code_release(pool=pool, code="G1", idempotency_key=" msg-1 ")
    finally:
        stock_changed.disconnect(receiver)

    assert (released.status, released.issued_to, released.issued_at) == ("available", "", None)
    assert counts(pool) == (2, 0, 0)
    assert heard == [pool.pk]
    issue = CodeIssue.objects.get()
    assert (issue.customer, issue.idempotency_key, issue.released_key) == ("a", "", "msg-1")
    assert before <= issue.released_at <= timezone.now()


def test_a_release_without_a_key_or_of_a_code_not_issued_is_refused():
    from pools.code_services import code_release, codes_withdraw

    pool = make_pool(launched=True)
    make_codes(pool, ["G1", "G2"])
    # A missing key matches no issue, whatever keys there are.
    code_issue(pool=pool, customer="a", idempotency_key="XXXX")
    code_issue(pool=pool, customer="b", idempotency_key="kb")
    codes_withdraw(pool=pool, codes=["G2"])

    for key in ("", None, "   "):
        assert refusal(code_release, pool=pool, code="G1", idempotency_key=key) == (
            Refusal.UNKNOWN_CODE
        )
    assert refusal(code_release, pool=pool, code="G2", idempotency_key="kb") == (
        Refusal.NOT_RELEASABLE
    )
    assert counts(pool) == (0, 1, 0)


def test_a_multiple_use_code_redeemed_once_is_not_released():
    from pools.code_services import code_release

    pool = make_pool(allow_multiple_use=True, launched=True)
    make_codes(pool, ["MULTI"])
    code_issue(pool=pool, customer="a", idempotency_key="ka")
    code_redeem(code="MULTI", customer="a")

    assert refusal(code_release, pool=pool, code="MULTI", idempotency_key="ka") == (
        Refusal.ALREADY_REDEEMED
    )
    assert CodeIssue.objects.get().released_at is None
