"""Check one row of template cells: return the clean row to load, or why it is rejected.

Whatever a cell holds (any length, any Unicode, control characters, NUL, lone surrogates, a
number where text is expected), the problem stays in its row: clean_row never raises for a
cell, and what a rejection shows and stores of the bad value is shortened visibly (cells.shown).
"""

import re
from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo

from pools.models import CODE_MAX_LENGTH

from .cells import cell_text, shown
from .readers import TEMPLATE_COLUMNS, UnreadableRow

EMPTY_CODE = "The code is empty."
CODE_TOO_LONG = f"The code is longer than {CODE_MAX_LENGTH} characters."
CODE_NOT_TYPABLE = "The code contains a space or a character that cannot be typed."
BAD_DATE = "“{value}” is not a date: use YYYY-MM-DD HH:MM, DD.MM.YYYY HH:MM or DD/MM/YYYY."
AMBIGUOUS_DATE = (
    "“{value}” could be day-first or month-first: choose the date order on the upload form and "
    "upload again."
)
AGAINST_DATE_ORDER = "“{value}” is not a date in the file's {order} order."
END_BEFORE_START = "{end} is before {start}."
DUPLICATE_IN_FILE = "The same code is in an earlier row."
TEMPLATE_EXAMPLE = "This is the template's example row, not a code: skipped."

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
    """

    DAY_FIRST = "dmy"
    MONTH_FIRST = "mdy"
    NAMES = {DAY_FIRST: "day-first", MONTH_FIRST: "month-first"}

    def __init__(self, order: str = ""):
        self.order = order

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

    def read(self, text: str, match: re.Match, *, end: bool) -> datetime:
        first, second, year, hour, minute, sec, half = match.groups()
        first, second = int(first), int(second)
        readable_as = self.readable_as(first, second)
        if not readable_as:
            raise ValueError(text)
        if self.order:
            if self.order not in readable_as:
                raise DateOrderError(
                    AGAINST_DATE_ORDER.format(value=shown(text), order=self.NAMES[self.order])
                )
        elif len(readable_as) == 2 and first != second:
            raise DateOrderError(AMBIGUOUS_DATE.format(value=shown(text)))
        elif len(readable_as) == 1:
            (self.order,) = readable_as
        # else equal parts (04/04), read the same either way: they settle nothing.
        day, month = (second, first) if self.order == self.MONTH_FIRST else (first, second)
        if len(year) == 2:
            year = int(year) + (2000 if int(year) < 69 else 1900)  # as strptime's %y
        year = int(year)
        if hour is None:
            moment = datetime(year, month, day)
            return datetime.combine(moment, time.max) if end else moment
        hour = int(hour)
        if half:
            if not 1 <= hour <= 12:
                raise ValueError(text)
            hour = hour % 12 + (12 if half.lower() == "p" else 0)
        return datetime(year, month, day, hour, int(minute), int(sec or 0))


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


def parse_datetime(value, *, end: bool, order: DateOrder | None = None) -> datetime | None:
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
            return (order or DateOrder()).read(text, match, end=end)
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


def clean_row(row_number: int, cells, tz: tzinfo, order: DateOrder | None = None):
    """Return (row_number, code, issue_start, issue_end, available_from, available_till) with
    the dates as naive ISO 8601 text in the time zone `tz`, or Rejected."""
    if isinstance(cells, UnreadableRow):
        return Rejected(row_number, "", "", cells.reason[:255], ())
    raw_code, *raw_dates = cells
    code = (raw_code if isinstance(raw_code, str) else cell_text(raw_code)).strip()
    reason = None
    if not code:
        reason = EMPTY_CODE
    elif len(code) > CODE_MAX_LENGTH:
        reason = CODE_TOO_LONG
    elif not code.isprintable() or " " in code or "\ufffd" in code:
        reason = CODE_NOT_TYPABLE
    elif code == TEMPLATE_EXAMPLE_CODE:
        reason = TEMPLATE_EXAMPLE
    if reason:
        return Rejected(row_number, TEMPLATE_COLUMNS[0], shown(code), reason, cells)
    if not any(raw_dates):
        return (row_number, code, None, None, None, None)
    dates = []
    for index, value in enumerate(raw_dates, start=1):
        try:
            dates.append(parse_datetime(value, end=index % 2 == 0, order=order))
        except DateOrderError as error:
            return Rejected(row_number, TEMPLATE_COLUMNS[index], shown(value), str(error), cells)
        except (ValueError, TypeError, OverflowError):
            text = shown(value)
            return Rejected(
                row_number, TEMPLATE_COLUMNS[index], text, BAD_DATE.format(value=text), cells
            )
    try:
        for start, end in ((0, 1), (2, 3)):
            if dates[start] and dates[end] and _aware(dates[end], tz) < _aware(dates[start], tz):
                return Rejected(
                    row_number,
                    TEMPLATE_COLUMNS[end + 1],
                    shown(raw_dates[end]),
                    END_BEFORE_START.format(
                        end=TEMPLATE_COLUMNS[end + 1], start=TEMPLATE_COLUMNS[start + 1]
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
        return Rejected(
            row_number, TEMPLATE_COLUMNS[index], text, BAD_DATE.format(value=text), cells
        )
    return (row_number, code, *local)


def _aware(moment: datetime, tz: tzinfo) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


def _local(moment: datetime, tz: tzinfo) -> datetime:
    return moment.astimezone(tz).replace(tzinfo=None) if moment.tzinfo else moment
