"""Check one row of template cells: return the clean row to load, or why it is rejected."""

import re
from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo

from pools.models import CODE_MAX_LENGTH

from .readers import TEMPLATE_COLUMNS, UnreadableRow

EMPTY_CODE = "The code is empty."
CODE_TOO_LONG = f"The code is longer than {CODE_MAX_LENGTH} characters."
CODE_NOT_TYPABLE = "The code contains a space or a character that cannot be typed."
BAD_DATE = "“{value}” is not a date: use YYYY-MM-DD HH:MM or DD.MM.YYYY HH:MM."
END_BEFORE_START = "{end} is before {start}."
DUPLICATE_IN_FILE = "The same code is in an earlier row."

_DMY = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?")


@dataclass(frozen=True, slots=True)
class Rejected:
    row_number: int
    column: str
    value: str
    reason: str
    cells: tuple


def cell_text(value) -> str:
    """Return a cell as the user typed it: 12345 rather than 12345.0 for a number from Excel."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)


def parse_datetime(value, *, end: bool) -> datetime | None:
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
        moment = datetime.fromisoformat(text)
        if end and len(text) == 10:
            return datetime.combine(moment, time.max)
        return moment
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time.max if end else time.min)
    raise ValueError(value)


def clean_row(row_number: int, cells, tz: tzinfo):
    """Return (row_number, code, issue_start, issue_end, available_from, available_till) with
    the dates as naive ISO 8601 text in the time zone `tz`, or Rejected."""
    if isinstance(cells, UnreadableRow):
        return Rejected(row_number, "", "", cells.reason, ())
    raw_code, *raw_dates = cells
    code = (raw_code if isinstance(raw_code, str) else cell_text(raw_code)).strip()
    reason = None
    if not code:
        reason = EMPTY_CODE
    elif len(code) > CODE_MAX_LENGTH:
        reason = CODE_TOO_LONG
    elif not code.isprintable() or " " in code or "\ufffd" in code:
        reason = CODE_NOT_TYPABLE
    if reason:
        return Rejected(row_number, TEMPLATE_COLUMNS[0], code, reason, cells)
    if not any(raw_dates):
        return (row_number, code, None, None, None, None)
    dates = []
    for index, value in enumerate(raw_dates, start=1):
        try:
            dates.append(parse_datetime(value, end=index % 2 == 0))
        except ValueError:
            text = cell_text(value)
            return Rejected(
                row_number, TEMPLATE_COLUMNS[index], text, BAD_DATE.format(value=text), cells
            )
    for start, end in ((0, 1), (2, 3)):
        if dates[start] and dates[end] and _aware(dates[end], tz) < _aware(dates[start], tz):
            return Rejected(
                row_number,
                TEMPLATE_COLUMNS[end + 1],
                cell_text(raw_dates[end]),
                END_BEFORE_START.format(
                    end=TEMPLATE_COLUMNS[end + 1], start=TEMPLATE_COLUMNS[start + 1]
                ),
                cells,
            )
    # Naive text in the project's time zone: the database reads text faster than a driver
    # converts objects, and one zone for all rows lets the loader convert them in one place.
    return (row_number, code, *(d and _local(d, tz).isoformat(" ") for d in dates))


def _aware(moment: datetime, tz: tzinfo) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


def _local(moment: datetime, tz: tzinfo) -> datetime:
    return moment.astimezone(tz).replace(tzinfo=None) if moment.tzinfo else moment


def to_datetime(text: str | None, tz: tzinfo) -> datetime | None:
    """Return the aware datetime of a date as clean_row gives it."""
    return text and _aware(datetime.fromisoformat(text), tz)
