"""Refill: a generated pool tops itself up, and tells its subscribers when the 1% capacity rule
stops it."""

import pytest

from imports.models import Import
from imports.refill import refill_check
from imports.services import import_generate_start
from notifications.services import subscription_add
from pools.code_services import code_issue, code_issue_batch
from pools.models import Code, Pool
from pools.selectors import pool_stock
from tests.factories import make_manager, make_pool
from tests.worker import wait_for


def generated_pool(count: int, length: int = 10, alphabet: str = "ABCDEFGHJK", **refill):
    pool = make_pool()
    import_generate_start(pool=pool, count=count, length=length, alphabet=alphabet)
    Pool.objects.filter(pk=pool.pk).update(**refill)
    return pool


@pytest.mark.django_db
def test_refill_starts_one_generation_when_stock_falls_below_the_level(
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):
        pool = generated_pool(10, refill_below=8, refill_count=20)
    from pools.services import pool_launch

    pool_launch(pool=pool)
    assert Code.objects.filter(pool=pool).count() == 10
    with django_capture_on_commit_callbacks(execute=True):
        for customer in ("a", "b"):
            code_issue(pool=pool, customer=customer)
    assert pool_stock(pool=pool) == 8
    assert not Import.objects.filter(pool=pool, refill=True).exists()
    with django_capture_on_commit_callbacks(execute=True):
        code_issue(pool=pool, customer="c")
    refill = Import.objects.get(pool=pool, refill=True)
    assert refill.status == Import.Status.COMPLETED and refill.codes_added == 20
    assert refill.generation["length"] == 10 and refill.generation["alphabet"] == "ABCDEFGHJK"
    assert pool_stock(pool=pool) == 27


@pytest.mark.django_db
def test_a_refill_queued_or_running_is_the_only_one(django_capture_on_commit_callbacks):
    """A refill waiting for a worker counts as under way as much as a running one: stock that
    keeps falling meanwhile starts no second; once it has finished, a new one may start."""
    with django_capture_on_commit_callbacks(execute=True):
        pool = generated_pool(10, refill_below=20, refill_count=5)
    from pools.services import pool_launch

    pool_launch(pool=pool)

    first = refill_check(pool=pool)  # queued: no worker has taken it yet
    assert first is not None and first.status == Import.Status.QUEUED
    assert refill_check(pool=pool) is None
    Import.objects.filter(pk=first.pk).update(status=Import.Status.RUNNING)
    assert refill_check(pool=pool) is None
    Import.objects.filter(pk=first.pk).update(status=Import.Status.COMPLETED)
    assert refill_check(pool=pool) is not None
    assert Import.objects.filter(pool=pool, refill=True).count() == 2


@pytest.mark.django_db
def test_refill_stopped_by_the_capacity_rule_is_recorded_once():
    # 4 characters of 2 letters: 16 possible codes, 1% of them is 0: nothing can be generated.
    pool = make_pool(launched=True)
    Pool.objects.filter(pk=pool.pk).update(refill_below=5, refill_count=10)
    Import.objects.create(
        pool=pool,
        source=Import.Source.GENERATION,
        status=Import.Status.COMPLETED,
        generation={"count": 1, "length": 4, "alphabet": "AB", "prefix": ""},
    )
    job = refill_check(pool=pool)
    assert job.status == Import.Status.FAILED and "no refill can run" in job.message
    assert refill_check(pool=pool) is None


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_refill_end_to_end_through_the_worker_and_the_mail_server(inbox, worker_factory, settings):
    """Issuing in batches runs the pool low twice: the first refill runs in the worker; the
    second is stopped by the capacity rule, and the subscriber gets the e-mail by SMTP."""
    worker_factory(
        EMAIL_HOST="127.0.0.1", EMAIL_PORT=settings.EMAIL_PORT, SITE_URL=settings.SITE_URL
    )
    ann = make_manager("ann", email="ann@example.com")
    # 31^4 = 923,521 possible codes: at most 9,235 may exist in the pool.
    pool = make_pool()
    subscription_add(user=ann, pool=pool)
    import_generate_start(
        pool=pool, count=5000, length=4, alphabet="ABCDEFGHJKMNPQRSTUVWXYZ23456789"
    )
    first = Import.objects.get(pool=pool)
    wait_for(lambda: Import.objects.get(pk=first.pk).is_finished, timeout=60, what="the fill")
    from pools.services import pool_launch

    pool_launch(pool=pool)
    Pool.objects.filter(pk=pool.pk).update(refill_below=1000, refill_count=4000)

    code_issue_batch(pool=pool, customers=[f"c{i}" for i in range(4500)], idempotency_key="m1")
    wait_for(
        lambda: Import.objects.filter(pool=pool, refill=True, status="completed").exists(),
        timeout=60,
        what="the refill",
    )
    assert pool_stock(pool=pool) == 4500
    code_issue_batch(pool=pool, customers=[f"d{i}" for i in range(4000)], idempotency_key="m2")
    wait_for(lambda: inbox.to("ann@example.com"), timeout=60, what="the refill e-mail")
    stopped = Import.objects.filter(pool=pool, refill=True).order_by("-id").first()
    assert stopped.status == Import.Status.FAILED
    # The notice is recorded as sent when its transaction commits, just after the e-mail left.
    wait_for(
        lambda: Import.objects.get(pk=stopped.pk).finished_notice_sent_at,
        timeout=30,
        what="the notice recorded as sent",
    )
    message = inbox.to("ann@example.com")[0]
    assert message["Subject"] == (
        f"Promo codes cannot be refilled: {pool.slug} ({pool.campaign.name})"
    )
    assert "at most 9,235 may exist" in message.get_body(("plain",)).get_content()
