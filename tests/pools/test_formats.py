from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from django.template import Context, Template
from django.test import override_settings
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from pools.formats import (
    datetime_display,
    datetime_export,
    duration_display,
    export_filename,
    export_value,
    number,
)
from pools.models import Pool

MOMENT = datetime(2026, 11, 27, 22, 21, 51, 679314, tzinfo=UTC)


def test_numbers_have_thousands_separators():
    assert number(5004) == "5,004"
    assert number(1234567) == "1,234,567"
    assert number(12) == "12"
    assert number(None) == ""


def test_screens_use_the_same_number_and_date_format_as_python():
    rendered = Template("{{ n }} | {{ when }} | {{ when|date:'DATETIME_FORMAT' }}").render(
        Context({"n": 5004, "when": MOMENT})
    )
    assert rendered == f"5,004 | {datetime_display(MOMENT)} | {datetime_display(MOMENT)}"


@override_settings(TIME_ZONE="Europe/Berlin")
def test_exports_write_iso_8601_in_the_project_time_zone_to_the_second():
    # ISO 8601 with a space, as PostgreSQL's COPY writes it, so that both export paths agree.
    assert datetime_export(MOMENT) == "2026-11-27 23:21:51"
    assert export_value(MOMENT) == "2026-11-27 23:21:51"
    assert datetime_display(MOMENT) == "2026-11-27 23:21"
    assert export_value("text") == "text" and export_value(None) is None


def test_durations_never_read_zero():
    assert duration_display(0.01) == "0.1 s"
    assert duration_display(0) == "under 0.1 s"
    assert duration_display(4.26) == "4.3 s"
    assert duration_display(125) == "2 min 5 s"
    assert duration_display(None) == "—"


def test_export_file_names_say_the_pool_and_the_filter():
    pool = Pool(slug="spring-sale")
    assert export_filename(what="codes", pool=pool, extension="csv") == "codes-spring-sale.csv"
    assert (
        export_filename(
            what="codes", pool=pool, filters={"status": "Issued", "search": ""}, extension="xlsx"
        )
        == "codes-spring-sale-status-issued.xlsx"
    )
    assert export_filename(what="codes", extension="csv") == "codes-all-pools.csv"


@given(
    st.datetimes(timezones=st.just(UTC)).map(
        lambda moment: moment.astimezone(ZoneInfo("Asia/Kolkata"))
    )
)
def test_any_moment_exports_without_microseconds(moment):
    written = datetime_export(moment)
    assert "." not in written
    local = timezone.localtime(moment).replace(microsecond=0, tzinfo=None)
    assert datetime.fromisoformat(written) == local


@pytest.mark.django_db
def test_a_bad_pool_id_is_told_in_the_products_words():
    from pools.forms import POOL_ID_INVALID, PoolAdminForm

    form = PoolAdminForm(data={"slug": "not valid!"})
    form.is_valid()
    assert form.errors["slug"] == [POOL_ID_INVALID]
