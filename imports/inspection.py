"""The upload request's look at a file, while the manager waits: the same checks the worker
makes on the whole file (type by content, encoding, delimiter, a header with a Code column,
size), so that a file the worker would refuse is refused on the page with the same message."""

import time
from typing import BinaryIO

from django.conf import settings
from django.utils.translation import gettext_lazy as _

from .headers import ColumnMapping
from .readers import open_table, unpacked_size
from .validation import SLASHED_DATE, DateOrder

AMBIGUOUS_DATES = _(
    "The dates in “{name}” (such as “{example}”) could be day-first or month-first: choose the "
    "date order."
)

# Rows and seconds the look at a file may take: enough to find a date that settles the order
# in any real file, and within a second or two for the manager.
_ROWS_LOOKED_AT = 20_000
_SECONDS = 1.5


class AmbiguousDates(Exception):
    """The file's slashed dates read both ways and no date order was chosen; `example` is the
    first such date."""

    def __init__(self, message: str, *, example: str = ""):
        super().__init__(message)
        self.example = example


def inspect_file(
    file: BinaryIO,
    *,
    name: str,
    size: int,
    date_order: str = "",
    encoding: str = "",
    mapping: ColumnMapping | None = None,
) -> str:
    """Check a file as the worker would, from its first rows; return the date order of its
    slashed dates ("dmy", "mdy", or "" when it has none or they disagree).

    `encoding` and `mapping` are the manager's choices, read as the worker reads them. Raise
    ImportFileError for a file the worker would refuse (its subclasses ColumnsUnclear and
    EncodingUnclear for a question the manager can answer), AmbiguousDates when its dates could
    be read both ways and `date_order` does not say which. A workbook too large to parse while
    the manager waits (sheets_loadable) is checked as a container only; the worker checks the
    rest.
    """
    try:
        table = open_table(
            file,
            name=name,
            size=size,
            load_sheets=sheets_loadable(file, size=size),
            encoding=encoding,
            mapping=mapping,
        )
        if date_order:
            return date_order
        return date_order_found(table.rows, name=name)
    finally:
        file.seek(0)


def sheets_loadable(file: BinaryIO, *, size: int) -> bool:
    """Return True if a workbook may be parsed in the request, while the manager waits: within
    IMPORT_SNIFF_MAX_WORKBOOK and, a zip (XLSX, XLSM, XLSB, ODS), unpacking to no more than
    IMPORT_SNIFF_MAX_UNPACKED. Parsing holds the sheet in memory, and what a sheet costs follows
    its unpacked XML, not its file: a 5 MB XLSX of 400 MB of XML held 1.2 GB. Every upload
    request asks this before it parses a workbook; the worker parses the rest."""
    if size > settings.IMPORT_SNIFF_MAX_WORKBOOK:
        return False
    unpacked = unpacked_size(file)
    return unpacked is None or unpacked <= settings.IMPORT_SNIFF_MAX_UNPACKED


def date_order_found(rows, *, name: str) -> str:
    """Return the date order the first of these rows settle ("dmy", "mdy", or "" when they hold
    no slashed date, or dates that disagree); raise AmbiguousDates when every slashed date
    among them reads both ways. The upload's look and the preview share this rule."""
    orders, example = _slashed_date_orders(rows)
    if orders == {DateOrder.DAY_FIRST} or orders == {DateOrder.MONTH_FIRST}:
        return orders.pop()
    if orders == {"both"}:
        raise AmbiguousDates(AMBIGUOUS_DATES.format(name=name, example=example), example=example)
    return ""


def _slashed_date_orders(rows) -> tuple[set[str], str]:
    orders: set[str] = set()
    example = ""
    deadline = time.monotonic() + _SECONDS
    for count, (_number, cells) in enumerate(rows):
        if count >= _ROWS_LOOKED_AT or time.monotonic() > deadline:
            break
        if not isinstance(cells, tuple):
            continue
        for value in cells[1:]:
            match = SLASHED_DATE.fullmatch(value.strip()) if isinstance(value, str) else None
            if not match:
                continue
            first, second = int(match.group(1)), int(match.group(2))
            readable_as = DateOrder.readable_as(first, second)
            if len(readable_as) == 1:
                orders |= readable_as
            elif readable_as and first != second:
                example = example or value.strip()
                orders.add("both")
    if len(orders) > 1:
        orders.discard("both")
    return orders, example
