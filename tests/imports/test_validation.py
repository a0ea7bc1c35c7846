from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from imports.readers import UnreadableRow
from imports.validation import DateOrder, Rejected, clean_row, parse_datetime
from pools.code_services.loading import to_datetime
from pools.models import CODE_MAX_LENGTH

MOSCOW = ZoneInfo("Europe/Moscow")
EMPTY = "The code is empty."
NOT_TYPABLE = "The code contains a space or a character that cannot be typed."


def clean(code, *dates, tz=MOSCOW):
    cells = (code, *dates, *[None] * (4 - len(dates)))
    return clean_row(7, cells, tz)


def test_code_is_trimmed_and_dates_are_optional():
    assert clean("  SPRING10 \t") == (7, "SPRING10", None, None, None, None)


def test_numeric_code_from_excel_keeps_its_digits():
    assert clean(12345.0)[1] == "12345"


@pytest.mark.parametrize(
    "code, reason",
    [
        ("", EMPTY),
        ("   ", EMPTY),
        (None, EMPTY),
        ("X" * 101, "The code is longer than 100 characters."),
        ("TWO WORDS", NOT_TYPABLE),
        ("ZERO\u200bWIDTH", NOT_TYPABLE),
        ("NO\u00a0BREAK", NOT_TYPABLE),
        ("BROKEN\ufffd", NOT_TYPABLE),
        ("TAB\tINSIDE", NOT_TYPABLE),
    ],
)
def test_bad_codes_are_rejected_with_their_reason(code, reason):
    result = clean(code)

    assert isinstance(result, Rejected)
    assert (result.row_number, result.column, result.reason) == (7, "Code", reason)


def test_dates_in_every_supported_form():
    row = clean("A", "2026-03-01T10:15:00+00:00", "31.03.2026 18:30", "01.03.2026", "2026-04-30")

    assert row[2:] == (
        "2026-03-01 13:15:00",
        "2026-03-31 18:30:00",
        "2026-03-01 00:00:00",
        # A date alone in an end column means the whole of that day.
        "2026-04-30 23:59:59.999999",
    )
    assert to_datetime(row[2], MOSCOW) == datetime(2026, 3, 1, 10, 15, tzinfo=UTC)
    assert to_datetime(row[3], MOSCOW) == datetime(2026, 3, 31, 18, 30, tzinfo=MOSCOW)


def test_native_excel_dates_keep_their_time():
    row = clean("A", datetime(2026, 3, 1, 9, 0), date(2026, 3, 2))

    assert row[2:4] == ("2026-03-01 09:00:00", "2026-03-02 23:59:59.999999")


def test_end_before_start_compares_zoned_and_naive_times_in_the_project_zone():
    # 10:00 in Moscow is 07:00 UTC, so an end at 08:00 UTC is after the start.
    assert not isinstance(clean("A", "2026-03-01 10:00", "2026-03-01T08:00+00:00"), Rejected)
    assert isinstance(clean("A", "2026-03-01 10:00", "2026-03-01T06:00+00:00"), Rejected)


@pytest.mark.parametrize(
    "value, text",
    [
        ("tomorrow", "tomorrow"),
        ("32.01.2026", "32.01.2026"),
        ("2026-13-01", "2026-13-01"),
        (45123.5, "45123.5"),
        (45123.0, "45123"),
    ],
)
def test_unreadable_date_names_the_column_and_value(value, text):
    result = clean("A", None, None, value)

    assert isinstance(result, Rejected)
    assert (result.row_number, result.column, result.value) == (7, "Available-from", text)
    assert result.reason == (
        f"“{text}” is not a date: use YYYY-MM-DD HH:MM, DD.MM.YYYY HH:MM or DD/MM/YYYY."
    )


def test_end_before_start_is_rejected_on_the_end_column():
    result = clean("A", "2026-05-01", "2026-04-01")

    assert (result.row_number, result.column, result.value, result.reason) == (
        7,
        "Issue-end",
        "2026-04-01",
        "Issue-end is before Issue-start.",
    )
    result = clean("A", None, None, "10.05.2026 12:00", "10.05.2026 11:59:59")
    assert (result.column, result.value, result.reason) == (
        "Available-till",
        "10.05.2026 11:59:59",
        "Available-till is before Available-from.",
    )


def test_same_day_start_and_end_is_allowed():
    assert not isinstance(clean("A", "2026-05-01", "2026-05-01"), Rejected)


def test_an_end_at_the_start_second_is_allowed_and_one_second_before_is_not():
    assert clean("A", "01.05.2026 10:00:00", "01.05.2026 10:00:00") == (
        7,
        "A",
        "2026-05-01 10:00:00",
        "2026-05-01 10:00:00",
        None,
        None,
    )
    assert clean("A", None, None, "01.05.2026 10:00:00", "01.05.2026 10:00:00")[4:] == (
        "2026-05-01 10:00:00",
        "2026-05-01 10:00:00",
    )
    assert clean("A", "01.05.2026 10:00:00", "01.05.2026 09:59:59").column == "Issue-end"
    assert clean("A", None, None, "01.05.2026 10:00:00", "01.05.2026 09:59:59").column == (
        "Available-till"
    )


def test_unreadable_row_is_rejected_with_its_reason():
    result = clean_row(3, UnreadableRow("This row cannot be read: x."), MOSCOW)

    assert result == Rejected(3, "", "", "This row cannot be read: x.", ())


def test_empty_date_cells_are_none():
    assert parse_datetime("  ", end=False) is None
    assert parse_datetime("", end=True) is None
    assert clean("A", "", " ", None, "") == (7, "A", None, None, None, None)


def test_long_unreadable_date_is_shown_shortened_and_visible():
    result = clean("A", "x\x00" * 300)

    assert result.value == ("x␀" * 50) + "…"
    assert result.reason == (
        f"“{'x␀' * 50}…” is not a date: use YYYY-MM-DD HH:MM, DD.MM.YYYY HH:MM or DD/MM/YYYY."
    )


@pytest.mark.parametrize(
    "value, order, expected",
    [
        ("01/31/26", "", "2026-01-31 00:00:00"),
        ("1/31/2026 9:30 AM", "", "2026-01-31 09:30:00"),
        ("12/31/2026 12:05 pm", "mdy", "2026-12-31 12:05:00"),
        ("31/01/2026 18:00", "", "2026-01-31 18:00:00"),
        ("03/04/2026", "dmy", "2026-04-03 00:00:00"),
        ("03/04/2026", "mdy", "2026-03-04 00:00:00"),
        ("04/04/2026", "", "2026-04-04 00:00:00"),
    ],
)
def test_slashed_dates_read_in_the_files_order(value, order, expected):
    assert clean_row(1, ("A", value, None, None, None), UTC, DateOrder(order))[2] == expected


def test_ambiguous_slashed_date_is_asked_about_not_guessed():
    result = clean_row(1, ("A", "03/04/2026", None, None, None), UTC, DateOrder())

    assert result.reason == (
        "“03/04/2026” could be day-first or month-first: choose the date order on the upload "
        "form and upload again."
    )


def test_first_unambiguous_date_settles_the_order_for_the_rest_of_the_file():
    order = DateOrder()
    assert clean_row(1, ("A", "01/31/2026", None, None, None), UTC, order)[2] == (
        "2026-01-31 00:00:00"
    )
    assert clean_row(2, ("B", "03/04/2026 07:08:09", None, None, None), UTC, order)[2] == (
        "2026-03-04 07:08:09"
    )
    refused = clean_row(3, ("C", "31/01/2026", None, None, None), UTC, order)
    assert (refused.row_number, refused.column, refused.value, refused.reason) == (
        3,
        "Issue-start",
        "31/01/2026",
        "“31/01/2026” is not a date in the file's month-first order.",
    )


def test_template_example_row_is_skipped_with_a_note():
    result = clean("SPRING-7KQ2", "2026-03-01")

    assert (result.row_number, result.column, result.value, result.reason) == (
        7,
        "Code",
        "SPRING-7KQ2",
        "This is the template's example row, not a code: skipped.",
    )


def test_a_date_against_a_chosen_day_first_order_is_refused_and_names_the_order():
    refused = clean_row(5, ("A", None, None, None, "01/31/2026"), UTC, DateOrder("dmy"))

    assert (refused.row_number, refused.column, refused.value, refused.reason) == (
        5,
        "Available-till",
        "01/31/2026",
        "“01/31/2026” is not a date in the file's day-first order.",
    )


def slashed(value, order, row=1, column=1):
    cells = ["A", None, None, None, None]
    cells[column] = value
    return clean_row(row, tuple(cells), UTC, order)


AMBIGUOUS = (
    "“{}” could be day-first or month-first: choose the date order on the upload form and "
    "upload again."
)


def test_equal_day_and_month_settle_no_order_for_the_rest_of_the_file():
    order = DateOrder()

    assert slashed("04/04/2026", order)[2] == "2026-04-04 00:00:00"
    assert slashed("03/04/2026", order).reason == AMBIGUOUS.format("03/04/2026")


def test_a_part_above_12_settles_the_order_and_a_first_part_of_1_does_not():
    assert slashed("12/13/2026", DateOrder())[2] == "2026-12-13 00:00:00"
    assert slashed("13/12/2026", DateOrder())[2] == "2026-12-13 00:00:00"
    assert slashed("01/02/2026", DateOrder()).reason == AMBIGUOUS.format("01/02/2026")
    assert slashed("02/01/2026", DateOrder()).reason == AMBIGUOUS.format("02/01/2026")


def test_a_day_or_month_out_of_range_is_not_a_date_and_settles_nothing():
    order = DateOrder()
    bad = "“{}” is not a date: use YYYY-MM-DD HH:MM, DD.MM.YYYY HH:MM or DD/MM/YYYY."

    for value in ("01/32/2026", "32/01/2026", "13/13/2026", "00/05/2026", "05/00/2026"):
        assert slashed(value, order).reason == bad.format(value)
    assert slashed("03/04/2026", order).reason == AMBIGUOUS.format("03/04/2026")
    assert slashed("31/12/2026", order)[2] == "2026-12-31 00:00:00"
    assert slashed("12/31/2026", DateOrder())[2] == "2026-12-31 00:00:00"


def test_two_digit_years_pivot_at_69_and_a_year_of_four_digits_is_kept():
    assert slashed("01/31/68", DateOrder())[2] == "2068-01-31 00:00:00"
    assert slashed("01/31/69", DateOrder())[2] == "1969-01-31 00:00:00"
    assert slashed("01/31/99", DateOrder())[2] == "1999-01-31 00:00:00"
    assert slashed("01/31/0100", DateOrder())[2] == "0100-01-31 00:00:00"
    assert slashed("01/31/0099", DateOrder())[2] == "0099-01-31 00:00:00"


def test_twelve_hour_times_from_midnight_to_noon_and_beyond():
    mdy = DateOrder("mdy")

    assert slashed("1/31/2026 12:05 AM", mdy)[2] == "2026-01-31 00:05:00"
    assert slashed("1/31/2026 1:05 a.m.", mdy)[2] == "2026-01-31 01:05:00"
    assert slashed("1/31/2026 11:59:58 PM", mdy)[2] == "2026-01-31 23:59:58"
    assert slashed("1/31/2026 12:00 pm", mdy)[2] == "2026-01-31 12:00:00"
    assert slashed("1/31/2026 13:05", mdy)[2] == "2026-01-31 13:05:00"
    for value in ("1/31/2026 13:05 PM", "1/31/2026 0:05 AM"):
        assert slashed(value, mdy).column == "Issue-start"
        assert slashed(value, mdy).value == value


def test_a_slashed_date_alone_in_an_end_column_ends_at_the_end_of_its_day():
    assert slashed("1/31/2026", DateOrder("mdy"), column=4)[5] == "2026-01-31 23:59:59.999999"
    assert slashed("1/31/2026", DateOrder("mdy"), column=3)[4] == "2026-01-31 00:00:00"


def test_an_iso_date_alone_in_any_form_is_a_whole_day():
    assert parse_datetime("20260430", end=True) == datetime(2026, 4, 30, 23, 59, 59, 999999)
    assert parse_datetime("20260430", end=False) == datetime(2026, 4, 30, 0, 0, 0)
    assert parse_datetime("2026-04-30T10", end=True) == datetime(2026, 4, 30, 10, 0, 0)
    assert parse_datetime("2026-04-30 00:00", end=True) == datetime(2026, 4, 30, 0, 0, 0)


def test_an_unreadable_row_reason_is_cut_to_255_characters():
    result = clean_row(3, UnreadableRow("x" * 300), MOSCOW)

    assert (result.row_number, result.reason) == (3, "x" * 255)


def test_a_zoned_date_pushed_past_the_calendar_by_the_zone_is_rejected_on_its_column():
    bad = "“{}” is not a date: use YYYY-MM-DD HH:MM, DD.MM.YYYY HH:MM or DD/MM/YYYY."
    early = clean_row(2, ("A", None, None, "0001-01-01T00:30:00+01:00", None), UTC)
    late = clean_row(2, ("A", None, "9999-12-31T23:30:00-01:00", None, None), UTC)

    assert (early.column, early.reason) == (
        "Available-from",
        bad.format("0001-01-01T00:30:00+01:00"),
    )
    assert (late.column, late.reason) == ("Issue-end", bad.format("9999-12-31T23:30:00-01:00"))


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
