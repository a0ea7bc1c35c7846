"""Issuing single codes: each code handed out once, within its issue window, from active pools
only; a key makes a retry safe; multiple-use pools; the claim each database takes and what it
announces; customer ids as every service cleans them; race tests that fail for sure when the
lock they rely on is removed. Batches, releases and fallbacks are in test_batches.py, redemption
in test_redemption.py."""

import threading
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from pools.code_services import (
    code_check,
    code_issue,
    code_issue_batch,
    code_mark_issued,
    code_redeem,
    codes_claim,
    customer_clean,
    issuing,
)
from pools.models import CUSTOMER_MAX_LENGTH, Code, CodeIssue, Redemption
from pools.refusals import CodeRefused, Refusal
from pools.selectors import pool_stock
from tests.factories import counts, make_codes, make_pool, refusal
from tests.pools.locks import in_thread, row_held_elsewhere

pytestmark = pytest.mark.django_db


def test_issue_hands_out_each_code_once_then_says_none_left():
    pool = make_pool(launched=True)
    make_codes(pool, ["A1", "A2"])

    first = code_issue(pool=pool, customer="c1")
    second = code_issue(pool=pool, customer="c2")

    assert {first.code, second.code} == {"A1", "A2"}
    assert (first.status, first.issued_to) == (Code.Status.ISSUED, "c1")
    assert refusal(code_issue, pool=pool, customer="c3") == Refusal.NO_CODES_LEFT
    assert counts(pool) == (0, 2, 0)
    assert pool_stock(pool=pool) == 0


def test_issue_respects_the_issue_window_and_expiry():
    pool = make_pool(launched=True)
    now = timezone.now()
    make_codes(pool, ["LATER"], issue_start=now + timedelta(days=1))
    make_codes(pool, ["OVER"], issue_end=now - timedelta(days=1))
    make_codes(pool, ["GONE"], available_till=now - timedelta(seconds=1))
    make_codes(pool, ["NOW"], issue_start=now - timedelta(days=1), issue_end=now + timedelta(1))

    assert code_issue(pool=pool, customer="c").code == "NOW"
    assert refusal(code_issue, pool=pool, customer="c") == Refusal.NO_CODES_LEFT


@pytest.mark.parametrize("multiple_use", [False, True], ids=["single-use", "multiple-use"])
def test_a_window_includes_both_its_edges_to_the_microsecond(frozen, multiple_use):
    pool = make_pool(launched=True, allow_multiple_use=multiple_use)
    tick = timedelta(microseconds=1)
    make_codes(pool, ["ENDS-BEFORE"], issue_end=frozen - tick)
    make_codes(pool, ["STARTS-AFTER"], issue_start=frozen + tick)
    make_codes(pool, ["EXPIRED"], available_till=frozen - tick)
    edges = {"ENDS-NOW": "issue_end", "STARTS-NOW": "issue_start", "EXPIRES-NOW": "available_till"}
    for text, edge in edges.items():
        make_codes(pool, [text], **{edge: frozen})
        issued = code_issue(pool=pool, customer=f"c-{text}")
        assert issued.code == text
        if multiple_use:  # handed out without being used up: out of the way of the next one
            Code.objects.filter(pk=issued.pk).update(status=Code.Status.WITHDRAWN)

    assert refusal(code_issue, pool=pool, customer="late") == Refusal.NO_CODES_LEFT
    outcome = code_issue_batch(pool=pool, customers=["b1"])
    assert (outcome.issued, outcome.short) == ([], ["b1"])


def test_issue_only_from_active_pools():
    pool = make_pool()
    make_codes(pool, ["A1"])

    assert refusal(code_issue, pool=pool, customer="c") == Refusal.POOL_NOT_ACTIVE


def test_retry_with_the_same_idempotency_key_returns_the_same_code():
    pool = make_pool(launched=True)
    make_codes(pool, ["A1", "A2"])

    first = code_issue(pool=pool, customer="c", idempotency_key="msg-1")
    again = code_issue(pool=pool, customer="c", idempotency_key="msg-1")

    assert first.pk == again.pk
    assert pool_stock(pool=pool) == 1
    assert refusal(code_issue, pool=pool, customer="other", idempotency_key="msg-1") == (
        Refusal.KEY_REUSED
    )


def test_one_key_in_two_pools_issues_a_code_of_each():
    # One message with two template parameters: each pool issues under the message's id.
    first, second = make_pool(launched=True), make_pool(launched=True)
    make_codes(first, ["F1", "F2"])
    make_codes(second, ["S1", "S2"])

    from_first = code_issue(pool=first, customer="c", idempotency_key="msg-1")
    from_second = code_issue(pool=second, customer="c", idempotency_key="msg-1")

    assert (from_first.pool_id, from_second.pool_id) == (first.pk, second.pk)
    assert code_issue(pool=first, customer="c", idempotency_key="msg-1").pk == from_first.pk
    assert code_issue(pool=second, customer="c", idempotency_key="msg-1").pk == from_second.pk
    # Under one key, the pools' customers are their own: no key reused across pools.
    assert code_issue(pool=second, customer="d", idempotency_key="msg-2").pool_id == second.pk
    assert code_issue(pool=first, customer="e", idempotency_key="msg-2").pool_id == first.pk
    assert counts(first) == counts(second) == (0, 2, 0)


def test_customer_ids_differing_in_case_are_different_customers():
    # Ids come from other systems and may be case-sensitive: "Ab7" and "ab7" are two people.
    pool = make_pool(launched=True, require_issue_before_redeem=True, issued_validity_days=30)
    make_codes(pool, ["P1", "P2"])

    upper = code_issue(pool=pool, customer="Ab7", idempotency_key="k")
    assert refusal(code_issue, pool=pool, customer="ab7", idempotency_key="k") == (
        Refusal.KEY_REUSED
    )
    lower = code_issue(pool=pool, customer="ab7")

    assert (upper.issued_to, lower.issued_to) == ("Ab7", "ab7")
    assert upper.pk != lower.pk
    assert refusal(code_check, code=upper.code, customer="ab7") == Refusal.NOT_ISSUED_TO_CUSTOMER


def test_multiple_use_pool_hands_out_a_code_without_using_it_up():
    pool = make_pool(allow_multiple_use=True, launched=True)
    make_codes(pool, ["MULTI"])

    assert code_issue(pool=pool, customer="c1").code == "MULTI"
    assert code_issue(pool=pool, customer="c2").code == "MULTI"
    assert CodeIssue.objects.filter(code__code="MULTI").count() == 2
    code_redeem(code="MULTI", customer="c1")
    code_redeem(code="MULTI", customer="c2")
    assert Code.objects.get().times_redeemed == 2
    assert Redemption.objects.count() == 2
    assert counts(pool) == (1, 0, 0)


def run_in_threads(count: int, work) -> list[Exception]:
    errors = []

    def target(worker: int):
        try:
            work(worker)
        except Exception as error:  # noqa: BLE001  (reported to the test)
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=target, args=(w,)) for w in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.mark.postgresql  # row locks
@pytest.mark.django_db(transaction=True)
def test_concurrent_issue_and_redeem_never_double_spend():
    pool = make_pool(launched=True)
    codes = [f"C{i}" for i in range(80)]
    make_codes(pool, codes)
    issued, redeemed = [], []

    def issue_until_empty(worker: int):
        for n in range(1000):
            try:
                issued.append(code_issue(pool=pool, customer=f"w{worker}-{n}").code)
            except CodeRefused as refused:
                assert refused.reason == Refusal.NO_CODES_LEFT
                return

    def redeem_everything(worker: int):
        for code in codes if worker % 2 else list(reversed(codes)):
            try:
                code_redeem(code=code, customer=f"w{worker}")
                redeemed.append(code)
            except CodeRefused as refused:
                assert refused.reason == Refusal.ALREADY_REDEEMED

    assert run_in_threads(8, issue_until_empty) == []
    assert sorted(issued) == sorted(codes)
    assert run_in_threads(8, redeem_everything) == []
    assert sorted(redeemed) == sorted(codes)
    assert Redemption.objects.count() == len(codes)
    assert counts(pool) == (0, 0, len(codes))


def test_key_race_inside_a_transaction_returns_the_winners_code_and_leaves_it_usable(
    monkeypatch,
):
    """As if a concurrent call had recorded the key after this call looked for it: the look-ups
    before the claim miss it, the claim then violates the key's constraint, and the recovery
    branch's real look-up returns the winner's code, inside the caller's transaction (which a
    savepoint keeps usable)."""
    from django.db import transaction

    from pools.code_services import issuing as services

    pool = make_pool(launched=True)
    make_codes(pool, ["K1", "K2"])
    first = code_issue(pool=pool, customer="c", idempotency_key="dup")
    real_lookup = services._issue_by_key
    claimed = []

    def lookup_missing_it_before_the_claim(*args):
        return real_lookup(*args) if claimed else None

    def counting(name):
        real = getattr(services, name)

        def claim(*args, **kwargs):
            claimed.append(name)
            return real(*args, **kwargs)

        return claim

    monkeypatch.setattr(services, "_issue_by_key", lookup_missing_it_before_the_claim)
    # Every database's claim goes through the one claim statement.
    monkeypatch.setattr(services, "codes_claim", counting("codes_claim"))

    with transaction.atomic():
        again = code_issue(pool=pool, customer="c", idempotency_key="dup")
        assert again.pk == first.pk
        assert Code.objects.filter(pk=first.pk).exists()  # the transaction still works

    assert len(claimed) == 1
    assert CodeIssue.objects.filter(idempotency_key="dup").count() == 1
    assert counts(pool) == (1, 1, 0)


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


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_the_claim_skips_a_code_another_transaction_holds():
    """A second connection holds the first code's row lock for the whole issue: the claim must
    take the next code at once. Without SKIP LOCKED it waits for the lock (and the lock timeout
    set here makes that an error), or, once the holder commits, finds nothing."""
    pool = make_pool(launched=True)
    make_codes(pool, ["H1", "H2"])
    with row_held_elsewhere(f"SELECT id FROM {Code._meta.db_table} WHERE code = 'H1' FOR UPDATE"):
        issued = code_issue(pool=pool, customer="c")
        assert issued.code == "H2"
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
        in_thread(lambda: code_issue(pool=pool, customer="c", idempotency_key="race"), results, n)
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


@pytest.mark.django_db(transaction=True)
def test_a_claim_outside_a_transaction_whose_key_is_taken_raises_and_takes_nothing():
    """Outside a transaction the claim commits on its own: a key taken meanwhile fails it
    whole, and the caller hears of it (code_issue then returns the code issued under it)."""
    pool = make_pool(launched=True)
    make_codes(pool, ["T1", "T2"])
    code_issue(pool=pool, customer="a", idempotency_key="taken")  # T1

    with pytest.raises(IntegrityError):
        codes_claim(pool=pool, wanted=[("b", "taken")], caller="")

    assert Code.objects.get(code="T2").status == Code.Status.AVAILABLE
    assert list(CodeIssue.objects.values_list("customer", "idempotency_key")) == [("a", "taken")]
    assert counts(pool) == (1, 1, 0)


def test_an_issue_from_the_admin_names_no_caller():
    pool = make_pool(launched=True)
    make_codes(pool, ["A1"])

    code_issue(pool=pool, customer="c")

    assert CodeIssue.objects.get().issued_by == ""


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
