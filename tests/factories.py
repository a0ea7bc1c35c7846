"""Objects for tests, made through the services so that they obey the same rules as real ones."""

import itertools
from contextlib import contextmanager

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from pools.counters import pool_counts_add
from pools.groups import MANAGERS, VIEWERS
from pools.models import Code, Pool
from pools.services import campaign_create, pool_create, pool_launch
from pools.signals import stock_changed

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
