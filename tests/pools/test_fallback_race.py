"""Two calls under one idempotency key racing while the pool runs dry: one takes the pool's last
code, the other finds the pool dry and turns to the fallback. The key's unique constraint is per
pool of the code, so without the per-key lock both would issue (two codes for one key)."""

import contextlib
import threading

import pytest

from pools.code_services import batches, code_issue, code_issue_batch, issuing
from pools.models import Code, CodeIssue, Pool
from pools.selectors import pool_stock
from tests.factories import make_codes, make_pool

pytestmark = [pytest.mark.postgresql, pytest.mark.django_db(transaction=True)]

# How long the first call waits for the second at the pause: with the lock the second cannot
# get there (it waits for the first's transaction), so the first goes on after this.
PAUSE = 3


def pool_with_fallback(main_codes, spare_codes):
    pool = make_pool(launched=True)
    spare = make_pool(pool.campaign, launched=True)
    Pool.objects.filter(pk=pool.pk).update(fallback_pool=spare)
    make_codes(pool, main_codes)
    make_codes(spare, spare_codes)
    return pool, spare


def pause_after_first_lookup(monkeypatch, name):
    """Make each thread's first key look-up wait until both threads have looked (both found
    nothing) before either claims; a thread that the other never joins goes on after PAUSE."""
    barrier = threading.Barrier(2, timeout=PAUSE)
    module = issuing if name == "_issue_by_key" else batches
    real = getattr(module, name)
    local = threading.local()

    def lookup_then_wait(*args):
        found = real(*args)
        if not getattr(local, "waited", False):
            local.waited = True
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()
        return found

    monkeypatch.setattr(module, name, lookup_then_wait)


def race(call):
    from django.db import connection

    results = {}

    def run(name):
        try:
            results[name] = call()
        except Exception as error:  # noqa: BLE001  (asserted by the test)
            results[name] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_two_single_issues_under_one_key_racing_as_the_pool_runs_dry_get_one_code(monkeypatch):
    pool, spare = pool_with_fallback(["MAIN"], ["S1", "S2"])
    pause_after_first_lookup(monkeypatch, "_issue_by_key")

    results = race(lambda: code_issue(pool=pool, customer="c", idempotency_key="msg-1"))

    assert all(isinstance(r, Code) for r in results.values()), results
    assert results["a"].code == results["b"].code == "MAIN"
    assert list(CodeIssue.objects.values_list("customer", "code__code")) == [("c", "MAIN")]
    assert (pool_stock(pool=pool), pool_stock(pool=spare)) == (0, 2)
    assert set(Code.objects.filter(pool=spare).values_list("status", flat=True)) == {
        Code.Status.AVAILABLE
    }


def test_two_batches_under_one_key_racing_as_the_pool_runs_dry_give_each_customer_one_code(
    monkeypatch,
):
    pool, spare = pool_with_fallback(["MAIN1", "MAIN2"], ["S1", "S2", "S3"])
    pause_after_first_lookup(monkeypatch, "_issued_by_keys")

    results = race(
        lambda: code_issue_batch(pool=pool, customers=["c1", "c2"], idempotency_key="news-1")
    )

    assert all(not isinstance(r, Exception) for r in results.values()), results
    codes = {n: [(i.customer, i.code.code) for i in r.issued] for n, r in results.items()}
    assert codes["a"] == codes["b"] == [("c1", "MAIN1"), ("c2", "MAIN2")]
    # One batch issued, the other (waiting for it) got the same codes back.
    assert sorted(all(i.again for i in r.issued) for r in results.values()) == [False, True]
    assert sorted(CodeIssue.objects.values_list("customer", "idempotency_key", "code__code")) == [
        ("c1", "news-1:c1", "MAIN1"),
        ("c2", "news-1:c2", "MAIN2"),
    ]
    assert (pool_stock(pool=pool), pool_stock(pool=spare)) == (0, 3)
