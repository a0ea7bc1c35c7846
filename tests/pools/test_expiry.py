"""The expiry sweep works in slices, each its own transaction, beside issuing."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from pools.code_services import code_issue, codes_expire, sweeps
from pools.models import Code
from pools.selectors import pools_with_counts
from tests.factories import make_codes, make_pool


def past():
    return timezone.now() - timedelta(days=1)


@pytest.mark.django_db
def test_sweep_expires_every_expirable_code_slice_by_slice(monkeypatch):
    monkeypatch.setattr(sweeps, "EXPIRY_SLICE", 4)
    slices = []
    expire_slice = sweeps._expire_slice

    def counted(*args):
        outcome = expire_slice(*args)
        slices.append(outcome[0])
        return outcome

    monkeypatch.setattr(sweeps, "_expire_slice", counted)
    pool = make_pool(launched=True)
    make_codes(pool, [f"OLD{i}" for i in range(10)], issue_end=past())
    make_codes(pool, ["FRESH1", "FRESH2"])
    make_codes(pool, [f"GONE{i}" for i in range(3)], available_till=past())

    assert codes_expire() == {pool.pk: 13}
    assert slices == [4, 4, 4, 1]
    counted_pool = pools_with_counts().get(pk=pool.pk)
    assert (counted_pool.codes_available, counted_pool.codes_expired) == (2, 13)
    assert codes_expire() == {}  # nothing left: a second run changes nothing


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_issuing_goes_on_between_slices_of_a_sweep(monkeypatch):
    """Each slice commits on its own: between two slices, issuing is not held up (a lock wait
    would hit the guard's lock_timeout and fail the test), and sees the slice's codes gone."""
    monkeypatch.setattr(sweeps, "EXPIRY_SLICE", 5)
    pool = make_pool(launched=True)
    make_codes(pool, [f"OLD{i:02d}" for i in range(23)], issue_end=past())
    make_codes(pool, [f"NEW{i}" for i in range(6)])
    first_slice_done, issued = threading.Event(), threading.Event()
    expire_slice = sweeps._expire_slice
    outcome = {}

    def pausing(*args):
        result = expire_slice(*args)
        if not first_slice_done.is_set():
            first_slice_done.set()
            issued.wait(30)
        return result

    def sweep():
        try:
            outcome["expired"] = codes_expire()
        finally:
            connections.close_all()

    monkeypatch.setattr(sweeps, "_expire_slice", pausing)
    sweeper = threading.Thread(target=sweep)
    sweeper.start()
    try:
        assert first_slice_done.wait(30)
        assert Code.objects.filter(pool=pool, status=Code.Status.EXPIRED).count() == 5
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '5s'")
        got = [code_issue(pool=pool, customer=f"c{i}").code for i in range(3)]
        assert all(code.startswith("NEW") for code in got)
    finally:
        issued.set()
        sweeper.join(60)

    assert outcome["expired"] == {pool.pk: 23}
    counted = pools_with_counts().get(pk=pool.pk)
    assert (counted.codes_available, counted.codes_issued, counted.codes_expired) == (3, 3, 23)


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_sweep_and_issuing_at_once_neither_loses_nor_doubles_a_code(monkeypatch):
    monkeypatch.setattr(sweeps, "EXPIRY_SLICE", 3)
    pool = make_pool(launched=True)
    make_codes(pool, [f"OLD{i:02d}" for i in range(60)], issue_end=past())
    make_codes(pool, [f"NEW{i:02d}" for i in range(40)])
    got, errors = [], []

    def issue_many():
        try:
            for i in range(30):
                got.append(code_issue(pool=pool, customer=f"c{i}").code)
        except Exception as error:  # reported below
            errors.append(error)
        finally:
            connections.close_all()

    issuer = threading.Thread(target=issue_many)
    issuer.start()
    expired = codes_expire()
    issuer.join(60)

    assert not errors
    assert expired == {pool.pk: 60}
    assert len(set(got)) == 30 and all(code.startswith("NEW") for code in got)
    counted = pools_with_counts().get(pk=pool.pk)
    assert (counted.codes_available, counted.codes_issued, counted.codes_expired) == (10, 30, 60)
