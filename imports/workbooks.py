"""Read a workbook (XLSX, XLSM, XLSB, XLS, ODS) into rows of template cells, with
python-calamine: the sheet with the codes, its header, and what calamine does not tell of an
XLSX (xlsx_cells: formulas never computed, error values, leading zeros)."""

from dataclasses import replace
from itertools import chain, islice
from typing import BinaryIO

from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .headers import FIELDS, HEADER_SEARCH_ROWS, ColumnMapping, is_blank
from .readers import (
    DAMAGED,
    ENCRYPTED,
    FORMATS,
    HEADER_AGAIN,
    NO_CODE_COLUMN,
    NO_CODE_COLUMN_ON_ANY_SHEET,
    NO_COLUMNS,
    ColumnsUnclear,
    ImportFileError,
    Table,
    blank_file_message,
    columns_found,
    count_text,
    field_titles,
    first_titles,
    headerless_layout,
    pick_cells,
    sheet_layout,
    short,
    single_column,
)
from .rows import BLANK_ROW, UnreadableRow

SHEET_READ = _("Codes read from the sheet “{sheet}”.")
# One sheet of NO_CODE_COLUMN_ON_ANY_SHEET's list.
SHEET_COLUMNS = _("“{sheet}” (columns: {columns})")
UNCOMPUTED_FORMULA = _(
    "The {column} cell holds a formula whose value was never computed: open the file in Excel "
    "or LibreOffice, save it and upload it again."
)


def numeric_codes(column: str, count: int) -> str:
    """Say that the column of codes holds numbers in `count` rows."""
    return ngettext(
        "The {column} column holds numbers (in {count} row): Excel may have dropped leading "
        "zeros (00042 becomes 42). If your codes have them, format the column as Text and "
        "upload again.",
        "The {column} column holds numbers (in {count} rows): Excel may have dropped leading "
        "zeros (00042 becomes 42). If your codes have them, format the column as Text and "
        "upload again.",
        count,
    ).format(column=column, count=count_text(count))


def workbook_table(
    file: BinaryIO,
    *,
    name: str,
    size: int,
    file_format: str,
    load: bool,
    mapping: ColumnMapping | None = None,
) -> Table | None:
    import python_calamine
    from python_calamine import CalamineWorkbook, PasswordError, SheetTypeEnum, SheetVisibleEnum

    unreadable = (python_calamine.CalamineError, ValueError, OSError, UnicodeError)

    if not load:
        return None
    try:
        # calamine reads about ten times faster than openpyxl; it holds a sheet's cells in
        # memory, which the unpacked-size limit above keeps bounded.
        workbook = CalamineWorkbook.from_filelike(file)
        # Visible sheets first: a hidden one ("Old") is what its author meant no one to read.
        sheets = [meta for meta in workbook.sheets_metadata if meta.typ == SheetTypeEnum.WorkSheet]
        sheet_names = [
            meta.name
            for meta in sorted(sheets, key=lambda meta: meta.visible != SheetVisibleEnum.Visible)
        ]
        found = _sheet_with_codes(workbook, sheet_names, name=name, mapping=mapping)
    except PasswordError as error:
        raise ImportFileError(ENCRYPTED.format(name=name)) from error
    except unreadable as error:
        raise ImportFileError(DAMAGED.format(name=name, format=FORMATS[file_format])) from error
    sheet_name, sheet, head, sheet_rows, layout = found
    notes = [SHEET_READ.format(sheet=short(sheet_name))] if len(sheet_names) > 1 else []
    notes += layout.notes
    indexes = layout.columns
    titles = field_titles(layout.mapping)
    cell_info = (
        _xlsx_cell_info(file, sheet_name, indexes) if file_format in ("xlsx", "xlsm") else {}
    )
    start = 0 if layout.position is None else layout.position + 1
    header = None if layout.position is None else pick_cells(head[layout.position][1], indexes)
    done = [0]
    numeric = [0]

    def rows():
        # Blank rows count once a row follows them: a sheet's formatted but empty rows at its
        # end are no rows of the file.
        blank_from = None
        last = 0
        for row_number, row in chain(head[start:], enumerate(sheet_rows, start=len(head) + 1)):
            done[0] = last = row_number
            info = cell_info.get(row_number)
            if info:
                cells = _apply_cell_info(list(pick_cells(row, indexes)), info, titles)
            elif is_blank(row):
                blank_from = blank_from or row_number
                continue
            else:
                cells = pick_cells(row, indexes)
            if blank_from:
                yield from ((n, BLANK_ROW) for n in range(blank_from, row_number))
                blank_from = None
            if cells == header:
                yield row_number, HEADER_AGAIN
                continue
            if (
                isinstance(cells, tuple)
                and isinstance(cells[0], int | float)
                and not isinstance(cells[0], bool)
            ):
                numeric[0] += 1
            yield row_number, cells
        # calamine ends a sheet at its last value: a formula never computed below it is read
        # from the sheet's XML alone, the blank rows above it counted.
        for row_number in sorted(n for n in cell_info if n > last):
            yield from ((n, BLANK_ROW) for n in range(blank_from or last + 1, row_number))
            blank_from = None
            yield row_number, _apply_cell_info([None] * len(FIELDS), cell_info[row_number], titles)
            last = row_number
        if numeric[0]:
            notes.append(numeric_codes(titles[0], numeric[0]))

    return Table(
        rows(),
        lambda: done[0],
        max(sheet.height, 1),
        layout.titles,
        layout.ignored,
        notes=notes,
        mapping=replace(layout.mapping, sheet=sheet_name),
    )


def _sheet_with_codes(workbook, sheet_names: list[str], *, name: str, mapping):
    """Return the sheet to read (the first with a header naming the code column, or the one
    the manager chose), its first rows, the iterator of the rest, and its layout."""
    looked_at = []  # (sheet name, its first rows)
    for sheet_name in sheet_names:
        if mapping is not None and mapping.sheet and sheet_name != mapping.sheet:
            continue
        sheet = workbook.get_sheet_by_name(sheet_name)
        sheet_rows = sheet.iter_rows()
        head = [(n, list(row)) for n, row in enumerate(islice(sheet_rows, HEADER_SEARCH_ROWS), 1)]
        layout = sheet_layout(head, name=name, mapping=mapping)
        if layout is not None:
            return sheet_name, sheet, head, sheet_rows, layout
        looked_at.append((sheet_name, sheet, head, sheet_rows))
    if not looked_at:
        raise ImportFileError(NO_CODE_COLUMN_ON_ANY_SHEET.format(name=name, sheets=str(NO_COLUMNS)))
    filled = [looked for looked in looked_at if not all(is_blank(r) for _, r in looked[2])]
    if not filled:
        raise ImportFileError(blank_file_message(name, max(len(looked[2]) for looked in looked_at)))
    if len(filled) == 1 and single_column(filled[0][2]):
        # A single column of codes on the only sheet with anything on it needs no header.
        return (*filled[0], headerless_layout())
    sheet_name, sheet, head, sheet_rows = looked_at[0]
    if len(looked_at) == 1:
        message = NO_CODE_COLUMN.format(name=name, found=columns_found(first_titles(head)))
    else:
        sheets = "; ".join(
            SHEET_COLUMNS.format(sheet=short(sheet), columns=columns_found(first_titles(rows)))
            for sheet, _, rows, _ in looked_at
        )
        message = NO_CODE_COLUMN_ON_ANY_SHEET.format(name=name, sheets=sheets)
    raise ColumnsUnclear(message, head=head, sheet=sheet_name)


def _apply_cell_info(cells: list, info: dict, titles: tuple):
    """Fill in what calamine does not say: a formula without a value makes the row unreadable;
    an error value (#N/A, read as empty) is put back for validation to reject; a number shown
    with leading zeros (format 00000) keeps them."""
    for index, (kind, detail) in info.items():
        if kind == "formula":
            column = titles[index]
            reason = UNCOMPUTED_FORMULA.format(column=column)
            return UnreadableRow(reason, column, "", tuple(cells))
        value = cells[index]
        if kind == "error":
            cells[index] = detail
        elif kind == "zeros" and isinstance(value, int | float) and float(value).is_integer():
            cells[index] = str(int(value)).zfill(detail)
    return tuple(cells)


def _xlsx_cell_info(file: BinaryIO, sheet_name: str, indexes: list[int | None]) -> dict:
    """Return {row number: {field index: (kind, detail)}} for the cells of the mapped columns
    that calamine cannot tell right: formulas never computed (calamine reads them as empty) and
    whole numbers shown with leading zeros by their number format.

    A second pass over the sheet's XML, made only when the sheet holds formulas or the workbook
    has a leading-zeros format; most files have neither and cost one scan for "<f".
    """
    from . import xlsx_cells

    try:
        return xlsx_cells.cell_info(file, sheet_name, indexes)
    except Exception:  # a best effort: calamine has read the file already
        return {}
    finally:
        file.seek(0)
