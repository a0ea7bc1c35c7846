"""Issuing in batches, giving codes back and falling back to another pool."""

import threading

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
    code_issue,
    code_issue_batch,
    code_redeem,
    code_release,
)
from pools.models import Code, CodeIssue, Pool
from pools.refusals import CodeRefused, Refusal
from pools.selectors import pool_stock
from tests.factories import make_codes, make_pool, refusal

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
