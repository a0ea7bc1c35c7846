"""Read an uploaded CSV or XLSX file, or a pasted list, into numbered rows of template cells.

A reader streams: it never holds the whole file. Problems with the file as a whole raise
ImportFileError before the first row is yielded; problems with one row are left to validation.
"""

import codecs
import csv
import io
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from django.conf import settings
from django.template.defaultfilters import filesizeformat

TEMPLATE_COLUMNS = ("Code", "Issue-start", "Issue-end", "Available-from", "Available-till")
FIELDS = ("code", "issue_start", "issue_end", "available_from", "available_till")
_FIELD_BY_HEADER = {
    re.sub(r"[\s_-]+", "", column).lower(): name
    for column, name in zip(TEMPLATE_COLUMNS, FIELDS, strict=True)
}

NOT_CSV_OR_XLSX = "“{name}” is not a CSV or XLSX file. Upload the template as .csv or .xlsx."
OLD_EXCEL = "“{name}” is an old Excel (.xls) file. Save it as .xlsx or .csv and upload again."
CORRUPT_XLSX = "“{name}” cannot be read as an XLSX file: it is damaged or not really XLSX."
EMPTY_FILE = "“{name}” is empty."
NO_ROWS = "“{name}” has a header but no rows of codes under it."
NO_CODE_COLUMN = "“{name}” has no Code column. Columns found: {found}."
REPEATED_COLUMN = "“{name}” has the column {column} more than once."
FILE_TOO_LARGE = "“{name}” is {size}; files up to {limit} can be imported."
ZIP_BOMB = (
    "“{name}” would unpack to {unpacked}, {ratio:,} times its size: refused as a possible zip "
    "bomb. Save the sheet as CSV instead."
)
UNREADABLE_ROW = "This row cannot be read: {error}."

# Longer than any code: a longer cell is a broken file, reported as an unreadable row.
_CSV_FIELD_LIMIT = 1024 * 1024
_SAMPLE_SIZE = 64 * 1024
_DELIMITERS = (",", ";", "\t")


class ImportFileError(Exception):
    """A problem with the file as a whole: nothing of it is imported."""


@dataclass
class Table:
    """The rows of one file: (row number as a spreadsheet shows it, cells in FIELDS order)."""

    rows: Iterator[tuple[int, tuple]]
    progress: Callable[[], int]
    total: int
    columns: list[str] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)


def check_size(*, name: str, size: int) -> None:
    limit = settings.IMPORT_MAX_FILE_SIZE
    if size > limit:
        raise ImportFileError(
            FILE_TOO_LARGE.format(name=name, size=filesizeformat(size), limit=filesizeformat(limit))
        )


def open_table(file: BinaryIO, *, name: str, size: int, pasted: bool = False) -> Table:
    """Return the rows of an uploaded file (or of a pasted list when `pasted`)."""
    check_size(name=name, size=size)
    if size == 0:
        raise ImportFileError(EMPTY_FILE.format(name=name))
    head = file.read(8)
    file.seek(0)
    if pasted:
        table = _text_table(file, size)
    elif head.startswith(b"PK\x03\x04"):
        table = _xlsx_table(file, name=name, size=size)
    elif head.startswith(b"\xd0\xcf\x11\xe0"):
        raise ImportFileError(OLD_EXCEL.format(name=name))
    elif name.lower().endswith(".xlsx"):
        raise ImportFileError(CORRUPT_XLSX.format(name=name))
    elif not name.lower().endswith((".csv", ".txt")):
        raise ImportFileError(NOT_CSV_OR_XLSX.format(name=name))
    else:
        table = _csv_table(file, name=name, size=size)
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


def _map_header(header: list, *, name: str) -> tuple[list[int | None], list[str], list[str]]:
    """Return, for each of FIELDS, the index of its column (None if absent)."""
    found = [str(cell if cell is not None else "").strip().lstrip("\ufeff") for cell in header]
    positions: dict[str, int] = {}
    ignored = []
    for index, title in enumerate(found):
        key = _FIELD_BY_HEADER.get(re.sub(r"[\s_-]+", "", title).lower())
        if key is None:
            if title:
                ignored.append(title)
        elif key in positions:
            raise ImportFileError(REPEATED_COLUMN.format(name=name, column=title))
        else:
            positions[key] = index
    if "code" not in positions:
        shown = ", ".join(f"“{t}”" for t in found if t) or "none"
        raise ImportFileError(NO_CODE_COLUMN.format(name=name, found=shown))
    return [positions.get(f) for f in FIELDS], [t for t in found if t], ignored


def _pick(row: list, indexes: list[int | None]) -> tuple:
    width = len(row)
    return tuple(row[i] if i is not None and i < width else None for i in indexes)


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
    sample = file.read(_SAMPLE_SIZE)
    file.seek(0)
    encoding = _detect_encoding(sample)
    if b"\x00" in sample and not encoding.startswith("utf-16"):
        raise ImportFileError(NOT_CSV_OR_XLSX.format(name=name))
    counter = _CountingReader(file)
    # Undecodable bytes become U+FFFD, which validation rejects for that row only.
    text = io.TextIOWrapper(
        io.BufferedReader(counter), encoding=encoding, errors="replace", newline=""
    )
    first_line = text.readline()
    delimiter = max(_DELIMITERS, key=first_line.count) if first_line.strip() else ","
    csv.field_size_limit(_CSV_FIELD_LIMIT)
    header = next(csv.reader([first_line], delimiter=delimiter), [])
    indexes, columns, ignored = _map_header(header, name=name)
    reader = csv.reader(text, delimiter=delimiter)

    def rows():
        row_number = 1
        while True:
            row_number += 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                yield row_number, UnreadableRow(UNREADABLE_ROW.format(error=error))
                continue
            if not _is_blank(row):
                yield row_number, _pick(row, indexes)

    return Table(rows(), lambda: counter.count, size, columns, ignored)


@dataclass(frozen=True)
class UnreadableRow:
    """Stands in for a row's cells when the row could not be parsed at all."""

    reason: str


# XLSX


def _xlsx_table(file: BinaryIO, *, name: str, size: int) -> Table:
    from python_calamine import CalamineError, CalamineWorkbook

    try:
        with zipfile.ZipFile(file) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError) as error:
        raise ImportFileError(CORRUPT_XLSX.format(name=name)) from error
    ratio = unpacked // max(size, 1)
    if unpacked > settings.IMPORT_MAX_XLSX_UNPACKED or (
        ratio > settings.IMPORT_MAX_XLSX_RATIO and unpacked > 50 * 1024 * 1024
    ):
        raise ImportFileError(
            ZIP_BOMB.format(name=name, unpacked=filesizeformat(unpacked), ratio=ratio)
        )
    file.seek(0)
    try:
        # calamine reads about ten times faster than openpyxl; it holds the sheet's cells in
        # memory, which the unpacked-size limit above keeps bounded.
        workbook = CalamineWorkbook.from_filelike(file)
        sheet = workbook.get_sheet_by_index(0)
        sheet_rows = sheet.iter_rows()
        header = next(sheet_rows, [])
    except CalamineError as error:
        raise ImportFileError(CORRUPT_XLSX.format(name=name)) from error
    indexes, columns, ignored = _map_header(header, name=name)
    done = [0]

    def rows():
        for row_number, row in enumerate(sheet_rows, start=2):
            done[0] = row_number
            if not _is_blank(row):
                yield row_number, _pick(row, indexes)

    return Table(rows(), lambda: done[0], max(sheet.height, 1), columns, ignored)


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
