"""Objects for tests, made through the services so that they obey the same rules as real ones,
and the small readings of them that tests in several files share."""

import csv
import io
import itertools
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.urls import reverse

from pools.api_keys import api_key_create
from pools.counters import pool_counts_add
from pools.groups import MANAGERS, VIEWERS
from pools.models import ApiOperation, Code, Pool
from pools.refusals import CodeRefused, Refusal
from pools.selectors import pools_with_counts
from pools.services import campaign_create, pool_create, pool_launch
from pools.signals import stock_changed

# The moment the `frozen` fixture (conftest.py) stops the services' clock at.
NOW = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)

_numbers = itertools.count(1)


def make_campaign(name: str | None = None, **fields):
    return campaign_create(name=name or f"Campaign {next(_numbers)}", **fields)


def make_pool(campaign=None, *, launched: bool = False, **fields) -> Pool:
    fields.setdefault("description", f"Pool {next(_numbers)}")
    pool = pool_create(campaign=campaign or make_campaign(), **fields)
    if launched:
        pool_launch(pool=pool)
    return pool


def make_codes(pool: Pool, codes, **fields) -> list[Code]:
    """Add codes to a pool and count them, as an import does."""
    created = Code.objects.bulk_create(Code(pool=pool, code=code, **fields) for code in codes)
    pool_counts_add(pool_id=pool.pk, available=len(created))
    return created


def make_api_key(name: str = "crm", operations=ApiOperation.values, **scope):
    """Return (key, secret) of an API key that may call `operations` (all, unless named) on
    the pools of `scope` (campaigns=, pools=; every pool unless named)."""
    return api_key_create(name=name, operations=list(operations), **scope)


def make_staff(username: str, group: str = MANAGERS, **fields):
    user = get_user_model().objects.create_user(
        username=username, password="secret-pass", is_staff=True, **fields
    )
    user.groups.add(Group.objects.get(name=group))
    return user


def make_manager(username: str = "manager", **fields):
    return make_staff(username, MANAGERS, **fields)


def make_viewer(username: str = "viewer", **fields):
    return make_staff(username, VIEWERS, **fields)


def alerting_pool(threshold=3, codes=5, **fields):
    """An active pool that alerts below `threshold`, launched with its codes in it."""
    pool = make_pool(notify_below_enabled=True, notify_below=threshold, **fields)
    make_codes(pool, [f"{pool.slug}-{i}" for i in range(codes)])
    pool_launch(pool=pool)
    return pool


def watching_pool(**fields):
    """An active pool that watches its stock (alerts below 1): its claims announce each change
    of stock, which on_next_stock_change hooks onto (a pool that watches nothing skips it)."""
    return make_pool(launched=True, notify_below_enabled=True, notify_below=1, **fields)


@contextmanager
def on_next_stock_change(action):
    """Within the block, call action(pool) once, on the first change of a pool's stock (as
    after an assignment's first slice): a fault at a known point of a job."""

    def once(sender, pool, **kwargs):
        stock_changed.disconnect(once)
        action(pool)

    stock_changed.connect(once, weak=False)
    try:
        yield
    finally:
        stock_changed.disconnect(once)


# Readings


def refusal(call, **kwargs) -> Refusal:
    """Return the reason call(**kwargs) is refused for; fail if it is not refused."""
    with pytest.raises(CodeRefused) as excinfo:
        call(**kwargs)
    return excinfo.value.reason


def counts(pool) -> tuple[int, int, int]:
    """Return the pool's codes available, issued and redeemed, as its counters say."""
    counted = pools_with_counts().get(pk=pool.pk)
    return counted.codes_available, counted.codes_issued, counted.codes_redeemed


def counts_by_status(pool) -> dict[str, int]:
    """Return the pool's codes of each status, and their total, as its counters say."""
    p = pools_with_counts().get(pk=pool.pk)
    return {
        "available": p.codes_available,
        "issued": p.codes_issued,
        "redeemed": p.codes_redeemed,
        "expired": p.codes_expired,
        "withdrawn": p.codes_withdrawn,
        "total": p.codes_total,
    }


def finished(job) -> bool:
    """Return True once a job (an import, an export, an assignment…) has finished: for
    wait_for, as a worker elsewhere runs it."""
    job.refresh_from_db()
    return job.is_finished


def csv_rows(data: bytes) -> list[list[str]]:
    """Return the rows of a CSV file as the exports write it (UTF-8 with a BOM)."""
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def result_rows(job) -> list[list[str]]:
    """Return the rows of the list an assignment hands back."""
    with job.result.open("rb") as stored:
        return list(csv.reader(io.StringIO(stored.read().decode())))


def change_url(pool) -> str:
    return reverse("admin:pools_pool_change", args=[pool.pk])


def post(api, url, data):
    """POST data as JSON with an API client."""
    return api.post(url, data, format="json")
