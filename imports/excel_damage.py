"""What Excel does to codes: the forms a code takes once Excel has read it as a number, a date,
a time or an error, and the number of digits it keeps. validation.clean_row rejects such a
code, saying what happened and how to keep codes as text."""

import re
from decimal import Context, Decimal

from django.utils.translation import gettext_lazy as _

from .cells import cell_text, shown

# What Excel did to a code typed or pasted into a column of the General format, each followed
# by how to keep codes as text (one message each, so that each reads whole in translation).
CODE_IN_SCIENTIFIC_NOTATION = _(
    "Excel wrote this code in scientific notation ({value}), so its digits are lost. Format the "
    "column of codes as Text in Excel before typing or pasting the codes, then save and upload "
    "again."
)
CODE_PAST_15_DIGITS = _(
    "Excel keeps 15 digits of a number, so the digits of this code after the 15th are lost "
    "({value}). Format the column of codes as Text in Excel before typing or pasting the "
    "codes, then save and upload again."
)
CODE_TURNED_INTO_DATE = _(
    "Excel turned this code into a date or a time ({value}), so the code as typed is lost. "
    "Format the column of codes as Text in Excel before typing or pasting the codes, then save "
    "and upload again."
)

# What Excel shows for a cell whose formula failed, and writes so into a CSV. (calamine reads
# such a cell of a workbook as empty; xlsx_cells finds it in an XLSX.)
EXCEL_ERRORS = frozenset(
    {
        "#NULL!",
        "#DIV/0!",
        "#VALUE!",
        "#REF!",
        "#NAME?",
        "#NUM!",
        "#N/A",
        "#GETTING_DATA",
        "#SPILL!",
        "#CALC!",
        "#FIELD!",
        "#BLOCKED!",
        "#CONNECT!",
        "#BUSY!",
        "#UNKNOWN!",
        "#PYTHON!",
    }
)

# A number in scientific notation as Excel writes one (1.23457E+11, 1,23457E+11 where the
# decimal separator is a comma). Excel always writes the exponent's sign, so a code without
# one (2E10, 7e3) was not written by Excel and stays a code.
SCIENTIFIC_NOTATION = re.compile(r"[+-]?\d+(?:[.,]\d+)?[eE][+-]\d+")

# A date or a time as Excel writes one into a CSV file, the whole code being:
#   2010-03-01 or 2010/03/01, optionally with a time after a space or T;
#   01.03.2010 or 1.3.10 (day first), optionally with a time after a space;
#   3/1/2010 or 3/1/10, readable in one order at least, optionally with a time after a space;
#   1-Mar, 1-Mar-10, 01-Mar-2010, Mar-10, with the month in English and Title case as Excel
#     writes it (so MAR-10 in capitals, as typed, stays a code);
#   12:30, 12:30:00, 12:30 PM, 9:05:07.5 a.m.: an hour to 23 (1 to 12 before AM/PM), minutes
#     and seconds to 59.
# Day and month must be in range (1-31, 1-12), so 10.20.30 or 2027-13-40 stays a code; so do
# SPRING-2027, 2027A, 1-2 (which Excel would have written as 2-Jan).
_MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"


def _time(form: str) -> str:
    """A time after a date of this form (or alone): its groups are named after the form, as
    the forms make one expression and a name may be used once in it."""
    return (
        rf"(?P<{form}_hour>\d{{1,2}}):(?P<{form}_minute>\d{{2}})"
        rf"(?::(?P<{form}_seconds>\d{{2}})(?:\.\d+)?)?(?:\s?(?P<{form}_half>[AaPp])\.?[Mm]\.?)?"
    )


# One expression rather than one per form: it is tried on every code that starts as a date does.
_EXCEL_DATE = re.compile(
    "|".join(
        (
            rf"(?P<iso_year>\d{{4}})(?P<iso_separator>[-/])(?P<iso_month>\d{{1,2}})"
            rf"(?P=iso_separator)(?P<iso_day>\d{{1,2}})(?:[ T]{_time('iso')})?",
            rf"(?P<dotted_day>\d{{1,2}})\.(?P<dotted_month>\d{{1,2}})\.(?:\d{{4}}|\d{{2}})"
            rf"(?: {_time('dotted')})?",
            rf"(?P<slashed_first>\d{{1,2}})/(?P<slashed_second>\d{{1,2}})/(?:\d{{4}}|\d{{2}})"
            rf"(?: {_time('slashed')})?",
            rf"(?P<named_day>\d{{1,2}})-(?:{_MONTHS})(?:-(?:\d{{4}}|\d{{2}}))?",
            rf"(?:{_MONTHS})-(?:\d{{4}}|\d{{2}})",
            _time("alone"),
        )
    )
)
NUMBER_STARTS = frozenset("0123456789+-")
MONTH_NAMES = frozenset(_MONTHS.split("|"))


def looks_like_excel_date(text: str) -> bool:
    """Return True if the text is a date or a time as Excel writes one into a CSV file."""
    match = _EXCEL_DATE.fullmatch(text)
    if not match:
        return False
    groups = match.groupdict()
    parts = {name: int(value) for name, value in groups.items() if value and value.isdigit()}
    if "iso_year" in parts and not (1 <= parts["iso_month"] <= 12 and 1 <= parts["iso_day"] <= 31):
        return False
    if "dotted_day" in parts and not (
        1 <= parts["dotted_day"] <= 31 and 1 <= parts["dotted_month"] <= 12
    ):
        return False
    if "slashed_first" in parts and not _day_and_month(
        parts["slashed_first"], parts["slashed_second"]
    ):
        return False
    if "named_day" in parts and not 1 <= parts["named_day"] <= 31:
        return False
    for form in ("iso", "dotted", "slashed", "alone"):
        if f"{form}_hour" in parts:
            hours = range(1, 13) if groups[f"{form}_half"] else range(24)
            return (
                parts[f"{form}_hour"] in hours
                and parts[f"{form}_minute"] <= 59
                and parts.get(f"{form}_seconds", 0) <= 59
            )
    return True


def _day_and_month(first: int, second: int) -> bool:
    """Whether a slashed date's first two parts are a day and a month, in either order."""
    return (1 <= first <= 31 and 1 <= second <= 12) or (1 <= first <= 12 and 1 <= second <= 31)


# Excel keeps 15 significant digits of a number; a double holds every whole number below 2**53.
_EXCEL_DIGITS = 15
_EXACT_WHOLE_NUMBERS = 2**53


def number_code(number: int | float) -> tuple[str, str | None]:
    """Return a number in the Code column as its code, unless Excel cut its digits.

    A whole number of more than 15 digits was cut by Excel if typed there: the digits past
    the 15th became zeros, and from 2**53 on a double cannot even hold every whole number. One
    below 2**53 whose digits past the 15th are not all zeros was written exactly by a program,
    and is kept. (A program's number ending in zeros, one in ten of those of 16 digits, is
    rejected with Excel's: it cannot be told apart.) A fraction is kept as written (12.5).
    """
    if isinstance(number, float) and not number.is_integer():
        return cell_text(number), None
    whole = int(number)
    if abs(whole) < 10**_EXCEL_DIGITS:
        return str(whole), None
    if abs(whole) < _EXACT_WHOLE_NUMBERS and str(abs(whole))[_EXCEL_DIGITS:].strip("0"):
        return str(whole), None
    # As Excel shows it, to 15 digits: 1234567890123450000 rather than the double's exact
    # 1234567890123450112 (Decimal, as str refuses whole numbers of more than 4,300 digits).
    exact = Decimal(repr(number) if isinstance(number, float) else number)
    written = format(exact.normalize(Context(prec=_EXCEL_DIGITS)), "f")
    return written, CODE_PAST_15_DIGITS.format(value=shown(written, limit=40))
