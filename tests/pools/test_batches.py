"""Issuing in batches, giving codes back and falling back to another pool."""

import hashlib
import threading
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st

from pools.code_services import (
    BATCH_MAX,
    batch_key,
    batches,
    code_issue,
    code_issue_batch,
    code_redeem,
    code_release,
)
from pools.models import Code, CodeIssue, Pool
from pools.refusals import CodeRefused, Refusal
from pools.selectors import pool_stock
from tests.factories import counts, make_codes, make_pool, refusal

pytestmark = pytest.mark.django_db


def test_batch_issues_one_code_per_customer_in_order_and_a_retry_returns_the_same():
    pool = make_pool(launched=True)
    make_codes(pool, [f"C{i}" for i in range(5)])

    outcome = code_issue_batch(pool=pool, customers=["a", "b", " a ", "c"], idempotency_key="m1")

    assert [i.customer for i in outcome.issued] == ["a", "b", "c"]
    assert len({i.code.pk for i in outcome.issued}) == 3
    assert outcome.short == []
    assert pool_stock(pool=pool) == 2
    again = code_issue_batch(pool=pool, customers=["a", "b", "c"], idempotency_key="m1")
    assert [i.code.pk for i in again.issued] == [i.code.pk for i in outcome.issued]
    assert all(i.again for i in again.issued)
    assert pool_stock(pool=pool) == 2
    # The batch's issue of a customer is the single issue under "<key>:<customer>".
    single = code_issue(pool=pool, customer="b", idempotency_key=batch_key("m1", "b"))
    assert single.pk == outcome.issued[1].code.pk


def test_batch_that_runs_dry_names_the_customers_left_and_a_retry_completes_it():
    pool = make_pool(launched=True)
    make_codes(pool, ["A1", "A2"])

    outcome = code_issue_batch(pool=pool, customers=["a", "b", "c"], idempotency_key="k")
    assert [i.customer for i in outcome.issued] == ["a", "b"]
    assert outcome.short == ["c"]

    make_codes(pool, ["A3"])
    Code.objects.filter(code="A3").update(status=Code.Status.AVAILABLE)
    from pools.counters import pool_counts_add

    pool_counts_add(pool_id=pool.pk, available=1)
    retry = code_issue_batch(pool=pool, customers=["a", "b", "c"], idempotency_key="k")
    assert [i.code.code for i in retry.issued] == ["A1", "A2", "A3"]
    assert [i.again for i in retry.issued] == [True, True, False]
    assert CodeIssue.objects.filter(pool=pool).count() == 3


def test_batch_refuses_paused_pools_and_respects_issue_windows():
    pool = make_pool(launched=True)
    make_codes(pool, ["LATER"], issue_start=timezone.now() + timezone.timedelta(days=1))
    make_codes(pool, ["NOW"])
    outcome = code_issue_batch(pool=pool, customers=["a", "b"])
    assert [i.code.code for i in outcome.issued] == ["NOW"]
    assert outcome.short == ["b"]

    Pool.objects.filter(pk=pool.pk).update(status=Pool.Status.PAUSED)
    assert refusal(code_issue_batch, pool=pool, customers=["c"]) == Refusal.POOL_PAUSED


def test_batch_size_is_bounded_at_both_ends():
    pool = make_pool(launched=True)
    make_codes(pool, ["ONE"])
    refused = [
        ([], {"customers": ["Give at least one customer."]}),
        (["a", " "], {"customer": ["Give the customer's id (at most 200 characters)."]}),
        (
            [f"c{i}" for i in range(BATCH_MAX + 1)],
            {"customers": ["Give at most 10,000 customers in one batch."]},
        ),
    ]
    for customers, errors in refused:
        with pytest.raises(ValidationError) as excinfo:
            code_issue_batch(pool=pool, customers=customers)
        assert excinfo.value.message_dict == errors
    assert pool_stock(pool=pool) == 1

    # Exactly the maximum is a batch (the same customer listed twice counts once).
    outcome = code_issue_batch(pool=pool, customers=[f"c{i}" for i in range(BATCH_MAX)] + ["c0"])

    assert [(i.customer, i.code.code) for i in outcome.issued] == [("c0", "ONE")]
    assert len(outcome.short) == BATCH_MAX - 1


def test_fallback_pool_serves_single_and_batch_issues_when_the_pool_runs_dry():
    pool = make_pool(launched=True)
    spare = make_pool(pool.campaign, launched=True)
    Pool.objects.filter(pk=pool.pk).update(fallback_pool=spare)
    make_codes(pool, ["MAIN"])
    make_codes(spare, ["S1", "S2", "S3"])

    assert code_issue(pool=pool, customer="a").code == "MAIN"
    fell = code_issue(pool=pool, customer="b", idempotency_key="kb")
    assert (fell.code, fell.pool_id) == ("S1", spare.pk)
    # A retry of an issue that fell back returns its code.
    assert code_issue(pool=pool, customer="b", idempotency_key="kb").pk == fell.pk

    outcome = code_issue_batch(pool=pool, customers=["c", "d"], idempotency_key="m")
    assert [(i.code.code, i.from_fallback) for i in outcome.issued] == [("S2", True), ("S3", True)]
    assert code_issue_batch(pool=pool, customers=["c", "d"], idempotency_key="m").short == []
    assert refusal(code_issue, pool=pool, customer="e") == Refusal.NO_CODES_LEFT


def test_a_retry_of_an_issue_that_fell_back_returns_its_code_once_the_pool_is_refilled():
    pool = make_pool(launched=True)
    spare = make_pool(pool.campaign, launched=True)
    Pool.objects.filter(pk=pool.pk).update(fallback_pool=spare)
    make_codes(spare, ["S1", "S2"])
    single = code_issue(pool=pool, customer="a", idempotency_key="ka")
    batch = code_issue_batch(pool=pool, customers=["b"], idempotency_key="m").issued[0].code

    make_codes(pool, ["NEW1", "NEW2"])  # refilled meanwhile

    assert code_issue(pool=pool, customer="a", idempotency_key="ka").pk == single.pk
    again = code_issue_batch(pool=pool, customers=["b"], idempotency_key="m").issued[0]
    assert (again.code.pk, again.again) == (batch.pk, True)
    assert code_issue(pool=pool, customer="b", idempotency_key="m:b").pk == batch.pk
    assert counts(pool) == (2, 0, 0)
    assert CodeIssue.objects.count() == 2


def test_a_batch_returns_each_code_as_stored_with_its_pool_loaded(django_assert_num_queries):
    """The codes of a batch are built from the claim's rows (and a retry's look-up) without
    the model's constructor: each must be the stored code, its pool at hand."""
    pool = make_pool(launched=True)
    spare = make_pool(pool.campaign, launched=True)
    Pool.objects.filter(pk=pool.pk).update(fallback_pool=spare)
    make_codes(pool, ["MAIN"])
    make_codes(spare, ["S1"])

    first = code_issue_batch(pool=pool, customers=["a", "b"], idempotency_key="m")
    again = code_issue_batch(pool=pool, customers=["a", "b"], idempotency_key="m")

    for outcome in (first, again):
        assert [(i.customer, i.code.code) for i in outcome.issued] == [("a", "MAIN"), ("b", "S1")]
        for issued in outcome.issued:
            stored = Code.objects.select_related("pool").get(pk=issued.code.pk)
            fields = [field.attname for field in Code._meta.concrete_fields]
            assert [getattr(issued.code, f) for f in fields] == [getattr(stored, f) for f in fields]
            assert issued.code.issued_to == issued.customer
            assert not issued.code._state.adding
            assert issued.code._state.db == stored._state.db
            with django_assert_num_queries(0):
                assert issued.code.pool.slug == stored.pool.slug


@pytest.mark.postgresql
def test_a_retry_finds_its_codes_one_probe_per_customer_whatever_the_statistics():
    """A batch looks its customers' keys up by index, one probe each, in a form that no
    read of the pool's own entries can answer: such a plan is what the planner chose for a
    pool it thought had hardly any issues (a new one), and it read all the pool's issues once
    per batch or once per key."""
    pool = make_pool(launched=True)
    make_codes(pool, [f"C{i}" for i in range(150)])
    customers = [f"customer-{i}" for i in range(150)]
    first = code_issue_batch(pool=pool, customers=customers, idempotency_key="m")

    with CaptureQueriesContext(connection) as queries:
        again = code_issue_batch(pool=pool, customers=customers, idempotency_key="m")
    assert [i.code.pk for i in again.issued] == [i.code.pk for i in first.issued]
    [look_up] = [q["sql"] for q in queries if "json_array_elements(" in q["sql"]]
    with connection.cursor() as cursor:
        # Left a choice on this small table, the planner reads it whole; the question is
        # which ways other than that one the look-up leaves open.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {look_up}")
        plan = [row[0] for row in cursor.fetchall()]
    issues_read = [line for line in plan if " on pools_codeissue" in line]
    assert issues_read and all("code_issue_customer" in line for line in issues_read), "\n".join(
        plan
    )


def test_a_batch_does_not_take_a_code_issued_under_its_key_to_someone_else():
    pool = make_pool(launched=True)
    make_codes(pool, ["A1", "A2", "A3"])
    code_issue(pool=pool, customer="intruder", idempotency_key=batch_key("m", "b"))

    assert refusal(code_issue_batch, pool=pool, customers=["a", "b"], idempotency_key="m") == (
        Refusal.KEY_REUSED
    )
    assert CodeIssue.objects.filter(customer="b").count() == 0
    assert pool_stock(pool=pool) == 2


def test_a_batch_refused_by_a_key_in_the_fallback_issues_nothing():
    """The key of a customer of the batch holds a code of the fallback, issued to someone
    else when the pool was dry: refused as code_issue is, and no code leaves either pool."""
    pool = make_pool(launched=True)
    spare = make_pool(pool.campaign, launched=True)
    Pool.objects.filter(pk=pool.pk).update(fallback_pool=spare)
    make_codes(spare, ["S1", "S2", "S3"])
    code_issue(pool=pool, customer="intruder", idempotency_key=batch_key("m", "b"))
    make_codes(pool, ["A1"])

    assert refusal(code_issue_batch, pool=pool, customers=["a", "b"], idempotency_key="m") == (
        Refusal.KEY_REUSED
    )
    assert (pool_stock(pool=pool), pool_stock(pool=spare)) == (1, 2)
    assert list(CodeIssue.objects.values_list("customer", flat=True)) == ["intruder"]


def test_fallback_must_be_in_the_same_campaign_and_not_the_pool_itself():
    pool = make_pool(launched=True)
    other = make_pool(launched=True)
    pool.fallback_pool = other
    with pytest.raises(ValidationError):
        pool.full_clean()
    pool.fallback_pool = pool
    with pytest.raises(ValidationError):
        pool.full_clean()


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


def test_release_gives_an_unredeemed_code_back_only_under_its_key():
    pool = make_pool(launched=True)
    make_codes(pool, ["A1"])
    code = code_issue(pool=pool, customer="a", idempotency_key="msg-1")

    assert refusal(code_release, pool=pool, code="A1", idempotency_key="other") == (
        Refusal.UNKNOWN_CODE
    )
    released = code_release(pool=pool, code="A1", idempotency_key="msg-1")
    assert (released.status, released.issued_to) == (Code.Status.AVAILABLE, "")
    assert pool_stock(pool=pool) == 1
    issue = CodeIssue.objects.get(code=code)
    assert issue.released_at and issue.released_key == "msg-1" and issue.idempotency_key == ""
    # The key is free again: a retry issues anew, and the released code can go to someone else.
    assert code_issue(pool=pool, customer="b").pk == code.pk
    assert refusal(code_release, pool=pool, code="A1", idempotency_key="msg-1") == (
        Refusal.UNKNOWN_CODE
    )


def test_release_refuses_a_redeemed_code():
    pool = make_pool(launched=True)
    make_codes(pool, ["A1"])
    code_issue(pool=pool, customer="a", idempotency_key="msg-1")
    code_redeem(code="A1", customer="a", pool=pool)
    assert refusal(code_release, pool=pool, code="A1", idempotency_key="msg-1") == (
        Refusal.ALREADY_REDEEMED
    )


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_release_races_a_redemption_and_exactly_one_wins():
    """Both start together (a barrier) on separate connections; the row lock orders them."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    pool = make_pool(launched=True, require_issue_before_redeem=True, issued_validity_days=30)
    rounds = 20
    make_codes(pool, [f"R{i}" for i in range(rounds)])
    for i in range(rounds):
        code_issue(pool=pool, customer=f"c{i}", idempotency_key=f"k{i}")
    for i in range(rounds):
        barrier = threading.Barrier(2)
        results = {}

        def run(name, call, barrier=barrier, results=results, **kwargs):
            try:
                barrier.wait()
                call(**kwargs)
                results[name] = "ok"
            except CodeRefused as refused:
                results[name] = refused.reason
            finally:
                connection.close()

        threads = [
            threading.Thread(
                target=run,
                args=("release", code_release),
                kwargs={"pool": pool, "code": f"R{i}", "idempotency_key": f"k{i}"},
            ),
            threading.Thread(
                target=run,
                args=("redeem", code_redeem),
                kwargs={"pool": pool, "code": f"R{i}", "customer": f"c{i}"},
            ),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert list(results.values()).count("ok") == 1, results
        code = Code.objects.get(code=f"R{i}")
        if results["release"] == "ok":
            assert (code.status, code.times_redeemed) == (Code.Status.AVAILABLE, 0)
        else:
            assert code.status == Code.Status.REDEEMED


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


def test_a_multiple_use_code_given_back_frees_its_key_and_leaves_the_counts():
    from pools.code_services import code_release

    pool = make_pool(allow_multiple_use=True, launched=True)
    make_codes(pool, ["MULTI"])
    code_issue(pool=pool, customer="a", idempotency_key="ka")
    before = (counts(pool), pool_stock(pool=pool))

    released = code_release(pool=pool, code="MULTI", idempotency_key="ka")

    # Handing it out used nothing up, so giving it back adds nothing to stock.
    assert released.status == Code.Status.AVAILABLE
    assert (counts(pool), pool_stock(pool=pool)) == before == ((1, 0, 0), 1)
    assert CodeIssue.objects.get().released_at is not None
    assert code_issue(pool=pool, customer="a", idempotency_key="ka").code == "MULTI"
    assert CodeIssue.objects.count() == 2


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_under_one_key_issue_each_customer_once():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    pool = make_pool(launched=True)
    make_codes(pool, [f"C{i}" for i in range(400)])
    customers = [f"c{i}" for i in range(100)]
    barrier = threading.Barrier(4)
    outcomes = []

    def run():
        try:
            barrier.wait()
            outcomes.append(code_issue_batch(pool=pool, customers=customers, idempotency_key="k"))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 4
    first = {i.customer: i.code.pk for i in outcomes[0].issued}
    assert all({i.customer: i.code.pk for i in o.issued} == first for o in outcomes)
    assert Code.objects.filter(pool=pool, status=Code.Status.ISSUED).count() == 100
    assert CodeIssue.objects.filter(pool=pool).count() == 100


@settings(max_examples=30, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=12), min_size=1, max_size=30))
def test_batch_of_any_customer_ids_gives_each_valid_id_one_code_or_refuses(customers):
    pool = make_pool(launched=True)
    make_codes(pool, [f"H{i}" for i in range(40)])
    try:
        outcome = code_issue_batch(pool=pool, customers=customers, idempotency_key="p")
    except ValidationError:
        assert any(not c.strip() or "\x00" in c for c in customers)
        return
    wanted = list(dict.fromkeys(c.strip() for c in customers))
    assert [i.customer for i in outcome.issued] == wanted
    assert len({i.code.pk for i in outcome.issued}) == len(wanted)


@pytest.mark.parametrize("key", ["", "mailing-1"])
def test_a_customer_listed_twice_in_other_spellings_gets_one_code(key):
    pool = make_pool(launched=True)
    make_codes(pool, [f"W{i}" for i in range(6)])

    outcome = code_issue_batch(
        pool=pool, customers=["ann", " ann", "bob\t", "ann ", "bob"], idempotency_key=key
    )

    assert [(i.customer, i.code.issued_to) for i in outcome.issued] == [
        ("ann", "ann"),
        ("bob", "bob"),
    ]
    assert outcome.short == []
    assert CodeIssue.objects.filter(pool=pool).count() == 2
    assert counts(pool) == (4, 2, 0)


def test_a_code_before_the_claims_starting_point_is_still_issued():
    """Claims start after the last code claimed; a code before it that becomes issuable (its
    window opens, or it is given back) is found once none is left after it."""
    pool = make_pool(launched=True)
    later = timezone.now() + timezone.timedelta(days=1)
    make_codes(pool, ["EARLY"], issue_start=later)
    make_codes(pool, ["NOW"])
    assert code_issue(pool=pool, customer="a").code == "NOW"
    Code.objects.filter(code="EARLY").update(issue_start=None)
    assert code_issue(pool=pool, customer="b").code == "EARLY"
    assert refusal(code_issue, pool=pool, customer="c") == Refusal.NO_CODES_LEFT
    Code.objects.filter(code="EARLY").update(status=Code.Status.AVAILABLE)
    assert [i.code.code for i in code_issue_batch(pool=pool, customers=["d", "e"]).issued] == [
        "EARLY"
    ]


def test_message_batch_render_gives_each_recipient_their_code_and_again_on_retry():
    from pools.messages import message_render_batch

    pool = make_pool(launched=True, template_parameter="SALE")
    make_codes(pool, ["M1", "M2"])
    texts, short = message_render_batch(
        text="Hi, {{ promo.SALE }}", customers=["a", "b", "c"], mailing_id="mail-1"
    )
    assert texts == {"a": "Hi, M1", "b": "Hi, M2"} and short == ["c"]
    again, _ = message_render_batch(
        text="Hi, {{ promo.SALE }}", customers=["a", "b"], mailing_id="mail-1"
    )
    assert again == {"a": "Hi, M1", "b": "Hi, M2"}


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


@pytest.mark.postgresql
def test_on_postgresql_a_code_given_back_waits_until_none_is_left_after_the_last_claimed():
    """PostgreSQL's claim goes on after the last code it claimed (a claim from the first code
    would walk past the old index entry of every code issued): a code given back is taken
    once nothing is left after that point, and the customers it serves are those still
    without a code."""
    pool = make_pool(launched=True)
    make_codes(pool, ["A1", "A2", "A3", "A4"])
    code_issue(pool=pool, customer="a", idempotency_key="ka")  # A1
    code_issue(pool=pool, customer="b")  # A2
    code_release(pool=pool, code="A1", idempotency_key="ka")

    assert code_issue(pool=pool, customer="c").code == "A3"
    outcome = code_issue_batch(pool=pool, customers=["d", "e", "f"])

    assert [(i.customer, i.code.code) for i in outcome.issued] == [("d", "A4"), ("e", "A1")]
    assert outcome.short == ["f"]
    assert counts(pool) == (0, 4, 0)


@pytest.mark.postgresql
def test_a_claim_that_goes_back_to_the_first_code_announces_the_codes_it_took_before(
    django_capture_on_commit_callbacks,
):
    """The pool alerts: its stock changed even when the look from the first code finds
    nothing more (or only it finds codes)."""
    from pools.signals import stock_changed

    heard = []

    def receiver(sender, pool, **kwargs):
        heard.append(pool.pk)

    pool = make_pool(launched=True, notify_below_enabled=True, notify_below=1)
    make_codes(pool, ["X1", "X2", "X3"])
    code_issue(pool=pool, customer="a", idempotency_key="ka")  # X1
    stock_changed.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            outcome = code_issue_batch(pool=pool, customers=["b", "c", "d"])
        assert [i.code.code for i in outcome.issued] == ["X2", "X3"]
        assert heard == [pool.pk]

        code_release(pool=pool, code="X1", idempotency_key="ka")
        with django_capture_on_commit_callbacks(execute=True):
            outcome = code_issue_batch(pool=pool, customers=["e", "f"])
        assert ([i.code.code for i in outcome.issued], outcome.short) == (["X1"], ["f"])
        assert heard == [pool.pk, pool.pk]
    finally:
        stock_changed.disconnect(receiver)


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
    dry = make_pool(**alerting)
    stock_changed.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            code_issue_batch(pool=multiple, customers=["a", "b"])
            code_issue_batch(pool=single, customers=["a", "b"])
            assert code_issue_batch(pool=dry, customers=["a"]).short == ["a"]
    finally:
        stock_changed.disconnect(receiver)

    assert heard == [single.pk]
