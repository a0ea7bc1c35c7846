"""Read an uploaded CSV file or spreadsheet, or a pasted list, into numbered rows of template cells.

A reader streams: it never holds the whole file. Problems with the file as a whole raise
ImportFileError before the first row is yielded; problems with one row are left to validation.

Long because every format (CSV, the spreadsheets, a pasted list, and the customer lists of
assignments) goes through one pipeline: the size and format checks, the header search and
mapping, and the refusal messages are shared, and tools/mutation.py tries the module as one
against tests/imports/test_readers.py.
"""

import codecs
import csv
import io
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from typing import BinaryIO

from django.conf import settings
from django.template.defaultfilters import filesizeformat

from .cells import shown

TEMPLATE_COLUMNS = ("Code", "Issue-start", "Issue-end", "Available-from", "Available-till")
FIELDS = ("code", "issue_start", "issue_end", "available_from", "available_till")
_FIELD_BY_HEADER = {
    re.sub(r"[\s_-]+", "", column).lower(): name
    for column, name in zip(TEMPLATE_COLUMNS, FIELDS, strict=True)
}

# The formats a manager can upload, named as the message of a refusal names them.
FORMATS = {
    "csv": "a CSV file",
    "xlsx": "an Excel workbook (.xlsx)",
    "xlsm": "an Excel macro-enabled workbook (.xlsm)",
    "xlsb": "an Excel binary workbook (.xlsb)",
    "xls": "an Excel 97-2003 workbook (.xls)",
    "ods": "an OpenDocument spreadsheet (.ods)",
}
SPREADSHEET_EXTENSIONS = ("xlsx", "xlsm", "xlsb", "xls", "ods")
ACCEPTED_EXTENSIONS = (".csv", ".txt", *(f".{e}" for e in SPREADSHEET_EXTENSIONS))
FIX_THE_FILE = "Fix the file and upload it again."

NOT_A_TABLE = (
    "“{name}” is not a CSV file or a spreadsheet{what}. Upload it as .csv, .xlsx, .xlsm, .xlsb, "
    ".xls or .ods."
)
DAMAGED = "“{name}” cannot be read as {format}: it is damaged, or not really {format}."
ENCRYPTED = "“{name}” is protected with a password. Save it without one and upload again."
EMPTY_FILE = "“{name}” is empty."
NO_ROWS = "“{name}” has a header but no rows of codes under it."
NO_CODE_COLUMN = "“{name}” has no Code column. Columns found: {found}."
NO_CODE_COLUMN_ON_ANY_SHEET = (
    "“{name}” has no Code column on any sheet. Sheets looked at: {sheets}."
)
REPEATED_COLUMN = "“{name}” has the column {column} more than once."
FILE_TOO_LARGE = "“{name}” is {size}; files up to {limit} can be imported."
ZIP_BOMB = (
    "“{name}” would unpack to {unpacked}, {ratio:,} times its size: refused as a possible zip "
    "bomb. Save the sheet as CSV instead."
)
UNREADABLE_ROW = "This row cannot be read: {error}."
SHEET_READ = "Codes read from the sheet “{sheet}”."
NUMERIC_CODES = (
    "The Code column holds numbers (in {rows}): Excel may have dropped leading zeros "
    "(00042 becomes 42). If your codes have them, format the column as Text and upload again."
)
UNCOMPUTED_FORMULA = (
    "The {column} cell holds a formula whose value was never computed: open the file in Excel "
    "or LibreOffice, save it and upload it again."
)

# What a file that is not a table usually is, by its first bytes, to say so in the refusal.
_MAGIC = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"{\\rtf", "an RTF document"),
)

# Longer than any code: a longer cell is a broken file, reported as an unreadable row.
_CSV_FIELD_LIMIT = 1024 * 1024
_SAMPLE_SIZE = 64 * 1024
_DELIMITERS = (",", ";", "\t")
# The header is the first row that is not blank, among the first few.
_HEADER_SEARCH_ROWS = 20


class ImportFileError(Exception):
    """A problem with the file as a whole: nothing of it is imported, and running the import
    again cannot help (the file must be fixed)."""


@dataclass
class Table:
    """The rows of one file: (row number as a spreadsheet shows it, cells in FIELDS order)."""

    rows: Iterator[tuple[int, tuple]]
    progress: Callable[[], int]
    total: int
    columns: list[str] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    file_format: str = "csv"
    # Said in the report once the rows are read (the sheet read, numeric codes).
    notes: list[str] = field(default_factory=list)


def check_size(*, name: str, size: int) -> None:
    limit = settings.IMPORT_MAX_FILE_SIZE
    if size > limit:
        raise ImportFileError(
            FILE_TOO_LARGE.format(name=name, size=filesizeformat(size), limit=filesizeformat(limit))
        )


def detect_format(head: bytes, *, name: str, file: BinaryIO | None = None, size: int = 0) -> str:
    """Return the file's format (a key of FORMATS) judged by its content, not its name.

    Raise ImportFileError when it is none of them. A zip is told apart by its members: a
    workbook part for XLSX/XLSM/XLSB, the `mimetype` member for ODS.
    """
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if head.startswith(b"PK\x03\x04"):
        return _zip_format(file, name=name, size=size, extension=extension)
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        return "xls"  # an OLE container; calamine tells a damaged one (or a .doc) later
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise ImportFileError(NOT_A_TABLE.format(name=name, what=f" (it is {what})"))
    if extension in SPREADSHEET_EXTENSIONS:
        raise ImportFileError(DAMAGED.format(name=name, format=FORMATS[extension]))
    if not _looks_like_text(head):
        raise ImportFileError(NOT_A_TABLE.format(name=name, what=""))
    return "csv"


def _zip_format(file, *, name: str, size: int, extension: str) -> str:
    expected = extension if extension in SPREADSHEET_EXTENSIONS else "xlsx"
    if file is None:
        return expected
    _check_zip_bomb(file, name=name, size=size, file_format=expected)
    try:
        with zipfile.ZipFile(file) as archive:
            members = set(archive.namelist())
            mimetype = archive.read("mimetype")[:100] if "mimetype" in members else b""
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise ImportFileError(DAMAGED.format(name=name, format=FORMATS[expected])) from error
    finally:
        file.seek(0)
    if b"opendocument.spreadsheet" in mimetype:
        return "ods"
    if "xl/workbook.bin" in members:
        return "xlsb"
    if "xl/workbook.xml" in members:
        return "xlsm" if extension == "xlsm" else "xlsx"
    if extension in SPREADSHEET_EXTENSIONS:
        raise ImportFileError(DAMAGED.format(name=name, format=FORMATS[expected]))
    what = (
        " (it is a word-processing document)"
        if "word/document.xml" in members or (b"opendocument.text" in mimetype)
        else " (it is a ZIP archive)"
    )
    raise ImportFileError(NOT_A_TABLE.format(name=name, what=what))


def _looks_like_text(sample: bytes) -> bool:
    """Return True if the sample reads as text: a few stray NUL or control bytes (a bad row)
    do not make a CSV binary, a fifth of them does."""
    if not sample:
        return True
    if sample.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return True
    if sample[1::2].count(0) > len(sample) // 4 or sample[0::2].count(0) > len(sample) // 4:
        return True  # UTF-16 without a BOM
    controls = sum(1 for byte in sample if byte < 32 and byte not in (9, 10, 13))
    return controls * 5 < len(sample)


def open_table(
    file: BinaryIO, *, name: str, size: int, pasted: bool = False, load_sheets: bool = True
) -> Table:
    """Return the rows of an uploaded file (or of a pasted list when `pasted`).

    With `load_sheets` False a spreadsheet is only checked as a container (type, zip bomb),
    not parsed: what the upload request does for workbooks too large to parse in a moment.
    """
    check_size(name=name, size=size)
    if size == 0:
        raise ImportFileError(EMPTY_FILE.format(name=name))
    if pasted:
        return _with_first_row(_text_table(file, size), name=name)
    head = file.read(_SAMPLE_SIZE)
    file.seek(0)
    file_format = detect_format(head, name=name, file=file, size=size)
    if file_format == "csv":
        table = _csv_table(file, name=name, size=size)
    else:
        table = _workbook_table(
            file, name=name, size=size, file_format=file_format, load=load_sheets
        )
        if table is None:
            return Table(iter(()), lambda: 0, size, file_format=file_format)
    table.file_format = file_format
    return _with_first_row(table, name=name)


def _with_first_row(table: Table, *, name: str) -> Table:
    """Fail now, not after the first batch, when there is no row at all."""
    rows = iter(table.rows)
    first = next(rows, None)
    if first is None:
        raise ImportFileError(NO_ROWS.format(name=name))

    def chained():
        yield first
        yield from rows

    table.rows = chained()
    return table


def _header_titles(header: list) -> list[str]:
    return [str(cell if cell is not None else "").strip().lstrip("\ufeff") for cell in header]


def _map_header(header: list, *, name: str) -> tuple[list[int | None], list[str], list[str]]:
    """Return, for each of FIELDS, the index of its column (None if absent)."""
    found = _header_titles(header)
    positions: dict[str, int] = {}
    ignored = []
    for index, title in enumerate(found):
        key = _FIELD_BY_HEADER.get(re.sub(r"[\s_-]+", "", title).lower())
        if key is None:
            if title:
                ignored.append(_short(title))
        elif key in positions:
            raise ImportFileError(REPEATED_COLUMN.format(name=name, column=_short(title)))
        else:
            positions[key] = index
    if "code" not in positions:
        raise ImportFileError(NO_CODE_COLUMN.format(name=name, found=_columns_found(found)))
    return [positions.get(f) for f in FIELDS], [_short(t) for t in found if t], ignored


def _columns_found(titles: list[str]) -> str:
    shown = [f"“{_short(t)}”" for t in titles if t]
    if len(shown) > 20:
        shown = [*shown[:20], f"and {len(shown) - 20} more"]
    return ", ".join(shown) or "none"


def _short(text: str, limit: int = 60) -> str:
    """A header cell as a message can quote it: visible, and not too long."""
    return shown(text, limit=limit)


def _pick(row: list, indexes: list[int | None]) -> tuple:
    width = len(row)
    return tuple(row[i] if i is not None and i < width else None for i in indexes)


def _picker(indexes: list[int | None]) -> Callable[[list], tuple]:
    """Return _pick for these indexes, made for a million rows a file: one itemgetter over the
    row padded with Nones (an absent column reads the last None), a third of _pick's time."""
    # itemgetter of one index would return the cell, not a tuple; FIELDS are five.
    assert len(indexes) > 1
    padding = [None] * (max((i for i in indexes if i is not None), default=0) + 2)
    getter = itemgetter(*(-1 if i is None else i for i in indexes))
    return lambda row: getter([*row, *padding])


def _is_blank(row: list) -> bool:
    return all(cell is None or (isinstance(cell, str) and not cell.strip()) for cell in row)


# CSV


def _detect_encoding(sample: bytes) -> str:
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if sample[1::2].count(0) > len(sample) // 4:
        return "utf-16-le"
    if sample[0::2].count(0) > len(sample) // 4:
        return "utf-16-be"
    try:
        # The sample may end inside a character: an incremental decoder does not mind.
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        # Excel on Windows saves "CSV" in the system code page; Cyrillic Windows is cp1251.
        return "cp1251"


class _CountingReader(io.RawIOBase):
    """Pass reads through, counting the bytes, so progress can be told without seeking."""

    def __init__(self, file):
        self.file = file
        self.count = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        data = self.file.read(len(buffer))
        buffer[: len(data)] = data
        self.count += len(data)
        return len(data)


def _csv_table(file: BinaryIO, *, name: str, size: int) -> Table:
    header, rows, progress = _csv_rows(file, size=size)
    indexes, columns, ignored = _map_header(header, name=name)

    pick = _picker(indexes)

    def picked():
        for row_number, row in rows:
            yield row_number, row if isinstance(row, UnreadableRow) else pick(row)

    return Table(picked(), progress, size, columns, ignored)


def _csv_rows(file: BinaryIO, *, size: int):
    """Return a CSV file's header (its first non-blank line among the first few), its other
    non-blank rows as (row number, cells or UnreadableRow), and a progress counter in bytes."""
    sample = file.read(_SAMPLE_SIZE)
    file.seek(0)
    encoding = _detect_encoding(sample)
    counter = _CountingReader(file)
    # Undecodable bytes become U+FFFD, which validation rejects for that row only.
    text = io.TextIOWrapper(
        io.BufferedReader(counter), encoding=encoding, errors="replace", newline=""
    )
    # A NUL byte is a bad character of one row, not the end of the file: the csv module passes
    # it through, and validation rejects that row.
    lines = iter(text)
    first_line, header_number = "", 0
    for header_number, first_line in enumerate(lines, start=1):  # noqa: B007
        if first_line.strip() or header_number >= _HEADER_SEARCH_ROWS:
            break
    delimiter = max(_DELIMITERS, key=first_line.count) if first_line.strip() else ","
    csv.field_size_limit(_CSV_FIELD_LIMIT)
    try:
        header = next(csv.reader([first_line], delimiter=delimiter), [])
    except csv.Error:
        header = first_line.split(delimiter)
    reader = csv.reader(lines, delimiter=delimiter)

    def rows():
        row_number = header_number
        while True:
            row_number += 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                yield row_number, UnreadableRow(UNREADABLE_ROW.format(error=error))
                continue
            if "".join(row).strip():  # not blank (_is_blank, for cells that are all text)
                yield row_number, row

    return header, rows(), lambda: counter.count


@dataclass(frozen=True)
class UnreadableRow:
    """Stands in for a row's cells when the row could not be parsed at all (a quote that is
    never closed, a cell an Excel formula left empty); `column` and `value` say where, when
    known."""

    reason: str
    column: str = ""
    value: str = ""


class BlankRow:
    """Stands in for the cells of a blank row: read, and counted as skipped."""

    def __repr__(self):
        return "BLANK_ROW"


BLANK_ROW = BlankRow()


# Spreadsheets: XLSX, XLSM, XLSB, XLS, ODS


def _workbook_table(
    file: BinaryIO, *, name: str, size: int, file_format: str, load: bool
) -> Table | None:
    import python_calamine
    from python_calamine import CalamineWorkbook, PasswordError, SheetTypeEnum

    unreadable = (python_calamine.CalamineError, ValueError, OSError, UnicodeError)

    if not load:
        return None
    try:
        # calamine reads about ten times faster than openpyxl; it holds a sheet's cells in
        # memory, which the unpacked-size limit above keeps bounded.
        workbook = CalamineWorkbook.from_filelike(file)
        sheet_names = [
            meta.name for meta in workbook.sheets_metadata if meta.typ == SheetTypeEnum.WorkSheet
        ]
        # The first sheet with a Code column: codes are often on a sheet after a "Notes" one.
        looked_at = []  # (sheet name, its header's titles)
        for sheet_name in sheet_names:
            sheet = workbook.get_sheet_by_name(sheet_name)
            sheet_rows = sheet.iter_rows()
            header, header_number = [], 0
            for header_number, row in enumerate(sheet_rows, start=1):  # noqa: B007
                if not _is_blank(row) or header_number >= _HEADER_SEARCH_ROWS:
                    header = row
                    break
            if "code" in _header_fields(header):
                indexes, columns, ignored = _map_header(header, name=name)
                break
            looked_at.append((sheet_name, _header_titles(header)))
        else:
            if len(looked_at) == 1:
                found = _columns_found(looked_at[0][1])
                raise ImportFileError(NO_CODE_COLUMN.format(name=name, found=found))
            sheets = "; ".join(
                f"“{_short(sheet)}” (columns: {_columns_found(titles)})"
                for sheet, titles in looked_at
            )
            raise ImportFileError(
                NO_CODE_COLUMN_ON_ANY_SHEET.format(name=name, sheets=sheets or "none")
            )
    except PasswordError as error:
        raise ImportFileError(ENCRYPTED.format(name=name)) from error
    except unreadable as error:
        raise ImportFileError(DAMAGED.format(name=name, format=FORMATS[file_format])) from error
    notes = [SHEET_READ.format(sheet=sheet_name)] if len(sheet_names) > 1 else []
    cell_info = (
        _xlsx_cell_info(file, sheet_name, indexes) if file_format in ("xlsx", "xlsm") else {}
    )
    done = [0]
    numeric = [0]

    def rows():
        for row_number, row in enumerate(sheet_rows, start=header_number + 1):
            done[0] = row_number
            info = cell_info.get(row_number)
            if info:
                cells = _apply_cell_info(list(_pick(row, indexes)), info)
            elif _is_blank(row):
                continue
            else:
                cells = _pick(row, indexes)
            if (
                isinstance(cells, tuple)
                and isinstance(cells[0], int | float)
                and not isinstance(cells[0], bool)
            ):
                numeric[0] += 1
            yield row_number, cells
        if numeric[0]:
            count = numeric[0]
            rows_text = f"{count:,} row" + ("" if count == 1 else "s")
            notes.append(NUMERIC_CODES.format(rows=rows_text))

    return Table(rows(), lambda: done[0], max(sheet.height, 1), columns, ignored, notes=notes)


def _header_fields(header: list) -> set[str]:
    return {
        _FIELD_BY_HEADER.get(re.sub(r"[\s_-]+", "", title).lower())
        for title in _header_titles(header)
    } - {None}


def _check_zip_bomb(file: BinaryIO, *, name: str, size: int, file_format: str) -> None:
    file.seek(0)
    try:
        with zipfile.ZipFile(file) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise ImportFileError(DAMAGED.format(name=name, format=FORMATS[file_format])) from error
    finally:
        file.seek(0)
    ratio = unpacked // max(size, 1)
    if unpacked > settings.IMPORT_MAX_XLSX_UNPACKED or (
        ratio > settings.IMPORT_MAX_XLSX_RATIO and unpacked > 50 * 1024 * 1024
    ):
        raise ImportFileError(
            ZIP_BOMB.format(name=name, unpacked=filesizeformat(unpacked), ratio=ratio)
        )


def _apply_cell_info(cells: list, info: dict):
    """Fill in what calamine does not say: a formula without a value makes the row unreadable;
    a number shown with leading zeros (format 00000) keeps them."""
    for index, (kind, detail) in info.items():
        if kind == "formula":
            return UnreadableRow(UNCOMPUTED_FORMULA.format(column=TEMPLATE_COLUMNS[index]))
        value = cells[index]
        if kind == "zeros" and isinstance(value, int | float) and float(value).is_integer():
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


# Pasted list


_TEXT_SEPARATORS = re.compile(r"[,;\t]")


def _text_table(file: BinaryIO, size: int) -> Table:
    """One code per line; commas, semicolons and tabs also separate codes; blank lines skipped."""
    counter = _CountingReader(file)
    text = io.TextIOWrapper(io.BufferedReader(counter), encoding="utf-8", errors="replace")

    def rows():
        for line_number, line in enumerate(text, start=1):
            for token in _TEXT_SEPARATORS.split(line):
                token = token.strip()
                if token and not (line_number == 1 and token.lower() == "code"):
                    yield line_number, (token, None, None, None, None)

    return Table(rows(), lambda: counter.count, size, ["Code"], [])


# Customer lists (assignments): any columns, one of them the customer id; the others
# are kept as they are and handed back with a Code column added.

NO_CUSTOMER_COLUMN = (
    "“{name}” has no customer id column (named Customer, Customer id or Id). Columns found: "
    "{found}."
)
NO_CUSTOMERS = "“{name}” has a header but no rows of customers under it."


@dataclass
class CustomerTable:
    """The rows of a customer list: (row number, all cells as text) and where the id is."""

    header: list[str]
    customer_index: int
    rows: Iterator[tuple[int, list | UnreadableRow]]
    progress: Callable[[], int]
    total: int


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


def open_customer_list(file: BinaryIO, *, name: str, size: int) -> CustomerTable:
    """Return the rows of an uploaded customer list (CSV, or the first sheet of a workbook).

    Raises ImportFileError for a file that is not a table, has no customer id column or no
    rows, as open_table does for codes.
    """
    check_size(name=name, size=size)
    if size == 0:
        raise ImportFileError(EMPTY_FILE.format(name=name))
    head = file.read(_SAMPLE_SIZE)
    file.seek(0)
    file_format = detect_format(head, name=name, file=file, size=size)
    if file_format == "csv":
        header, rows, progress = _csv_rows(file, size=size)
        total = size
    else:
        header, rows, progress, total = _first_sheet_rows(file, name=name, file_format=file_format)
    header = _header_titles(header)
    index = _customer_column(header)
    if index is None:
        raise ImportFileError(NO_CUSTOMER_COLUMN.format(name=name, found=_columns_found(header)))
    width = len(header)

    def cells():
        for row_number, row in rows:
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
            if not _is_blank(row) or header_number >= _HEADER_SEARCH_ROWS:
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
            if not _is_blank(row):
                yield row_number, list(row)

    return header, rows(), lambda: done[0], max(sheet.height, 1)
