"""Any interleaving of single issues, batches and assignments for overlapping customers, with
withdrawals, releases, expiry and redemptions mixed in, run one after another through the
services: no customer ever gets a dead code, nor someone else's, and each idempotency key names
at most one live code."""

import contextlib
import csv
import io
from datetime import timedelta

import pytest
from django.db.models import Count
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imports.assignments import assignment_start
from pools.code_services import (
    code_issue,
    code_issue_batch,
    code_redeem,
    code_release,
    codes_withdraw,
)
from pools.models import Code, CodeIssue, Redemption
from pools.refusals import CodeRefused
from tests.factories import make_codes, make_pool
from tests.imports.files import csv_upload

pytestmark = pytest.mark.django_db

CUSTOMERS = ["ann", "bob", "cat"]
customer = st.sampled_from(CUSTOMERS)
group = st.lists(customer, min_size=1, max_size=3)
operation = st.one_of(
    st.tuples(st.just("single"), customer, st.sampled_from(["k1", "k2"])),
    st.tuples(st.just("batch"), group, st.sampled_from(["m1", "m2"]), st.booleans()),
    st.tuples(st.just("assign"), group),
    st.tuples(st.just("withdraw"), customer),
    st.tuples(st.just("expire"), customer),
    st.tuples(st.just("release"), customer),
    st.tuples(st.just("redeem"), customer, customer),
)


def latest_issue(pool, who):
    return (
        CodeIssue.objects.filter(pool=pool, customer=who, released_at__isnull=True)
        .select_related("code")
        .order_by("-id")
        .first()
    )


def assert_sendable(code: Code, who: str, *, retry_of_own_redeemed_ok: bool) -> None:
    """The code handed to `who` now is theirs and can be used (or, for a retry under its key,
    is the code they redeemed themselves)."""
    code = Code.objects.get(pk=code.pk)
    assert code.issued_to == who
    assert code.status not in (Code.Status.WITHDRAWN, Code.Status.EXPIRED)
    if code.status == Code.Status.REDEEMED:
        # What the retry's key issued, used already: its validity since is beside the point.
        assert retry_of_own_redeemed_ok
        assert Redemption.objects.filter(code=code, customer=who).exists()
    else:
        assert code.available_till is None or code.available_till > timezone.now()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(operations=st.lists(operation, min_size=1, max_size=12))
def test_any_interleaving_never_hands_out_a_dead_code(on_commit_at_once, operations):
    pool = make_pool(launched=True)
    make_codes(pool, [f"{pool.slug}-{n}" for n in range(40)])
    for op in operations:
        kind = op[0]
        if kind == "single":
            _, who, key = op
            try:
                code = code_issue(pool=pool, customer=who, idempotency_key=key)
            except CodeRefused:
                continue
            assert_sendable(code, who, retry_of_own_redeemed_ok=True)
        elif kind == "batch":
            _, who, key, once = op
            outcome = code_issue_batch(
                pool=pool, customers=who, idempotency_key=key, once_per_customer=once
            )
            for issued in outcome.issued:
                assert_sendable(issued.code, issued.customer, retry_of_own_redeemed_ok=not once)
            if once:
                assert not {i.customer for i in outcome.issued} & set(outcome.redeemed)
        elif kind == "assign":
            _, who = op
            job = assignment_start(pool=pool, file=csv_upload("Customer\n" + "\n".join(who)))
            job.refresh_from_db()
            with job.result.open("rb") as stored:
                rows = list(csv.reader(io.StringIO(stored.read().decode())))[1:]
            for listed, code in rows:
                if code:
                    found = Code.objects.get(pool=pool, code=code)
                    assert_sendable(found, listed, retry_of_own_redeemed_ok=False)
        else:
            issue = latest_issue(pool, op[1])
            if issue is None:
                continue
            if kind == "withdraw":
                codes_withdraw(pool=pool, codes=[issue.code.code])
            elif kind == "expire":
                Code.objects.filter(pk=issue.code_id).update(
                    available_till=timezone.now() - timedelta(minutes=1)
                )
            elif kind == "release" and issue.idempotency_key:
                with contextlib.suppress(CodeRefused):
                    code_release(
                        pool=pool, code=issue.code.code, idempotency_key=issue.idempotency_key
                    )
            elif kind == "redeem":
                with contextlib.suppress(CodeRefused):
                    code_redeem(code=issue.code.code, customer=op[2], pool=pool)

    # Each key names one issue in the pool (the database says so), and no single-use code is
    # held live by two customers.
    keyed = CodeIssue.objects.filter(pool=pool).exclude(idempotency_key="")
    assert not keyed.values("idempotency_key").annotate(n=Count("id")).filter(n__gt=1).exists()
    live = CodeIssue.objects.filter(
        pool=pool, released_at__isnull=True, code__status=Code.Status.ISSUED
    )
    assert not live.values("code").annotate(n=Count("customer", distinct=True)).filter(n__gt=1)
