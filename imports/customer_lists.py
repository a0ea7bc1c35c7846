"""Read a customer list (an assignment's upload): any columns, one of them the customer id;
the others are kept as they are and handed back with a Code column added."""

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import chain
from typing import BinaryIO

from django.utils.translation import gettext_lazy as _

from . import csv_records
from .csv_table import csv_source
from .headers import HEADER_SEARCH_ROWS, is_blank, is_title_row, title_text
from .readers import (
    DAMAGED,
    EMPTY_FILE,
    ENCRYPTED,
    FORMATS,
    SAMPLE_SIZE,
    ImportFileError,
    check_size,
    columns_found,
    detect_format,
)
from .rows import BLANK_ROW, UnreadableRow

NO_CUSTOMER_COLUMN = _(
    "“{name}” has no customer id column (named Customer, Customer id or Id). Columns found: "
    "{found}."
)
NO_CUSTOMERS = _("“{name}” has a header but no rows of customers under it.")


@dataclass
class CustomerTable:
    """The rows of a customer list: (row number, all cells as text) and where the id is."""

    header: list[str]
    customer_index: int
    rows: Iterator[tuple[int, list | UnreadableRow]]
    progress: Callable[[], int]
    total: int


def _customer_csv_rows(file: BinaryIO, *, name: str):
    """A customer list's header (the first line, among the first few, naming a customer id
    column; titles and blank lines may stand above it) and its rows, as for codes."""
    source = csv_source(file)
    position, delimiter, header = None, ",", []
    for index, (_number, line) in enumerate(source.head):
        if not line.strip():
            continue
        delimiter = source.sep or max(csv_records.DELIMITERS, key=line.count)
        cells = csv_records.split_line(line, delimiter)
        if _customer_column([title_text(cell) for cell in cells]) is not None:
            position, header = index, cells
            break
        header = header or cells
        if not is_title_row(cells):
            break
    if position is None:
        return header, iter(()), source.progress
    rows = csv_records.records(
        chain(source.head[position + 1 :], source.rest),
        delimiter=delimiter,
        width=len(header),
        columns_read=set(),
        titles=[title_text(cell) for cell in header],
    )
    return header, rows, source.progress


def _customer_column(header: list[str]) -> int | None:
    keys = [re.sub(r"[\s_-]+", "", title).lower() for title in header]
    for wanted in ("customer", "customerid", "id"):
        if wanted in keys:
            return keys.index(wanted)
    return None


def _text_cell(cell) -> str:
    if cell is None:
        return ""
    if isinstance(cell, float) and cell.is_integer():
        # A spreadsheet stores customer number 1042 as 1042.0.
        return str(int(cell))
    return str(cell)


def open_customer_list(
    file: BinaryIO, *, name: str, size: int, load_sheets: bool = True
) -> CustomerTable | None:
    """Return the rows of an uploaded customer list (CSV, or the first sheet of a workbook).

    Raises ImportFileError for a file that is not a table, has no customer id column or no
    rows, as open_table does for codes. With `load_sheets` False a workbook is checked as a
    container only (type, zip bomb) and None is returned: what the upload request does for a
    workbook too large to parse in a moment (inspection.sheets_loadable).
    """
    check_size(name=name, size=size)
    if size == 0:
        raise ImportFileError(EMPTY_FILE.format(name=name))
    head = file.read(SAMPLE_SIZE)
    file.seek(0)
    file_format = detect_format(head, name=name, file=file, size=size)
    if file_format == "csv":
        header, rows, progress = _customer_csv_rows(file, name=name)
        total = size
    elif not load_sheets:
        return None
    else:
        header, rows, progress, total = _first_sheet_rows(file, name=name, file_format=file_format)
    header = [title_text(cell) for cell in header]
    index = _customer_column(header)
    if index is None:
        raise ImportFileError(NO_CUSTOMER_COLUMN.format(name=name, found=columns_found(header)))
    width = len(header)

    def cells():
        for row_number, row in rows:
            if row is BLANK_ROW:
                continue
            if isinstance(row, UnreadableRow):
                yield row_number, row
                continue
            row = [_text_cell(cell) for cell in row]
            yield row_number, (row + [""] * (width - len(row))) if len(row) < width else row

    table = CustomerTable(header, index, cells(), progress, total)
    first = next(table.rows, None)
    if first is None:
        raise ImportFileError(NO_CUSTOMERS.format(name=name))
    rest = table.rows

    def chained():
        yield first
        yield from rest

    table.rows = chained()
    return table


def _first_sheet_rows(file: BinaryIO, *, name: str, file_format: str):
    import python_calamine
    from python_calamine import CalamineWorkbook, PasswordError

    try:
        workbook = CalamineWorkbook.from_filelike(file)
        sheet = workbook.get_sheet_by_index(0)
        sheet_rows = sheet.iter_rows()
        header, header_number = [], 0
        for header_number, row in enumerate(sheet_rows, start=1):  # noqa: B007
            if not is_blank(row) or header_number >= HEADER_SEARCH_ROWS:
                header = row
                break
    except PasswordError as error:
        raise ImportFileError(ENCRYPTED.format(name=name)) from error
    except (python_calamine.CalamineError, ValueError, OSError, UnicodeError) as error:
        raise ImportFileError(DAMAGED.format(name=name, format=FORMATS[file_format])) from error
    done = [0]

    def rows():
        for row_number, row in enumerate(sheet_rows, start=header_number + 1):
            done[0] = row_number
            if not is_blank(row):
                yield row_number, list(row)

    return header, rows(), lambda: done[0], max(sheet.height, 1)
