"""Check one row of template cells: return the clean row to load, why it is rejected, or why
it is skipped (a blank row, the template's example row).

Whatever a cell holds (any length, any Unicode, control characters, NUL, lone surrogates, a
number where text is expected), the problem stays in its row: clean_row never raises for a
cell, and what a rejection shows and stores of the bad value is shortened visibly (cells.shown).

A code Excel already damaged (written in scientific notation, cut to 15 digits, turned into a
date or a time, an error value) is rejected with what happened and how to keep codes as text:
imported, it would be a code no customer could ever redeem.
"""

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy, pgettext_lazy

from pools.models import CODE_MAX_LENGTH

from .cells import cell_text, shown
from .excel_damage import (
    CODE_IN_SCIENTIFIC_NOTATION,
    CODE_TURNED_INTO_DATE,
    EXCEL_ERRORS,
    MONTH_NAMES,
    NUMBER_STARTS,
    SCIENTIFIC_NOTATION,
    looks_like_excel_date,
    number_code,
)
from .headers import TEMPLATE_COLUMN_NAMES
from .readers import BLANK_ROW, UnreadableRow
from .rows import SkippedRow

EMPTY_CODE = _("The code is empty.")
CODE_TOO_LONG = ngettext_lazy(
    "The code is longer than {limit} character.",
    "The code is longer than {limit} characters.",
    CODE_MAX_LENGTH,
)
CODE_NOT_TYPABLE = _("The code contains a space or a character that cannot be typed.")
CODE_WITH_CHARACTER = _(
    "The code has {character} at position {position}, which cannot be part of a code: remove it."
)
# What CODE_WITH_CHARACTER names: a space, or a character by its Unicode name and number.
A_SPACE = _("a space")
A_CHARACTER = _("a {name} ({number})")
A_CONTROL_CHARACTER = _("a control character ({number})")
CODE_NOT_DECODED = _(
    "The code holds bytes that are not text in the file's encoding (shown as �): save the file "
    "as “CSV UTF-8” and upload it again."
)
BAD_DATE = _("“{value}” is not a date: use YYYY-MM-DD HH:MM, DD.MM.YYYY HH:MM or DD/MM/YYYY.")
AMBIGUOUS_DATE = _(
    "“{value}” could be day-first or month-first, and no date above it has a day above 12 to "
    "tell: choose the date order on the upload form and upload again."
)
# A date refused for the file's date order, and what settled the order: a date of the file
# that reads one way only (on its row, when known), or the upload form.
AGAINST_ORDER_SHOWN_ON_ROW = _(
    "“{value}” is not a date: this file's dates are read {order}, as “{example}” (row {row}) shows."
)
AGAINST_ORDER_SHOWN = _(
    "“{value}” is not a date: this file's dates are read {order}, as “{example}” shows."
)
AGAINST_ORDER_CHOSEN = _(
    "“{value}” is not a date: this file's dates are read {order}, as chosen on the upload form."
)
END_BEFORE_START = _("The {end} date is before the {start} date.")
DUPLICATE_IN_FILE = _("The same code is in an earlier row.")
TEMPLATE_EXAMPLE = _("This is the template's example row, not a code: skipped.")
BLANK = _("Blank row: skipped.")
# Longer than any date in any accepted form (the longest, 2026-03-01T10:15:00.000000+05:30,
# has 32 characters).
DATE_MAX_LENGTH = 100
DATE_TOO_LONG = ngettext_lazy(
    "The {column} cell is longer than {limit} character: it is not a date.",
    "The {column} cell is longer than {limit} characters: it is not a date.",
    DATE_MAX_LENGTH,
)
EXCEL_ERROR = _("The cell holds the Excel error {error}.")
# The template's example code (templates_download.template_example_row): an unedited template
# must not put it into a pool as a live code.
TEMPLATE_EXAMPLE_CODE = "SPRING-7KQ2"

_DMY = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?")
# 01/31/26, 1/31/2026 9:30 AM, 31/01/2026 18:00: the order of day and month is the file's.
SLASHED_DATE = re.compile(
    r"(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})"
    r"(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\s*([AaPp])\.?[Mm]\.?)?)?"
)


class DateOrder:
    """The order of day and month in a file's slashed dates (31/01/2026 or 01/31/2026).

    Chosen on the upload form, or found by the upload's look at the file, or else settled by
    the file's first date that can be read only one way (a part above 12); until then a date
    that reads both ways is rejected rather than guessed. Dotted dates (31.01.2026) are always
    day-first and ISO dates need no order.

    A date refused for the order says what set it: the file's first date read only that way
    (`shown_by`, “31/01/2026” (row 5)), else the upload form. An order found by the upload's
    look at the file was found in such a date, which the worker reads again before any date it
    refuses; unless that date's row was rejected for its code (its dates are not read), or
    committed before a resumed run (its rows are not read again): then the form is named.
    """

    DAY_FIRST = "dmy"
    MONTH_FIRST = "mdy"
    NAMES = {
        DAY_FIRST: pgettext_lazy("date order", "day-first"),
        MONTH_FIRST: pgettext_lazy("date order", "month-first"),
    }

    def __init__(self, order: str = ""):
        self.order = order
        # The date that settled the order and its row (0: not known), or () for none.
        self.shown_by: tuple = ()

    @classmethod
    def readable_as(cls, first: int, second: int) -> set[str]:
        """Return the orders in which a date starting first/second/ can be read."""
        return {
            order
            for order, (day, month) in (
                (cls.DAY_FIRST, (first, second)),
                (cls.MONTH_FIRST, (second, first)),
            )
            if 1 <= month <= 12 and 1 <= day <= 31
        }

    def read(self, text: str, match: re.Match, *, end: bool, row: int = 0) -> datetime:
        first, second, year, hour, minute, sec, half = match.groups()
        first, second = int(first), int(second)
        readable_as = self.readable_as(first, second)
        if not readable_as:
            raise ValueError(text)
        if self.order:
            if self.order not in readable_as:
                raise DateOrderError(self._against_order(text))
        elif len(readable_as) == 2 and first != second:
            raise DateOrderError(AMBIGUOUS_DATE.format(value=shown(text)))
        # else equal parts (04/04), read the same either way: they settle nothing.
        settles = len(readable_as) == 1 and not self.shown_by
        order = next(iter(readable_as)) if settles else self.order
        day, month = (second, first) if order == self.MONTH_FIRST else (first, second)
        if len(year) == 2:
            year = int(year) + (2000 if int(year) < 69 else 1900)  # as strptime's %y
        year = int(year)
        if hour is None:
            moment = datetime(year, month, day)
            moment = datetime.combine(moment, time.max) if end else moment
        else:
            hour = int(hour)
            if half:
                if not 1 <= hour <= 12:
                    raise ValueError(text)
                hour = hour % 12 + (12 if half.lower() == "p" else 0)
            moment = datetime(year, month, day, hour, int(minute), int(sec or 0))
        if settles:
            # Only a date that is one (not 31/02/2026) settles the order, and shows it.
            self.order = order
            # Shortened as the value is, so the reason fits its 255 characters.
            self.shown_by = (shown(text, limit=40), row)
        return moment

    def _against_order(self, text: str) -> str:
        """Why `text` is not a date in this order, naming what settled the order."""
        value, order = shown(text, limit=40), self.NAMES[self.order]
        if not self.shown_by:
            return AGAINST_ORDER_CHOSEN.format(value=value, order=order)
        example, row = self.shown_by
        if row:
            # The row number as the file shows it: 1502, never 1,502.
            return AGAINST_ORDER_SHOWN_ON_ROW.format(
                value=value, order=order, example=example, row=row
            )
        return AGAINST_ORDER_SHOWN.format(value=value, order=order, example=example)


class DateOrderError(ValueError):
    """A slashed date that the file's date order cannot settle; the message says why."""


@dataclass(frozen=True, slots=True)
class Skipped:
    """A row read but holding no code to add: a blank row, the template's example row."""

    row_number: int
    reason: str


@dataclass(frozen=True, slots=True)
class Rejected:
    row_number: int
    column: str
    value: str
    reason: str
    cells: tuple


def parse_datetime(
    value, *, end: bool, order: DateOrder | None = None, row: int = 0
) -> datetime | None:
    """Read a date cell; None when empty. Raise ValueError when it is not a date.

    A date without a time means the start of that day, or its end in an end column
    (Issue-end, Available-till): "until 31.12.2026" includes the 31st. The result is naive
    unless the cell names its zone; naive times are in the project's time zone.
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        match = _DMY.fullmatch(text) if "." in text[:3] else None
        if match:
            day, month, year, hour, minute, second = match.groups()
            if hour is None:
                moment = datetime(int(year), int(month), int(day))
                return datetime.combine(moment, time.max) if end else moment
            return datetime(
                int(year), int(month), int(day), int(hour), int(minute), int(second or 0)
            )
        match = SLASHED_DATE.fullmatch(text) if "/" in text[:3] else None
        if match:
            return (order or DateOrder()).read(text, match, end=end, row=row)
        try:
            # A date alone (2026-04-30, or 20260430 as ISO 8601 also allows) is a whole day.
            day = date.fromisoformat(text)
        except ValueError:
            return datetime.fromisoformat(text)
        return datetime.combine(day, time.max if end else time.min)
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time.max if end else time.min)
    raise ValueError(value)


def _code(value) -> tuple[str, str | None]:
    """Return the code a Code cell holds and None, or the cell as shown and why it holds no
    code: empty, too long, not typable, or a code Excel already damaged."""
    if isinstance(value, str):
        return _text_code(value.strip())
    if isinstance(value, bool):
        # Excel shows TRUE and FALSE, and writes them so into a CSV file.
        return ("TRUE" if value else "FALSE"), None
    if isinstance(value, int | float):
        return number_code(value)
    if isinstance(value, date | time | timedelta):
        # calamine's reading of a cell of a date or time format: Excel took the code typed
        # for a date (MAR-10, 1-2) or a time (12:30).
        text = cell_text(value)
        return text, CODE_TURNED_INTO_DATE.format(value=shown(text, limit=40))
    return _text_code(cell_text(value).strip())


# Excel writes ="00123" into a CSV file to keep a code's leading zeros: the code is inside.
_EXCEL_TEXT_FORMULA = re.compile(r'="(.*)"', re.DOTALL)
_SPACE = re.compile(r"\s")


def _text_code(code: str) -> tuple[str, str | None]:
    if code.startswith('="') and (text := _EXCEL_TEXT_FORMULA.fullmatch(code)):
        code = text.group(1).replace('""', '"').strip()
    if not code:
        return code, str(EMPTY_CODE)
    if len(code) > CODE_MAX_LENGTH:
        return code, CODE_TOO_LONG.format(limit=CODE_MAX_LENGTH)
    # Every form of Excel's damage has a sign or a separator (+ - / . :) and starts as a number
    # or a month does: testing for that first keeps a code such as K0000001 or 000123 at 0.4 µs
    # here; the two expressions would add 1 to 1.5 µs to each of a million rows.
    if (code[0] in NUMBER_STARTS or code[:3] in MONTH_NAMES) and not code.isalnum():
        # Before the test for spaces: Excel writes times as 12:30 PM.
        if SCIENTIFIC_NOTATION.fullmatch(code):
            return code, CODE_IN_SCIENTIFIC_NOTATION.format(value=shown(code, limit=40))
        if looks_like_excel_date(code):
            return code, CODE_TURNED_INTO_DATE.format(value=shown(code, limit=40))
    elif code[0] == "#" and code in EXCEL_ERRORS:
        return code, EXCEL_ERROR.format(error=code)
    if not code.isprintable() or _SPACE.search(code):
        if "\ufffd" in code:
            return code, str(CODE_NOT_DECODED)
        return code, _untypable(code)
    if "\ufffd" in code:
        return code, str(CODE_NOT_DECODED)
    return code, None


def _untypable(code: str) -> str:
    """Name the first character of a code that cannot be typed in one (a no-break space)."""
    for position, char in enumerate(code, start=1):
        if char == " ":
            return CODE_WITH_CHARACTER.format(character=A_SPACE, position=position)
        if not char.isprintable() or char.isspace():
            name, number = unicodedata.name(char, "").lower(), f"U+{ord(char):04X}"
            if name:
                character = A_CHARACTER.format(name=name, number=number)
            else:
                character = A_CONTROL_CHARACTER.format(number=number)
            return CODE_WITH_CHARACTER.format(character=character, position=position)
    return str(CODE_NOT_TYPABLE)


def clean_row(
    row_number: int, cells, tz: tzinfo, order: DateOrder | None = None, titles: tuple = ()
):
    """Return (row_number, code, issue_start, issue_end, available_from, available_till) with
    the dates as naive ISO 8601 text in the time zone `tz`, or Rejected, or Skipped (a blank
    row, the template's example row).

    A rejection names its column as the file does: `titles` are the file's names of the
    template's columns (readers.field_titles), else the template's names are used."""
    if cells is BLANK_ROW:
        return Skipped(row_number, str(BLANK))
    if isinstance(cells, SkippedRow):
        return Skipped(row_number, str(cells.reason))
    if isinstance(cells, UnreadableRow):
        # The cells that could be read go with it, for the rejected rows' download.
        return Rejected(
            row_number,
            cells.column,
            shown(cells.value),
            str(cells.reason)[:255],
            tuple(cells.cells),
        )
    raw_code, *raw_dates = cells
    code, reason = _code(raw_code)
    if reason:
        return Rejected(row_number, _title(titles, 0), shown(code), reason, cells)
    if code == TEMPLATE_EXAMPLE_CODE:
        return Skipped(row_number, str(TEMPLATE_EXAMPLE))
    if not any(raw_dates):
        return (row_number, code, None, None, None, None)
    dates = []
    for index, value in enumerate(raw_dates, start=1):
        text = value.strip() if isinstance(value, str) else ""
        if text in EXCEL_ERRORS:
            column = _title(titles, index)
            return Rejected(row_number, column, text, EXCEL_ERROR.format(error=text), cells)
        if len(text) > DATE_MAX_LENGTH:
            column = _title(titles, index)
            reason = DATE_TOO_LONG.format(column=column, limit=DATE_MAX_LENGTH)
            return Rejected(row_number, column, shown(value), reason, cells)
        try:
            dates.append(parse_datetime(value, end=index % 2 == 0, order=order, row=row_number))
        except DateOrderError as error:
            return Rejected(row_number, _title(titles, index), shown(value), str(error), cells)
        except (ValueError, TypeError, OverflowError):
            text = shown(value)
            reason = BAD_DATE.format(value=text)
            return Rejected(row_number, _title(titles, index), text, reason, cells)
    try:
        for start, end in ((0, 1), (2, 3)):
            if dates[start] and dates[end] and _aware(dates[end], tz) < _aware(dates[start], tz):
                return Rejected(
                    row_number,
                    _title(titles, end + 1),
                    shown(raw_dates[end]),
                    END_BEFORE_START.format(
                        end=_title(titles, end + 1), start=_title(titles, start + 1)
                    ),
                    cells,
                )
        # Naive text in the project's time zone: the database reads text faster than a driver
        # converts objects, and one zone for all rows lets the loader convert them in one place.
        local = [d and _local(d, tz).isoformat(" ") for d in dates]
    except (OverflowError, ValueError):
        # A date at the very edge of the calendar (year 1 or 9999) that a zone pushes over it.
        index = next(i for i, d in enumerate(dates) if d and d.year in (1, 9999)) + 1
        text = shown(raw_dates[index - 1])
        return Rejected(row_number, _title(titles, index), text, BAD_DATE.format(value=text), cells)
    return (row_number, code, *local)


def _title(titles: tuple, index: int) -> str:
    """The name of a template column as the file gives it, else as the template does (in the
    language of the reader: worked out only for a rejection, not on every row)."""
    return titles[index] if titles else str(TEMPLATE_COLUMN_NAMES[index])


def _aware(moment: datetime, tz: tzinfo) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


def _local(moment: datetime, tz: tzinfo) -> datetime:
    return moment.astimezone(tz).replace(tzinfo=None) if moment.tzinfo else moment
