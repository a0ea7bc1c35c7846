"""Tests that fail on the mutants of readers, validation and the loader that the rest of the
suite let through: boundaries on both sides, dates to the second, rows with their
numbers and values, messages by their substance."""

import io
from datetime import date, datetime

import pytest
from django.db import connection

from imports.readers import ImportFileError, detect_format, open_table
from imports.validation import DateOrder, Rejected, clean_row, parse_datetime
from pools.code_services import loading as loader
from pools.code_services.loading import _copy_text, _load_generic, load_batch
from pools.models import CODE_MAX_LENGTH, Code
from tests.factories import make_codes, make_pool
from tests.imports.files import xlsx_bytes, zip_bomb_bytes

MB = 1024 * 1024
OLE_HEAD = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def read(data: bytes, name: str = "codes.csv"):
    return list(open_table(io.BytesIO(data), name=name, size=len(data)).rows)


def file_error(data: bytes, name: str) -> str:
    with pytest.raises(ImportFileError) as excinfo:
        read(data, name)
    return str(excinfo.value)


# Validation


@pytest.mark.parametrize(
    "text, order",
    [("2026-04-30", None), ("30.04.2026", None), ("30/04/2026", DateOrder("dmy"))],
)
def test_a_date_alone_starts_at_midnight_and_ends_at_the_last_microsecond(text, order):
    assert parse_datetime(text, end=False, order=order) == datetime(2026, 4, 30, 0, 0, 0)
    assert parse_datetime(text, end=True, order=order) == datetime(2026, 4, 30, 23, 59, 59, 999999)


def test_a_native_date_alone_starts_and_ends_its_day():
    assert parse_datetime(date(2026, 4, 30), end=False) == datetime(2026, 4, 30, 0, 0, 0)
    assert parse_datetime(date(2026, 4, 30), end=True) == datetime(2026, 4, 30, 23, 59, 59, 999999)


def test_a_date_with_a_time_keeps_it_in_an_end_column():
    assert parse_datetime("2026-04-30 10:15", end=True) == datetime(2026, 4, 30, 10, 15, 0)
    assert parse_datetime("30.04.2026 10:15:07", end=True) == datetime(2026, 4, 30, 10, 15, 7)


def test_clean_row_ends_a_date_alone_at_the_end_of_its_day_in_both_end_columns():
    row = clean_row(3, ("A", "01.03.2026", "31.03.2026", "01.04.2026", "30.04.2026"), None)

    assert row == (
        3,
        "A",
        "2026-03-01 00:00:00",
        "2026-03-31 23:59:59.999999",
        "2026-04-01 00:00:00",
        "2026-04-30 23:59:59.999999",
    )


def test_a_code_of_the_maximum_length_is_accepted_and_one_more_is_rejected():
    assert CODE_MAX_LENGTH == 100
    longest = "X" * CODE_MAX_LENGTH
    assert clean_row(4, (longest, None, None, None, None), None) == (
        4,
        longest,
        None,
        None,
        None,
        None,
    )
    rejected = clean_row(4, (longest + "X", None, None, None, None), None)
    assert isinstance(rejected, Rejected)
    assert (rejected.row_number, rejected.reason) == (4, "The code is longer than 100 characters.")


def test_a_fractional_number_is_imported_as_written():
    assert clean_row(2, (12.5, None, None, None, None), None)[1] == "12.5"
    assert clean_row(2, (12.0, None, None, None, None), None)[1] == "12"


# Readers


def test_a_csv_row_shorter_than_the_header_is_read_with_empty_cells():
    rows = read(b"Code,Issue-start,Issue-end\nSHORT\nFULL,2026-01-01,2026-02-01\n")

    assert rows == [
        (2, ("SHORT", None, None, None, None)),
        (3, ("FULL", "2026-01-01", "2026-02-01", None, None)),
    ]


def test_xlsx_rows_are_numbered_as_excel_numbers_them():
    data = xlsx_bytes([["Code", "Issue-start"], ["FIRST", None], [None, None], ["THIRD", "x"]])

    rows = read(data, "codes.xlsx")

    assert rows == [(2, ("FIRST", "", None, None, None)), (4, ("THIRD", "x", None, None, None))]


def test_xlsx_header_below_blank_rows_numbers_rows_from_the_sheet_top():
    data = xlsx_bytes([[None], [None], ["Code"], ["A"], ["B"]])

    assert read(data, "codes.xlsx") == [
        (4, ("A", None, None, None, None)),
        (5, ("B", None, None, None, None)),
    ]


def test_a_zip_packed_more_than_the_ratio_over_50_mb_is_a_zip_bomb(settings):
    settings.IMPORT_MAX_XLSX_UNPACKED = 2 * 1024 * MB  # far above: the ratio alone refuses
    data = zip_bomb_bytes(51 * MB)
    ratio = 51 * MB // len(data)
    assert ratio > settings.IMPORT_MAX_XLSX_RATIO

    assert file_error(data, "codes.xlsx") == (
        f"“codes.xlsx” would unpack to 51.0\xa0MB, {ratio:,} times its size: refused as a "
        "possible zip bomb. Save the sheet as CSV instead."
    )


def test_a_zip_packed_within_the_ratio_is_not_a_zip_bomb(settings):
    settings.IMPORT_MAX_XLSX_UNPACKED = 2 * 1024 * MB
    data = zip_bomb_bytes(51 * MB)
    settings.IMPORT_MAX_XLSX_RATIO = 51 * MB // len(data)  # at the ratio, not above it

    assert "zip bomb" not in file_error(data, "codes.xlsx")


def test_a_highly_packed_zip_of_50_mb_or_less_is_not_a_zip_bomb(settings):
    settings.IMPORT_MAX_XLSX_UNPACKED = 2 * 1024 * MB
    data = zip_bomb_bytes(50 * MB)

    assert "zip bomb" not in file_error(data, "codes.xlsx")


def test_a_highly_packed_zip_of_a_byte_over_50_mb_is_a_zip_bomb(settings):
    settings.IMPORT_MAX_XLSX_UNPACKED = 2 * 1024 * MB
    data = zip_bomb_bytes(50 * MB + 1)
    ratio = (50 * MB + 1) // len(data)

    assert file_error(data, "codes.xlsx") == (
        f"“codes.xlsx” would unpack to 50.0\xa0MB, {ratio:,} times its size: refused as a "
        "possible zip bomb. Save the sheet as CSV instead."
    )


def test_a_zip_over_the_unpacked_limit_is_refused_at_the_limit_plus_one(settings):
    data = zip_bomb_bytes(MB)
    settings.IMPORT_MAX_XLSX_RATIO = 10**9
    settings.IMPORT_MAX_XLSX_UNPACKED = MB
    assert "zip bomb" not in file_error(data, "codes.xlsx")
    settings.IMPORT_MAX_XLSX_UNPACKED = MB - 1
    assert "zip bomb" in file_error(data, "codes.xlsx")


def test_an_old_excel_file_is_known_by_its_content_whatever_its_name():
    # Named .csv: only the content says it is an Excel 97-2003 workbook.
    assert detect_format(OLE_HEAD + b"\0" * 100, name="codes.csv") == "xls"
    assert file_error(OLE_HEAD + b"\0" * 100, "codes.csv") == (
        "“codes.csv” cannot be read as an Excel 97-2003 workbook (.xls): it is damaged, or not "
        "really an Excel 97-2003 workbook (.xls)."
    )


# Loader


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
