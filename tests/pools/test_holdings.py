"""What a customer holds: a withdrawn, expired or released code is never handed out again, by a
single issue, a batch or a batch once per customer."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from pools.code_services import (
    code_issue,
    code_issue_batch,
    code_redeem,
    code_release,
    codes_held,
    codes_withdraw,
    customer_holdings,
)
from pools.models import Code, CodeIssue
from tests.factories import make_codes, make_pool

pytestmark = pytest.mark.django_db


def kill(pool, code: str, how: str) -> None:
    """Make an issued code dead: withdrawn, expired (past Available-till) or given back."""
    if how == "withdrawn":
        codes_withdraw(pool=pool, codes=[code])
    elif how == "expired":
        Code.objects.filter(code=code).update(available_till=timezone.now() - timedelta(hours=1))
    else:
        issue = CodeIssue.objects.get(code__code=code)
        code_release(pool=pool, code=code, idempotency_key=issue.idempotency_key)


DEATHS = ["withdrawn", "expired", "released"]


def fresh(how: str, dead: str, *others: str) -> set[str]:
    """The codes a replacement may be: another one; or, for a code given back (it went back to
    stock, alive), that one too: which is first depends on where the database's claim starts."""
    return {*others, dead} if how == "released" else set(others)


@pytest.mark.parametrize("how", DEATHS)
def test_a_single_issue_retried_under_its_key_issues_anew_when_its_code_died(how):
    pool = make_pool(launched=True)
    make_codes(pool, ["S1", "S2"])
    assert code_issue(pool=pool, customer="ann", idempotency_key="msg-1").code == "S1"
    kill(pool, "S1", how)

    again = code_issue(pool=pool, customer="ann", idempotency_key="msg-1")

    assert again.code in fresh(how, "S1", "S2")
    assert (again.status, again.issued_to) == (Code.Status.ISSUED, "ann")
    # The dead code's issue stays in its history, its key moved aside; one issue per key.
    assert list(CodeIssue.objects.filter(idempotency_key="msg-1").values_list("code__code")) == [
        (again.code,)
    ]
    assert CodeIssue.objects.filter(code__code="S1", released_key="msg-1").exists()
    # And a second retry returns the live one.
    assert code_issue(pool=pool, customer="ann", idempotency_key="msg-1").code == again.code


def test_a_single_issue_retried_after_the_customer_redeemed_returns_what_was_issued():
    pool = make_pool(launched=True)
    make_codes(pool, ["S1", "S2"])
    code_issue(pool=pool, customer="ann", idempotency_key="msg-1")
    code_redeem(code="S1", customer="ann", pool=pool)

    assert code_issue(pool=pool, customer="ann", idempotency_key="msg-1").code == "S1"


@pytest.mark.parametrize("how", DEATHS)
def test_a_batch_retried_under_its_key_gives_a_fresh_code_for_a_dead_one(how):
    pool = make_pool(launched=True)
    make_codes(pool, ["B1", "B2", "B3"])
    code_issue_batch(pool=pool, customers=["ann", "bob"], idempotency_key="mail")
    kill(pool, "B1", how)

    outcome = code_issue_batch(pool=pool, customers=["ann", "bob"], idempotency_key="mail")

    (ann, bob) = outcome.issued
    assert (ann.customer, ann.again) == ("ann", False)
    assert ann.code.code in fresh(how, "B1", "B3")
    assert (bob.customer, bob.code.code, bob.again) == ("bob", "B2", True)


@pytest.mark.parametrize("how", DEATHS)
def test_a_batch_once_per_customer_replaces_a_dead_code_and_says_so(how):
    pool = make_pool(launched=True)
    make_codes(pool, ["H1", "H2", "H3"])
    code_issue(pool=pool, customer="ann", idempotency_key="welcome")  # H1
    code_issue(pool=pool, customer="bob")  # H2
    kill(pool, "H1", how)

    outcome = code_issue_batch(
        pool=pool, customers=["ann", "bob"], idempotency_key="assignment", once_per_customer=True
    )

    (ann, bob) = outcome.issued
    assert (ann.customer, ann.again) == ("ann", False)
    assert ann.code.code in fresh(how, "H1", "H3")
    assert (bob.customer, bob.code.code, bob.again) == ("bob", "H2", True)
    # A code given back is simply not held: only withdrawn and expired codes are replaced.
    assert outcome.replaced == ([] if how == "released" else ["ann"])
    assert {c: code.code for c, code in codes_held(pool=pool, customers=["ann"]).items()} == {
        "ann": ann.code.code
    }


def test_once_per_customer_nothing_to_who_redeemed_a_fresh_code_for_a_code_used_by_another():
    pool = make_pool(launched=True)
    make_codes(pool, ["R1", "R2", "R3"])
    code_issue_batch(pool=pool, customers=["ann", "bob"], idempotency_key="assignment")
    code_redeem(code="R1", customer="ann", pool=pool)
    code_redeem(code="R2", customer="eve", pool=pool)  # bob's code, used by someone else

    outcome = code_issue_batch(
        pool=pool, customers=["ann", "bob"], idempotency_key="assignment", once_per_customer=True
    )

    assert [(i.customer, i.code.code) for i in outcome.issued] == [("bob", "R3")]
    assert (outcome.redeemed, outcome.replaced, outcome.short) == (["ann"], ["bob"], [])
    holdings = customer_holdings(pool=pool, customers=["ann", "bob"])
    assert {c: code.code for c, code in holdings.redeemed.items()} == {"ann": "R1"}
    assert {c: code.code for c, code in holdings.live.items()} == {"bob": "R3"}


def test_a_dead_code_that_cannot_be_replaced_leaves_its_customer_short_and_its_key_aside():
    pool = make_pool(launched=True)
    make_codes(pool, ["D1"])
    code_issue(pool=pool, customer="ann", idempotency_key="welcome")
    codes_withdraw(pool=pool, codes=["D1"])

    for _ in range(2):
        outcome = code_issue_batch(
            pool=pool, customers=["ann"], idempotency_key="assignment", once_per_customer=True
        )
        assert (outcome.issued, outcome.short) == ([], ["ann"])

    # Its issue stays in the code's history, its key moved aside once and kept there.
    assert list(CodeIssue.objects.values_list("code__code", "idempotency_key", "released_key")) == [
        ("D1", "", "welcome")
    ]


def test_the_latest_live_code_wins_over_a_dead_later_one():
    pool = make_pool(launched=True)
    make_codes(pool, ["L1", "L2"])
    code_issue(pool=pool, customer="ann", idempotency_key="k1")  # L1
    code_issue(pool=pool, customer="ann", idempotency_key="k2")  # L2
    codes_withdraw(pool=pool, codes=["L2"])

    assert {c: code.code for c, code in codes_held(pool=pool, customers=["ann"]).items()} == {
        "ann": "L1"
    }


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


# PostgreSQL looks holdings up with its own statement; another database with the ORM. Both run
# on PostgreSQL here (the other by its name), so that each is held to the same answer.
@pytest.mark.parametrize(
    "look_up", [pytest.param("postgresql", marks=pytest.mark.postgresql), "other"]
)
def test_each_databases_look_up_sorts_out_live_redeemed_and_dead_codes_alike(look_up, monkeypatch):
    from pools.models import Pool

    pool = make_pool(launched=True)
    spare = make_pool(pool.campaign, launched=True)
    Pool.objects.filter(pk=pool.pk).update(fallback_pool=spare)
    other = make_pool(launched=True)
    make_codes(pool, ["P1", "P2", "P3", "P4", "P5", "P6"])
    make_codes(spare, ["S1"])
    make_codes(other, ["O1"])
    code_issue(pool=pool, customer="a")  # P1
    code_issue(pool=pool, customer="e")  # P2
    code_issue(pool=pool, customer="e")  # P3: the latest
    code_issue(pool=pool, customer="d", idempotency_key="kd")  # P4, given back below
    withdrawn = code_issue(pool=pool, customer="w")  # P5, withdrawn below
    code_issue(pool=pool, customer="r")  # P6, redeemed below
    code_release(pool=pool, code="P4", idempotency_key="kd")
    codes_withdraw(pool=pool, codes=["P5"])
    code_redeem(code="P6", customer="r", pool=pool)
    code_issue(pool=spare, customer="b")  # S1
    code_issue(pool=other, customer="c")  # O1
    if look_up == "other":
        monkeypatch.setattr(connection, "vendor", "other")

    holdings = customer_holdings(pool=pool, customers=["a", "b", "c", "d", "e", "r", "w"])

    assert {c: code.code for c, code in holdings.live.items()} == {"a": "P1", "b": "S1", "e": "P3"}
    assert {c: code.code for c, code in holdings.redeemed.items()} == {"r": "P6"}
    assert holdings.dead == {"w": [CodeIssue.objects.get(code=withdrawn).pk]}


@pytest.mark.postgresql
def test_what_customers_hold_is_looked_up_one_probe_per_customer_whatever_the_statistics():
    """An assignment asks, slice after slice, what its customers hold: by the customer's
    index, one probe each, the pools filtered on the rows found. A look-up the planner could
    answer from the pool's entries read all the pool's issues once per slice (up to 0.2 s each
    at 1,000,000 issues)."""
    pool = make_pool(launched=True)
    make_codes(pool, [f"C{i}" for i in range(150)])
    customers = [f"customer-{i}" for i in range(150)]
    code_issue_batch(pool=pool, customers=customers)

    with CaptureQueriesContext(connection) as queries:
        held = codes_held(pool=pool, customers=customers)

    assert [held[c].code for c in customers] == [f"C{i}" for i in range(150)]
    [look_up] = [q["sql"] for q in queries if "json_array_elements_text(" in q["sql"]]
    with connection.cursor() as cursor:
        # Left a choice on this small table, the planner reads it whole; the question is
        # which ways other than that one the look-up leaves open.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {look_up}")
        plan = [row[0] for row in cursor.fetchall()]
    issues_read = [line for line in plan if " on pools_codeissue" in line]
    # Never by the pool's entries (code_issue_pool_time: all the pool's issues, each slice). On
    # this tiny table the planner may still read it whole by its primary key when the table's
    # statistics say it holds a row or two; by the customer's index otherwise.
    assert issues_read, "\n".join(plan)
    assert not any("code_issue_pool" in line for line in issues_read), "\n".join(plan)
    assert all(
        "code_issue_customer" in line or "pools_codeissue_pkey" in line for line in issues_read
    ), "\n".join(plan)
