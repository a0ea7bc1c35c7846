import io
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from openpyxl import Workbook

from imports.readers import BLANK_ROW, UnreadableRow, open_table
from imports.validation import DateOrder, Rejected, Skipped, clean_row, parse_datetime
from pools.code_services.loading import to_datetime
from pools.models import CODE_MAX_LENGTH
from tests.imports.files import xlsx_bytes

MOSCOW = ZoneInfo("Europe/Moscow")
EMPTY = "The code is empty."
NOT_DECODED = (
    "The code holds bytes that are not text in the file's encoding (shown as �): save the file "
    "as “CSV UTF-8” and upload it again."
)


def untypable(character: str, position: int) -> str:
    return (
        f"The code has {character} at position {position}, which cannot be part of a code: "
        "remove it."
    )


def clean(code, *dates, tz=MOSCOW):
    cells = (code, *dates, *[None] * (4 - len(dates)))
    return clean_row(7, cells, tz)


def test_code_is_trimmed_and_dates_are_optional():
    assert clean("  SPRING10 \t") == (7, "SPRING10", None, None, None, None)


def test_excels_text_formula_for_leading_zeros_is_the_code_inside_it():
    assert clean('="00123"')[1] == "00123"
    assert clean('=" 7""A "')[1] == '7"A'
    assert isinstance(clean('=""'), Rejected)


def test_numeric_code_from_excel_keeps_its_digits():
    assert clean(12345.0)[1] == "12345"


@pytest.mark.parametrize(
    "code, reason",
    [
        ("", EMPTY),
        ("   ", EMPTY),
        (None, EMPTY),
        ("X" * 101, "The code is longer than 100 characters."),
        ("TWO WORDS", untypable("a space", 4)),
        ("ZERO\u200bWIDTH", untypable("a zero width space (U+200B)", 5)),
        ("NO\u00a0BREAK", untypable("a no-break space (U+00A0)", 3)),
        ("BROKEN\ufffd", NOT_DECODED),
        ("TAB\tINSIDE", untypable("a control character (U+0009)", 4)),
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
        "The Issue-end date is before the Issue-start date.",
    )
    result = clean("A", None, None, "10.05.2026 12:00", "10.05.2026 11:59:59")
    assert (result.column, result.value, result.reason) == (
        "Available-till",
        "10.05.2026 11:59:59",
        "The Available-till date is before the Available-from date.",
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


def test_unreadable_date_is_shown_visible():
    result = clean("A", "x\x00" * 50)

    assert result.value == "x␀" * 50
    assert result.reason == (
        f"“{'x␀' * 50}” is not a date: use YYYY-MM-DD HH:MM, DD.MM.YYYY HH:MM or DD/MM/YYYY."
    )


def test_a_date_cell_longer_than_100_characters_is_not_a_date_and_is_shown_shortened():
    result = clean("A", "x\x00" * 300)

    assert (result.column, result.value) == ("Issue-start", ("x␀" * 50) + "…")
    assert result.reason == "The Issue-start cell is longer than 100 characters: it is not a date."


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
        "“03/04/2026” could be day-first or month-first, and no date above it has a day above 12 "
        "to tell: choose the date order on the upload form and upload again."
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
        "“31/01/2026” is not a date: this file's dates are read month-first, as “01/31/2026” "
        "(row 1) shows.",
    )


def test_template_example_row_is_skipped_with_a_note():
    assert clean("SPRING-7KQ2", "2026-03-01") == Skipped(
        7, "This is the template's example row, not a code: skipped."
    )
    # Skipped as it is, whatever its dates: it holds no code to check them for.
    assert clean(" SPRING-7KQ2 ", "tomorrow") == Skipped(
        7, "This is the template's example row, not a code: skipped."
    )


def test_a_date_against_a_chosen_day_first_order_is_refused_and_names_the_order():
    refused = clean_row(5, ("A", None, None, None, "01/31/2026"), UTC, DateOrder("dmy"))

    assert (refused.row_number, refused.column, refused.value, refused.reason) == (
        5,
        "Available-till",
        "01/31/2026",
        "“01/31/2026” is not a date: this file's dates are read day-first, as chosen on the "
        "upload form.",
    )


def slashed(value, order, row=1, column=1):
    cells = ["A", None, None, None, None]
    cells[column] = value
    return clean_row(row, tuple(cells), UTC, order)


AMBIGUOUS = (
    "“{}” could be day-first or month-first, and no date above it has a day above 12 to tell: "
    "choose the date order on the upload form and upload again."
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


# Rows as a file gives them: through the reader, so the cells are of the types calamine (a
# workbook) and the csv module (a CSV file) really return.


def rows_of(data: bytes, name: str, order: DateOrder | None = None) -> list:
    table = open_table(io.BytesIO(data), name=name, size=len(data))
    order = order or DateOrder()
    return [clean_row(number, cells, UTC, order) for number, cells in table.rows]


def xlsx_rows(*rows, header=("Code", "Issue-start")) -> list:
    return rows_of(xlsx_bytes([header, *rows]), "codes.xlsx")


def csv_rows(text: str, order: DateOrder | None = None) -> list:
    return rows_of(text.encode(), "codes.csv", order)


def refusal(result) -> tuple:
    assert isinstance(result, Rejected), result
    return (result.row_number, result.column, result.value, result.reason)


KEEP_AS_TEXT = (
    "Format the column of codes as Text in Excel before typing or pasting the codes, then save "
    "and upload again."
)


@pytest.mark.parametrize(
    "text, delimiter",
    [("1.23457E+11", ","), ("1,23457E+11", ";"), ("-1.2E-05", ","), ("4e+15", ",")],
)
def test_a_code_excel_wrote_in_scientific_notation_is_rejected_with_how_to_keep_it_text(
    text, delimiter
):
    (result,) = csv_rows(f"Code{delimiter}Issue-end\n{text}{delimiter}\n")

    assert refusal(result) == (
        2,
        "Code",
        text,
        f"Excel wrote this code in scientific notation ({text}), so its digits are lost. "
        + KEEP_AS_TEXT,
    )


def test_a_code_in_scientific_notation_is_rejected_from_a_text_cell_of_a_workbook_too():
    (result,) = xlsx_rows(("1.23457E+11", None))

    assert refusal(result)[:3] == (2, "Code", "1.23457E+11")


def test_a_code_like_2e10_without_the_exponents_sign_stays_a_code():
    # Excel writes the exponent's sign always: 2E10 was not written by Excel.
    rows = csv_rows("Code\n2E10\n7e3\n1E+5X\nE+10\n")

    assert [row[1] for row in rows] == ["2E10", "7e3", "1E+5X", "E+10"]


def test_a_number_past_15_digits_in_a_workbook_is_rejected_unless_a_program_wrote_it_exactly():
    rows = xlsx_rows(
        # Typed in Excel: 1234567890123456789 is kept as 1234567890123450000 (a double's
        # 1234567890123450112).
        (1.23456789012345e18, None),
        # Past 2**53 a double cannot hold every whole number: rejected however written.
        (1234567890123456789, None),
        (2**53 + 1, None),
        # Below 2**53 with a 16th digit that is not zero: a program wrote it, Excel could not.
        (1234567890123456, None),
        (2**53 - 1, None),
        # Below 2**53 with a 16th digit of zero: what Excel leaves of 1234567890123456.
        (1234567890123450, None),
        (-1234567890123450, None),
        # 15 digits: Excel keeps them all; the first of 16 is cut like the others.
        (999999999999999, None),
        (123456789012345.0, None),
        (10**15, None),
    )

    reason = (
        "Excel keeps 15 digits of a number, so the digits of this code after the 15th are lost "
        "({}). " + KEEP_AS_TEXT
    )
    rejected = [
        (2, "1234567890123450000"),
        (3, "1234567890123460000"),  # as Excel shows it: 15 digits
        (4, "9007199254740990"),
        (7, "1234567890123450"),
        (8, "-1234567890123450"),
        (11, "1000000000000000"),
    ]
    for row, value in rejected:
        assert refusal(rows[row - 2]) == (row, "Code", value, reason.format(value))
    assert [rows[row - 2][1] for row in (5, 6, 9, 10)] == [
        "1234567890123456",
        "9007199254740991",
        "999999999999999",
        "123456789012345",
    ]


def test_a_fraction_in_the_code_column_is_kept_as_written():
    rows = xlsx_rows((12.5, None), (-0.25, None))

    assert [row[1] for row in rows] == ["12.5", "-0.25"]


def test_a_date_or_time_cell_in_the_code_column_is_what_excel_made_of_a_code():
    rows = xlsx_rows(
        (datetime(2010, 3, 1), None),  # MAR10 typed; calamine gives a date for midnight
        (datetime(2027, 1, 2, 9, 30), None),
        (time(12, 30), None),  # 12:30
        (timedelta(hours=36), None),  # 36:00
    )

    reason = (
        "Excel turned this code into a date or a time ({}), so the code as typed is lost. "
        + KEEP_AS_TEXT
    )
    for result, value in zip(
        rows, ["2010-03-01", "2027-01-02 09:30:00", "12:30:00", "1 day, 12:00:00"], strict=True
    ):
        assert refusal(result)[1:] == ("Code", value, reason.format(value))


@pytest.mark.parametrize(
    "text",
    [
        "2010-03-01",
        "2027-12-31",
        "2010-3-1",
        "2010/03/01",
        "2010-03-01 12:30:00",
        "2010-03-01T12:30",
        "01.03.2010",
        "31.12.2027",
        "1.3.10",
        "01.03.2010 12:30",
        "3/1/2010",
        "13/1/2010",
        "3/1/10",
        "3/1/2010 12:30 PM",
        "1-Mar-10",
        "01-Mar-2010",
        "2-Jan",
        "31-Dec",
        "Mar-10",
        "12:30",
        "0:05",
        "23:59",
        "23:59:59",
        "12:30:00",
        "12:30:00.5",
        "12:30 PM",
        "9:05 a.m.",
        "12:30PM",
    ],
)
def test_a_code_that_is_a_date_or_time_as_excel_writes_one_into_a_csv_is_rejected(text):
    (result,) = csv_rows(f'Code\n"{text}"\n')

    assert refusal(result) == (
        2,
        "Code",
        text,
        f"Excel turned this code into a date or a time ({text}), so the code as typed is lost. "
        + KEEP_AS_TEXT,
    )


@pytest.mark.parametrize(
    "text",
    [
        "MAR-10",  # typed in capitals: Excel writes months as Mar
        "1-MAR-10",
        "SPRING-2027",
        "2027A",
        "1-2",  # Excel would have written 2-Jan
        "10.20.30",  # no month 20
        "2027-13-40",
        "2027-00-10",
        "2027-01-32",
        "2027-01",
        "32.01.2027",
        "00.01.2027",
        "32-Mar",
        "0-Jan",
        "13/13/2026",
        "1/2",
        "24:00",
        "12:60",
        "13:00PM",
        "0:30AM",
        "12:30:60",
        "2010-03-01X",
        "March-10",
        "Mar-1",
        "12.30",
    ],
)
def test_a_code_that_only_looks_a_little_like_a_date_stays_a_code(text):
    (result,) = csv_rows(f"Code\n{text}\n")

    assert result == (2, text, None, None, None, None)


def test_a_true_or_false_cell_is_the_code_excel_shows():
    rows = xlsx_rows((True, None), (False, None))

    assert [row[1] for row in rows] == ["TRUE", "FALSE"]
    assert [row[1] for row in csv_rows("Code\nTRUE\nFalse\n")] == ["TRUE", "False"]


@pytest.mark.parametrize("error", ["#N/A", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#SPILL!"])
def test_an_excel_error_in_a_code_or_date_cell_of_a_csv_is_rejected_on_its_column(error):
    code, date_ = csv_rows(f"Code,Issue-end\n{error},\nA,{error}\n")

    assert refusal(code) == (2, "Code", error, f"The cell holds the Excel error {error}.")
    assert refusal(date_) == (3, "Issue-end", error, f"The cell holds the Excel error {error}.")


def test_excel_damage_is_told_before_a_space_makes_a_code_untypable():
    assert refusal(clean("12:30 PM"))[3].startswith("Excel turned this code into a date")
    assert refusal(clean("1 day"))[3] == untypable("a space", 2)


def test_a_10_mb_date_cell_is_rejected_as_too_long_and_a_cell_of_100_characters_is_read():
    result = clean("A", None, None, None, "2" * 10_000_000)

    assert refusal(result) == (
        7,
        "Available-till",
        "2" * 100 + "…",
        "The Available-till cell is longer than 100 characters: it is not a date.",
    )
    # Spaces around a date are not part of it.
    assert clean("A", " " * 200 + "2026-04-30" + " " * 200)[2] == "2026-04-30 00:00:00"
    assert refusal(clean("A", None, "2" * 100))[3] == (
        f"“{'2' * 100}” is not a date: use YYYY-MM-DD HH:MM, DD.MM.YYYY HH:MM or DD/MM/YYYY."
    )
    assert refusal(clean("A", None, "2" * 101))[3] == (
        "The Issue-end cell is longer than 100 characters: it is not a date."
    )


def test_a_blank_row_is_skipped():
    assert clean_row(4, BLANK_ROW, UTC) == Skipped(4, "Blank row: skipped.")


def test_an_unreadable_row_names_its_column_and_value_shown_visible_and_short():
    row = UnreadableRow("The Issue-end cell holds a formula.", column="Issue-end", value="=A1\x00")

    assert clean_row(3, row, UTC) == Rejected(
        3, "Issue-end", "=A1␀", "The Issue-end cell holds a formula.", ()
    )
    long = clean_row(3, UnreadableRow("Bad.", column="Code", value="y" * 300), UTC)
    assert long.value == "y" * 100 + "…"


def test_a_date_against_the_files_order_names_the_date_that_settled_it_and_its_row():
    rows = csv_rows(
        "Code,Issue-start\nA,03/04/2027\nB,04/04/2027\nC,31/01/2027\nD,03/04/2027\nE,01/31/2027\n"
    )

    assert refusal(rows[0])[3] == AMBIGUOUS.format("03/04/2027")
    assert rows[1][2] == "2027-04-04 00:00:00"  # equal parts settle nothing
    assert (rows[2][2], rows[3][2]) == ("2027-01-31 00:00:00", "2027-04-03 00:00:00")
    assert refusal(rows[4]) == (
        6,
        "Issue-start",
        "01/31/2027",
        "“01/31/2027” is not a date: this file's dates are read day-first, as “31/01/2027” "
        "(row 4) shows.",
    )


def test_a_slashed_date_that_is_not_one_settles_no_order():
    order = DateOrder()

    assert refusal(slashed("31/02/2026", order, row=2))[3] == (
        "“31/02/2026” is not a date: use YYYY-MM-DD HH:MM, DD.MM.YYYY HH:MM or DD/MM/YYYY."
    )
    assert refusal(slashed("03/04/2026", order, row=3))[3] == AMBIGUOUS.format("03/04/2026")
    assert slashed("02/13/2026", order, row=4)[2] == "2026-02-13 00:00:00"
    assert refusal(slashed("13/02/2026", order, row=5))[3] == (
        "“13/02/2026” is not a date: this file's dates are read month-first, as “02/13/2026” "
        "(row 4) shows."
    )


def test_an_order_chosen_on_the_form_is_named_until_a_date_of_the_file_bears_it_out():
    order = DateOrder("mdy")
    text = "Code,Issue-end\nA,31/01/2027\nB,01/31/2027\nC,31/01/2027\n"

    first, second, third = csv_rows(text, order)

    assert refusal(first)[3] == (
        "“31/01/2027” is not a date: this file's dates are read month-first, as chosen on the "
        "upload form."
    )
    assert second[3] == "2027-01-31 23:59:59.999999"
    assert refusal(third)[3] == (
        "“31/01/2027” is not a date: this file's dates are read month-first, as “01/31/2027” "
        "(row 3) shows."
    )


# calamine reads an error value as an empty cell (test_xlsx_cells.py): the reader puts
# xlsx_cells' finding in its place.
def test_an_excel_error_in_a_workbook_is_rejected_on_its_column():
    workbook = Workbook()
    workbook.active.append(["Code", "Issue-start"])
    workbook.active.append(["#N/A", None])
    workbook.active.append(["A", "#DIV/0!"])
    output = io.BytesIO()
    workbook.save(output)

    code, date_ = rows_of(output.getvalue(), "codes.xlsx")

    assert refusal(code) == (2, "Code", "#N/A", "The cell holds the Excel error #N/A.")
    assert refusal(date_) == (
        3,
        "Issue-start",
        "#DIV/0!",
        "The cell holds the Excel error #DIV/0!.",
    )
