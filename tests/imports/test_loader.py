"""The loader: rows read and cleaned go into the pool in bulk (COPY on PostgreSQL, the generic
loader elsewhere), collisions with the pool's codes and within the batch reported with their
row numbers, dates read in the project's time zone."""

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.utils import timezone

from pools.code_services import loading as loader
from pools.code_services.loading import _copy_text, _load_generic, load_batch
from pools.models import Code
from tests.factories import make_codes, make_pool


def test_copy_text_escapes_backslashes_and_writes_null_dates():
    rows = [(7, "A\\B", None, "2026-01-01 00:00:00", None, None)]

    assert _copy_text(rows) == "7\tA\\\\B\t\\N\t2026-01-01 00:00:00\t\\N\t\\N\n"


@pytest.mark.django_db
def test_a_code_with_a_backslash_is_stored_as_written():
    pool = make_pool()

    result = load_batch(pool_id=pool.pk, rows=[(2, "A\\B", None, None, None, None)], watermark=0)

    assert result.added == 1
    assert list(Code.objects.filter(pool=pool).values_list("code", flat=True)) == ["A\\B"]


@pytest.mark.django_db
@pytest.mark.parametrize("generic", [False, True], ids=["vendor", "generic"])
def test_a_code_of_another_pool_is_not_already_in_this_pool(generic, monkeypatch):
    other, pool = make_pool(), make_pool()
    (taken,) = make_codes(other, ["SHARED"])
    if generic:
        monkeypatch.setattr(loader, "_load_postgresql", _load_generic)

    result = load_batch(
        pool_id=pool.pk, rows=[(2, "SHARED", None, None, None, None)], watermark=taken.pk
    )

    assert (result.added, result.already_in_pool, result.duplicates) == (1, 0, [])
    assert Code.objects.filter(code="SHARED").count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize("generic", [False, True], ids=["vendor", "generic"])
def test_collisions_before_and_after_the_watermark(generic, monkeypatch):
    pool = make_pool()
    before, after = make_codes(pool, ["OLD", "NEW"])
    if generic:
        monkeypatch.setattr(loader, "_load_postgresql", _load_generic)
    rows = [
        (2, "OLD", None, None, None, None),
        (3, "NEW", None, None, None, None),
        (4, "FRESH", None, "2000-01-01 00:00:00", None, None),
        (5, "FRESH", None, None, None, None),
        (6, "LATE", None, None, None, "2000-01-01 00:00:00"),
    ]

    result = load_batch(pool_id=pool.pk, rows=rows, watermark=before.pk, addition_id=None)

    assert result.added == 2
    assert result.already_in_pool == 1
    assert sorted(result.duplicates) == [(3, "NEW"), (5, "FRESH")]
    assert result.expired_on_arrival == 2


@pytest.mark.django_db
def test_only_duplicates_in_a_batch_add_nothing():
    pool = make_pool()

    result = load_batch(pool_id=pool.pk, rows=[(2, "A", None, None, None, None)] * 2, watermark=0)

    assert (result.added, result.duplicates) == (1, [(2, "A")])


@pytest.mark.django_db
def test_each_database_takes_its_own_loader(monkeypatch):
    """PostgreSQL loads with COPY; another database with the generic loader. Sending either
    down the other's path fails here."""

    def forbidden(*args, **kwargs):
        raise AssertionError("the other database's loader was used")

    other = "_load_generic" if connection.vendor == "postgresql" else "_load_postgresql"
    monkeypatch.setattr(loader, other, forbidden)
    pool = make_pool()

    result = load_batch(pool_id=pool.pk, rows=[(2, "A", None, None, None, None)], watermark=0)

    assert result.added == 1


@pytest.mark.django_db
def test_a_database_other_than_postgresql_reports_through_the_generic_loader(monkeypatch):
    """What load_batch makes of the generic loader's answer, on whatever database runs the
    tests: it is told that it runs on another one."""

    def forbidden(*args, **kwargs):
        raise AssertionError("a PostgreSQL loader was used")

    monkeypatch.setattr(loader, "_load_postgresql", forbidden)
    monkeypatch.setattr(loader, "_copy_straight_in", forbidden)
    monkeypatch.setattr(connection, "vendor", "sqlite")
    pool = make_pool()
    (old,) = make_codes(pool, ["OLD"])
    rows = [
        (2, "OLD", None, None, None, None),
        (3, "NEW", None, "2000-01-01 00:00:00", None, None),
        (4, "NEW", None, None, None, None),
    ]

    result = load_batch(pool_id=pool.pk, rows=rows, watermark=old.pk)

    assert (result.added, result.expired_on_arrival, result.already_in_pool) == (1, 1, 1)
    assert result.duplicates == [(4, "NEW")]


@pytest.mark.django_db
def test_an_empty_batch_adds_and_reports_nothing():
    pool = make_pool()

    result = load_batch(pool_id=pool.pk, rows=[], watermark=0)

    assert (result.added, result.duplicates, result.already_in_pool) == (0, [], 0)
    assert result.expired_on_arrival == 0
    assert not Code.objects.filter(pool=pool).exists()


@pytest.mark.django_db
def test_loaded_dates_are_read_in_the_project_time_zone(settings):
    settings.TIME_ZONE = "Europe/Moscow"
    pool = make_pool()
    rows = [(2, "TZ", "2026-03-01 10:00:00", "2026-03-31 23:59:59.999999", None, None)]

    load_batch(pool_id=pool.pk, rows=rows, watermark=0)

    code = Code.objects.get(pool=pool)
    assert code.issue_start.isoformat() == "2026-03-01T07:00:00+00:00"
    assert code.issue_end.isoformat() == "2026-03-31T20:59:59.999999+00:00"
    assert (code.available_from, code.available_till, code.status) == (None, None, "available")


@pytest.mark.django_db
@pytest.mark.parametrize("generic", [False, True], ids=["vendor", "generic"])
def test_collisions_are_looked_up_in_this_pool_only(generic, monkeypatch):
    """A batch with a real collision (so the loader looks collisions up) and a code that only
    another, older pool holds: only the first is already in the pool."""
    other, pool = make_pool(), make_pool()
    make_codes(other, ["SHARED"])
    (mine,) = make_codes(pool, ["MINE"])
    if generic:
        monkeypatch.setattr(loader, "_load_postgresql", _load_generic)
    rows = [(2, "MINE", None, None, None, None), (3, "SHARED", None, None, None, None)]

    result = load_batch(pool_id=pool.pk, rows=rows, watermark=mine.pk)

    assert (result.added, result.already_in_pool, result.duplicates) == (1, 1, [])
    assert sorted(Code.objects.filter(pool=pool).values_list("code", flat=True)) == [
        "MINE",
        "SHARED",
    ]


@pytest.mark.django_db
@pytest.mark.postgresql
def test_the_straight_copy_leaves_the_sessions_time_zone_as_it_found_it(settings):
    settings.TIME_ZONE = "Europe/Moscow"
    pool = make_pool()
    with connection.cursor() as cursor:
        cursor.execute("SHOW TimeZone")
        (before,) = cursor.fetchone()

        result = load_batch(pool_id=pool.pk, rows=[(2, "A", None, None, None, None)], watermark=0)

        cursor.execute("SHOW TimeZone")
        assert (result.added, cursor.fetchone()[0], before) == (1, before, "UTC")


@pytest.mark.django_db
@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Tokyo"])
@pytest.mark.parametrize("path", ["straight copy", "staging", "generic"])
def test_codes_expired_on_arrival_are_counted_in_the_project_time_zone(
    path, zone, settings, monkeypatch
):
    """Whichever way a batch goes in, and whatever side of UTC the project's zone is on, a code
    counts as expired on arrival when its Issue-end or Available-till (naive, in that zone) has
    passed, and only then: an hour either side of now tells."""
    settings.TIME_ZONE = zone
    pool = make_pool()
    watermark = 0
    if path != "straight copy":
        (old,) = make_codes(pool, ["OLD"])
        watermark = old.pk
    if path == "generic":
        monkeypatch.setattr(loader, "_load_postgresql", _load_generic)
    local_now = timezone.localtime(timezone.now(), ZoneInfo(zone)).replace(tzinfo=None)
    hour_ago = (local_now - timedelta(hours=1)).isoformat(" ")
    in_an_hour = (local_now + timedelta(hours=1)).isoformat(" ")
    rows = [
        (2, "ENDED", None, hour_ago, None, None),
        (3, "GONE", None, None, None, hour_ago),
        (4, "ENDS", None, in_an_hour, None, None),
        (5, "LASTS", None, None, None, in_an_hour),
    ]

    result = load_batch(pool_id=pool.pk, rows=rows, watermark=watermark)

    assert (result.added, result.expired_on_arrival) == (4, 2)
    expired = {
        c.code
        for c in Code.objects.filter(pool=pool, addition=None).exclude(code="OLD")
        if (c.issue_end or c.available_till) < timezone.now()
    }
    assert expired == {"ENDED", "GONE"}
