"""Races explored on purpose: every pair of writers on one code (or one customer's key), each
interleaving forced at the statement level. Two sessions (threads with their own connections):
the first runs up to the statement that takes its lock and holds its transaction open there
until the second waits for that lock (seen through pg_blocking_pids), is past its own locking
statement too, or has finished (tests/pools/locks.py, interleave). Each pair runs both ways
round, and after each the database must satisfy tests/pools/invariants.py.

The `how` asserted tells the interleaving that happened: "waited" is a lock between them,
"inside" two parties that do not touch each other's rows (a claim skips locked codes). Issues
here are made under an idempotency key, the path that runs in a transaction of its own (a bare
issue is one statement that commits at once: nothing for the other party to meet)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from pools.code_services import (
    code_addition_create,
    code_addition_undo,
    code_issue,
    code_issue_batch,
    code_mark_issued,
    code_redeem,
    code_release,
    codes_expire,
    codes_withdraw,
)
from pools.models import Code, CodeIssue, Pool, Redemption
from pools.refusals import CodeRefused, Refusal
from tests.factories import make_codes, make_pool
from tests.pools.invariants import assert_invariants
from tests.pools.locks import Interleaving, Party, interleave

pytestmark = [pytest.mark.postgresql, pytest.mark.django_db(transaction=True)]

# The statement after which each party holds (a piece of its SQL): the one that locks the code
# (or, with the lock removed, reads it).
FIND = 'FROM "pools_code" INNER JOIN "pools_pool"'  # _find_code: redeem, release, mark as issued
CLAIM = 'UPDATE "pools_code" c SET'  # the claim: single issues and batches
WITHDRAW = '"pools_code"."code" IN ('  # a withdrawal's slice
EXPIRE = '"pools_code"."issue_end" < '  # the expiry sweep's slice
UNDO = "doomed AS ("  # an undo's slice

BOTH_WAYS = pytest.mark.parametrize("first", [0, 1], ids=["a-first", "b-first"])


def race(parties: list[Party], first: int) -> Interleaving:
    """Run the two parties with parties[first] taking its lock first."""
    return interleave(parties[first], parties[1 - first])


def refused(result) -> Refusal | None:
    return result.reason if isinstance(result, CodeRefused) else None


def redeem(code: str, customer: str) -> Party:
    return Party(f"redeem-{customer}", lambda: code_redeem(code=code, customer=customer), at=FIND)


def issue(pool: Pool, customer: str, key: str) -> Party:
    return Party(
        f"issue-{customer}",
        lambda: code_issue(pool=pool, customer=customer, idempotency_key=key),
        at=CLAIM,
    )


@BOTH_WAYS
def test_redeem_redeem_single_use(first):
    pool = make_pool(launched=True)
    make_codes(pool, ["ONCE"])

    ran = race([redeem("ONCE", "ann"), redeem("ONCE", "bob")], first)

    assert_invariants()
    assert ran.how == "waited"
    winner, loser = ran.results.values()
    assert isinstance(winner, Redemption), ran.results
    assert refused(loser) == Refusal.ALREADY_REDEEMED
    assert Code.objects.get().times_redeemed == 1


@BOTH_WAYS
def test_redeem_redeem_multiple_use(first):
    """The row lock is what keeps times_redeemed right: without it both read 0 and write 1."""
    pool = make_pool(launched=True, allow_multiple_use=True)
    make_codes(pool, ["MULTI"])

    ran = race([redeem("MULTI", "ann"), redeem("MULTI", "bob")], first)

    assert_invariants()
    assert all(isinstance(r, Redemption) for r in ran.results.values()), ran.results
    assert Code.objects.get().times_redeemed == 2
    assert ran.how == "waited"


@BOTH_WAYS
def test_issue_release(first):
    """Ann's code going back to stock meets Bob's issue from a pool with no other code: the
    claim reads the code as issued while the release is open; its second look from the first
    code (claims.py) comes after the release committed only when the release went first."""
    pool = make_pool(launched=True)
    make_codes(pool, ["R1"])
    code_issue(pool=pool, customer="ann", idempotency_key="k-ann")
    release = Party(
        "release", lambda: code_release(pool=pool, code="R1", idempotency_key="k-ann"), at=FIND
    )

    ran = race([issue(pool, "bob", "k-bob"), release], first)

    assert_invariants()
    assert ran.how == "inside"
    assert ran.results["release"].status == Code.Status.AVAILABLE
    if first == 0:
        assert refused(ran.results["issue-bob"]) == Refusal.NO_CODES_LEFT
    else:
        assert ran.results["issue-bob"].code == "R1"
    # Back in stock either way: Bob's retry (or first issue) gets it.
    assert code_issue(pool=pool, customer="bob", idempotency_key="k-bob").code == "R1"
    assert_invariants()


@BOTH_WAYS
def test_release_redeem(first):
    """A release and a redemption of one code never both succeed (code_release's promise)."""
    pool = make_pool(launched=True)
    make_codes(pool, ["R1"])
    code_issue(pool=pool, customer="ann", idempotency_key="k-ann")
    release = Party(
        "release", lambda: code_release(pool=pool, code="R1", idempotency_key="k-ann"), at=FIND
    )

    ran = race([release, redeem("R1", "ann")], first)

    assert_invariants()
    assert ran.how == "waited"
    assert isinstance(ran.results["redeem-ann"], Redemption), ran.results
    if first == 0:
        # Given back first: what Ann redeems is a code of the stock.
        assert isinstance(ran.results["release"], Code)
    else:
        assert refused(ran.results["release"]) == Refusal.ALREADY_REDEEMED
    assert Code.objects.get().status == Code.Status.REDEEMED


def batch_and_single(pool: Pool) -> list[Party]:
    """A batch under "news" for ann and bob, and a single issue for ann under "news:ann": the
    same issue (batch_key)."""
    return [
        Party(
            "batch",
            lambda: code_issue_batch(pool=pool, customers=["ann", "bob"], idempotency_key="news"),
            at=CLAIM,
        ),
        issue(pool, "ann", "news:ann"),
    ]


@BOTH_WAYS
def test_batch_single_issue_under_one_key(first):
    pool = make_pool(launched=True)
    make_codes(pool, ["B1", "B2", "B3"])

    ran = race(batch_and_single(pool), first)

    assert_invariants()
    # The second waits for the first's key, then returns the code issued under it.
    assert ran.how == "waited"
    batch, single = ran.results["batch"], ran.results["issue-ann"]
    assert not isinstance(batch, Exception) and isinstance(single, Code), ran.results
    assert {i.customer: i.code.code for i in batch.issued}["ann"] == single.code
    assert CodeIssue.objects.filter(customer="ann").count() == 1
    assert CodeIssue.objects.filter(customer="bob").count() == 1


@BOTH_WAYS
def test_batch_single_issue_under_one_key_as_the_pool_runs_dry(first):
    """The pool's last code goes to one of them; the other, finding the pool dry, must not take
    a second code for the same key from the fallback."""
    pool = make_pool(launched=True)
    spare = make_pool(pool.campaign, launched=True)
    Pool.objects.filter(pk=pool.pk).update(fallback_pool=spare)
    make_codes(pool, ["MAIN"])
    make_codes(spare, ["S1", "S2", "S3"])

    ran = race(batch_and_single(pool), first)

    assert_invariants()
    # On the batch key's lock, which the single issue holds shared (_key_lock).
    assert ran.how == "waited"
    batch, single = ran.results["batch"], ran.results["issue-ann"]
    assert not isinstance(batch, Exception) and isinstance(single, Code), ran.results
    assert {i.customer: i.code.code for i in batch.issued}["ann"] == single.code == "MAIN"
    assert CodeIssue.objects.filter(customer="ann").count() == 1


@BOTH_WAYS
def test_withdraw_issue(first):
    pool = make_pool(launched=True)
    make_codes(pool, ["W1"])
    withdraw = Party("withdraw", lambda: codes_withdraw(pool=pool, codes=["W1"]), at=WITHDRAW)

    ran = race([withdraw, issue(pool, "bob", "k-bob")], first)

    assert_invariants()
    assert Code.objects.get().status == Code.Status.WITHDRAWN
    assert ran.results["withdraw"].codes_withdrawn == 1
    if first == 0:
        # The claim skips the code being withdrawn.
        assert ran.how == "inside"
        assert refused(ran.results["issue-bob"]) == Refusal.NO_CODES_LEFT
    else:
        # The withdrawal waits for the claim, then takes the issued code out of use.
        assert ran.how == "waited"
        assert ran.results["issue-bob"].code == "W1"
        assert ran.results["withdraw"].from_stock == 0


@BOTH_WAYS
def test_expiry_sweep_redeem(first):
    """A code past its Issue-end (still redeemable) swept while it is redeemed."""
    pool = make_pool(launched=True)
    make_codes(pool, ["E1"], issue_end=timezone.now() - timedelta(days=1))
    sweep = Party("sweep", lambda: codes_expire(), at=EXPIRE)

    ran = race([sweep, redeem("E1", "ann")], first)

    assert_invariants()
    assert isinstance(ran.results["redeem-ann"], Redemption), ran.results
    assert Code.objects.get().status == Code.Status.REDEEMED
    if first == 0:
        # The redemption waits for the sweep, then redeems the expired code.
        assert ran.how == "waited"
        assert ran.results["sweep"] == {pool.pk: 1}
    else:
        # The sweep skips the code being redeemed.
        assert ran.how == "inside"
        assert ran.results["sweep"] == {}


@BOTH_WAYS
def test_addition_undo_issue(first):
    pool = make_pool(launched=True)
    addition = code_addition_create(pool=pool)
    make_codes(pool, ["U1", "U2"], addition=addition)
    undo = Party("undo", lambda: code_addition_undo(addition=addition), at=UNDO)

    ran = race([undo, issue(pool, "bob", "k-bob")], first)

    assert_invariants()
    assert ran.how == "inside"
    if first == 0:
        # The claim skips the codes being removed.
        assert refused(ran.results["issue-bob"]) == Refusal.NO_CODES_LEFT
        assert ran.results["undo"].removed == 2
        assert not Code.objects.exists()
    else:
        # The undo skips (and keeps) the code being issued.
        assert ran.results["issue-bob"].code == "U1"
        assert (ran.results["undo"].removed, ran.results["undo"].kept_issued) == (1, 1)
        assert list(Code.objects.values_list("code", "issued_to")) == [("U1", "bob")]


@BOTH_WAYS
def test_mark_issued_issue(first):
    pool = make_pool(launched=True)
    make_codes(pool, ["M1"])
    mark = Party("mark", lambda: code_mark_issued(code="M1", customer="ann"), at=FIND)

    ran = race([mark, issue(pool, "bob", "k-bob")], first)

    assert_invariants()
    if first == 0:
        assert ran.how == "inside"
        assert refused(ran.results["issue-bob"]) == Refusal.NO_CODES_LEFT
        assert Code.objects.get().issued_to == "ann"
    else:
        assert ran.how == "waited"
        assert refused(ran.results["mark"]) == Refusal.ALREADY_ISSUED
        assert Code.objects.get().issued_to == "bob"
