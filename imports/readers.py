"""Read an uploaded CSV file or spreadsheet, or a pasted list, into numbered rows of template cells.

A reader streams: it never holds the whole file. Problems with the file as a whole raise
ImportFileError before the first row is yielded; problems with one row are left to validation.

Here: the size and format checks, the refusal messages, the header search and the columns
chosen (shared by every format), and the pasted list. A CSV is read in csv_table.py, a workbook
in workbooks.py, an assignment's customer list in customer_lists.py.

Long because the header search and the columns chosen are one pipeline for every format, with
the refusals they say, and tools/mutation.py tries them as one against
tests/imports/test_readers.py.
"""

import codecs
import io
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter
from typing import BinaryIO

from django.conf import settings
from django.template.defaultfilters import filesizeformat
from django.utils.formats import number_format
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext, ngettext_lazy, pgettext_lazy

from pools.uploads import FILE_TOO_LARGE, upload_too_large

from .cells import shown
from .headers import (
    FIELDS,
    FIRST_ROWS_SHOWN,
    HEADER_SEARCH_ROWS,
    TEMPLATE_COLUMN_NAMES,
    TEMPLATE_COLUMNS,
    ColumnMapping,
    HeaderMatch,
    is_blank,
    is_title_row,
    match_header,
    title_text,
)
from .rows import BLANK_ROW, BlankRow, SkippedRow, UnreadableRow

__all__ = [
    "BLANK_ROW",
    "FIELDS",
    "FILE_TOO_LARGE",
    "TEMPLATE_COLUMNS",
    "BlankRow",
    "UnreadableRow",
]

# The formats a manager can upload, named as the message of a refusal names them.
FORMATS = {
    "csv": _("a CSV file"),
    "xlsx": _("an Excel workbook (.xlsx)"),
    "xlsm": _("an Excel macro-enabled workbook (.xlsm)"),
    "xlsb": _("an Excel binary workbook (.xlsb)"),
    "xls": _("an Excel 97-2003 workbook (.xls)"),
    "ods": _("an OpenDocument spreadsheet (.ods)"),
}
SPREADSHEET_EXTENSIONS = ("xlsx", "xlsm", "xlsb", "xls", "ods")
ACCEPTED_EXTENSIONS = (".csv", ".txt", *(f".{e}" for e in SPREADSHEET_EXTENSIONS))
FIX_THE_FILE = _("Fix the file and upload it again.")

NOT_A_TABLE = _(
    "“{name}” is not a CSV file or a spreadsheet. Upload it as .csv, .xlsx, .xlsm, .xlsb, .xls "
    "or .ods."
)
# The same, when the first bytes say what the file is (_MAGIC).
NOT_A_TABLE_BUT = _(
    "“{name}” is not a CSV file or a spreadsheet (it is {what}). Upload it as .csv, .xlsx, "
    ".xlsm, .xlsb, .xls or .ods."
)
DAMAGED = _("“{name}” cannot be read as {format}: it is damaged, or not really {format}.")
ENCRYPTED = _("“{name}” is protected with a password. Save it without one and upload again.")
EMPTY_FILE = _("“{name}” is empty.")
BLANK_FILE = _("“{name}” holds nothing but blank rows.")
BLANK_HEAD = ngettext_lazy(
    "The first {rows} row of “{name}” is blank: the header must be within it. Delete the "
    "blank rows above it.",
    "The first {rows} rows of “{name}” are blank: the header must be within them. Delete the "
    "blank rows above it.",
    HEADER_SEARCH_ROWS,
)
NO_ROWS = _("“{name}” has a header but no rows of codes under it.")
NO_CODE_COLUMN = _(
    "“{name}” has no column of codes: no column is named Code (or Promo code, Coupon, Код, "
    "Промокод). Columns found: {found}."
)
NO_CODE_COLUMN_ON_ANY_SHEET = _(
    "“{name}” has no column of codes on any sheet. Sheets looked at: {sheets}."
)
REPEATED_COLUMN = _("“{name}” has more than one column for {field}: {columns}.")
CHOOSE_COLUMNS = _("Choose the columns on the upload page, or rename the one to read.")
NO_HEADER = _("The file has no header: every row was read as a code.")
CHOSEN_COLUMNS = _("Columns as chosen on the upload page: {columns}.")
REMEMBERED_COLUMNS = _("Columns as chosen for this pool's last upload: {columns}.")
# One column of CHOSEN_COLUMNS: "Code from column B (“Promo code”)".
COLUMN_FROM = _("{field} from {column}")
COLUMN_LETTER = _("column {letter}")
COLUMN_LETTER_TITLED = _("column {letter} (“{title}”)")
AND_MORE = _("and {count} more")
NO_COLUMNS = pgettext_lazy("columns found", "none")
# A file's own words (a column's title) quoted in a message.
QUOTED = _("“{text}”")
ZIP_BOMB = _(
    "“{name}” would unpack to {unpacked}, {ratio} times its size: refused as a possible zip "
    "bomb. Save the sheet as CSV instead."
)
UNREADABLE_ROW = _("This row cannot be read: {error}.")


def header_below(row: int, count: int) -> str:
    """Say that the header is on `row` (as the file numbers it: 1502, never 1,502) with
    `count` rows above it skipped."""
    return ngettext(
        "The header is on row {row}: the row above it was skipped.",
        "The header is on row {row}: the {count} rows above it were skipped.",
        count,
    ).format(row=row, count=count)


def quoted(text: str) -> str:
    return QUOTED.format(text=text)


def count_text(count: int) -> str:
    """A count as a message shows it, grouped as the reader's language groups digits."""
    return number_format(count, force_grouping=True)


# What a file that is not a table usually is, by its first bytes, to say so in the refusal.
_MAGIC = (
    (b"\x89PNG", _("a PNG image")),
    (b"\xff\xd8\xff", _("a JPEG image")),
    (b"GIF8", _("a GIF image")),
    (b"%PDF", _("a PDF document")),
    (b"\x1f\x8b", _("a gzip archive")),
    (b"7z\xbc\xaf", _("a 7-Zip archive")),
    (b"Rar!", _("a RAR archive")),
    (b"{\\rtf", _("an RTF document")),
)
A_DOCUMENT = _("a word-processing document")
A_ZIP = _("a ZIP archive")

SAMPLE_SIZE = 64 * 1024
# A row that repeats the header (files joined one after another): read, and skipped.
HEADER_AGAIN = SkippedRow(_("The header again, as a row: skipped."))


class ImportFileError(Exception):
    """A problem with the file as a whole: nothing of it is imported, and running the import
    again cannot help (the file must be fixed)."""


class EncodingUnclear(ImportFileError):
    """A CSV reads plausibly in more than one encoding and its codes differ between them: the
    manager chooses, seeing a few codes read each way (`readings`: [(codec, [codes])])."""

    def __init__(self, message: str, *, readings: list[tuple[str, list[str]]]):
        super().__init__(message)
        self.readings = readings


class ColumnsUnclear(ImportFileError):
    """No header names the column of codes, or more than one column does: the manager picks
    the columns on the upload page, from the file's first rows."""

    def __init__(self, message: str, *, head: list, skip: int = 0, delimiter="", sheet=""):
        super().__init__(f"{message} {CHOOSE_COLUMNS}")  # two sentences, each translated
        rows = [(number, cells) for number, cells in head[skip:] if not is_blank(cells)]
        rows = rows[:FIRST_ROWS_SHOWN]
        # The file's first rows that are not blank, as text, and their row numbers.
        self.first_rows = [[title_text(cell) for cell in cells] for _, cells in rows]
        self.numbers = [number for number, _ in rows]
        self.delimiter = delimiter
        self.sheet = sheet


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
    mapping: ColumnMapping | None = None
    encoding: str = ""
    # Other plausible readings of a CSV whose codes differ from this one's: [(codec, [codes])],
    # the chosen reading first. Empty when there is no doubt.
    readings: list = field(default_factory=list)


def field_titles(mapping: ColumnMapping | None) -> tuple[str, ...]:
    """The template's columns as a file read with `mapping` names them, for the reasons of its
    rejected rows: the header's titles where the file has a header, else the template's names
    in the reader's language ("Промокод" for a file headed so, "Code" or "Код" for a list
    without a header)."""
    titles = mapping.titles if mapping is not None and mapping.header_row else ()
    named = []
    for column in mapping.columns if mapping is not None else ():
        title = titles[column] if column is not None and column < len(titles) else ""
        named.append(short(title) if title_text(title) else "")
    named += [""] * (len(FIELDS) - len(named))
    return tuple(name or str(TEMPLATE_COLUMN_NAMES[i]) for i, name in enumerate(named))


def check_size(*, name: str, size: int) -> None:
    """Refuse a file over IMPORT_MAX_FILE_SIZE with the upload form's message."""
    refusal = upload_too_large(name=name, size=size, limit=settings.IMPORT_MAX_FILE_SIZE)
    if refusal:
        raise ImportFileError(refusal)


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
            raise ImportFileError(NOT_A_TABLE_BUT.format(name=name, what=what))
    if extension in SPREADSHEET_EXTENSIONS:
        raise ImportFileError(DAMAGED.format(name=name, format=FORMATS[extension]))
    if not _looks_like_text(head):
        raise ImportFileError(NOT_A_TABLE.format(name=name))
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
        A_DOCUMENT
        if "word/document.xml" in members or (b"opendocument.text" in mimetype)
        else A_ZIP
    )
    raise ImportFileError(NOT_A_TABLE_BUT.format(name=name, what=what))


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
    file: BinaryIO,
    *,
    name: str,
    size: int,
    pasted: bool = False,
    load_sheets: bool = True,
    encoding: str = "",
    mapping: ColumnMapping | None = None,
    ask: bool = True,
) -> Table:
    """Return the rows of an uploaded file (or of a pasted list when `pasted`).

    `encoding` (a CSV's, chosen on the upload page) and `mapping` (the columns the manager
    picked) override what the file is judged to be. A CSV whose codes read differently in two
    plausible encodings raises EncodingUnclear when `ask`, else is read the likelier way with a
    note saying so (`ask=False` is for a worker, which cannot ask). With `load_sheets` False a
    spreadsheet is only checked as a container (type, zip bomb), not parsed: what the upload
    request does for workbooks too large to parse in a moment.
    """
    check_size(name=name, size=size)
    if size == 0:
        raise ImportFileError(EMPTY_FILE.format(name=name))
    if pasted:
        return _with_first_row(_text_table(file, size), name=name)
    # Below readers: they build on its header search.
    from .csv_table import csv_table
    from .workbooks import workbook_table

    head = file.read(SAMPLE_SIZE)
    file.seek(0)
    file_format = detect_format(head, name=name, file=file, size=size)
    if file_format == "csv":
        table = csv_table(file, name=name, size=size, encoding=encoding, mapping=mapping, ask=ask)
    else:
        table = workbook_table(
            file, name=name, size=size, file_format=file_format, load=load_sheets, mapping=mapping
        )
        if table is None:
            return Table(iter(()), lambda: 0, size, file_format=file_format)
    table.file_format = file_format
    return _with_first_row(table, name=name)


def _with_first_row(table: Table, *, name: str) -> Table:
    """Fail now, not after the first batch, when there is no row at all (blank rows are none)."""
    rows = iter(table.rows)
    skipped = []
    for row in rows:
        if row[1] is BLANK_ROW:
            skipped.append(row)
            continue
        first = row
        break
    else:
        raise ImportFileError(NO_ROWS.format(name=name))
    table.rows = chain(skipped, [first], rows)
    return table


def columns_found(titles: list[str]) -> str:
    shown = [quoted(short(t)) for t in titles if t]
    if len(shown) > 20:
        shown = [*shown[:20], AND_MORE.format(count=count_text(len(shown) - 20))]
    return ", ".join(shown) or str(NO_COLUMNS)


def short(text: str, limit: int = 60) -> str:
    """A header cell as a message can quote it: visible, and not too long."""
    return shown(text, limit=limit)


def pick_cells(row: list, indexes: list[int | None]) -> tuple:
    width = len(row)
    return tuple(row[i] if i is not None and i < width else None for i in indexes)


def picker(indexes: list[int | None]) -> Callable[[list], tuple]:
    """Return pick_cells for these indexes, made for a million rows a file: one itemgetter over the
    row padded with Nones (an absent column reads the last None), a third of pick_cells's time."""
    # itemgetter of one index would return the cell, not a tuple; FIELDS are five.
    assert len(indexes) > 1
    padding = [None] * (max((i for i in indexes if i is not None), default=0) + 2)
    getter = itemgetter(*(-1 if i is None else i for i in indexes))
    return lambda row: getter([*row, *padding])


# Finding the header: the same for a CSV's lines and a sheet's rows.


@dataclass
class Layout:
    """Where a file's rows are: the header's position among the first rows (None for a file
    without one), the fields' columns, and what the report says of it."""

    position: int | None
    columns: list
    titles: list
    ignored: list
    mapping: ColumnMapping
    notes: list


def sheet_layout(
    head: list[tuple[int, list]],
    *,
    name: str,
    mapping: ColumnMapping | None,
    skip: int = 0,
    delimiter: str = "",
) -> Layout | None:
    """Return where the rows of these first rows are (their cells already split), or None when
    no header names the code column. `skip` rows at the top are not looked at (a sep= line)."""
    if mapping is not None:
        return chosen_layout(head, mapping)
    found = header_position([(number, [(delimiter, cells)]) for number, cells in head], skip=skip)
    if found is None:
        return None
    position, _ = found
    match = match_header(head[position][1])
    return matched_layout(head, position, match, name=name, skip=skip, delimiter=delimiter)


# Rows of one cell without a space (a title such as "PROMO2027") that may stand above the
# header: a few, so that a list of codes is never taken for titles above a code "Coupon".
_ONE_WORD_TITLES = 3


def header_position(rows: list, *, skip: int = 0) -> tuple[int, str] | None:
    """Return the position of the header among the first rows, and the delimiter it was found
    with: each row comes as (number, [(delimiter, cells), …]), its cells split each way.

    Of the rows that name the code column before the first row like data, the header is the one
    that names the most columns; of equals, the first, unless it reads as a title ("Promo
    codes" above "Code"): a title may name the codes too, and stands above the header.
    """
    best = None  # (fields named, position, delimiter, reads as a title)
    one_word = 0
    for position in range(skip, len(rows)):
        _, splits = rows[position]
        if is_blank(splits[0][1]):
            continue
        found = next(
            ((d, match) for d, cells in splits if (match := match_header(cells)) is not None),
            None,
        )
        if found is not None:
            fields = sum(index is not None for index in found[1].columns)
            titled = is_title_row(splits[0][1])
            if best is None or fields > best[0] or (fields == best[0] and best[3] and not titled):
                best = (fields, position, found[0], titled)
            continue
        if best is not None:
            break
        cells = splits[0][1]
        if is_title_row(cells):
            continue
        if sum(1 for cell in cells if title_text(cell)) == 1 and one_word < _ONE_WORD_TITLES:
            one_word += 1
            continue
        break
    return None if best is None else (best[1], best[2])


def matched_layout(head, position, match: HeaderMatch, *, name, skip, delimiter="") -> Layout:
    if match.repeated:
        field_name, titles = match.repeated
        raise ColumnsUnclear(
            REPEATED_COLUMN.format(
                name=name,
                field=TEMPLATE_COLUMN_NAMES[FIELDS.index(field_name)],
                columns=", ".join(quoted(short(t)) for t in titles),
            ),
            head=head,
            skip=skip,
            delimiter=delimiter,
        )
    number = head[position][0]
    above = position - skip
    notes = [header_below(number, above)] if above > 0 else []
    mapping = ColumnMapping(number, tuple(match.columns), tuple(match.titles))
    return Layout(
        position,
        match.columns,
        [short(t) for t in match.titles if t],
        [short(t) for t in match.ignored],
        mapping,
        notes,
    )


def chosen_layout(head, mapping: ColumnMapping) -> Layout:
    position = None
    titles: list = []
    if mapping.header_row:
        for index, (number, cells) in enumerate(head):
            if number == mapping.header_row:
                position, titles = index, [title_text(c) for c in cells]
                break
    chosen = ", ".join(
        COLUMN_FROM.format(field=TEMPLATE_COLUMN_NAMES[f], column=_column_label(i, titles))
        for f, i in enumerate(mapping.columns)
        if i is not None
    )
    return Layout(
        position,
        list(mapping.columns),
        [short(t) for t in titles if t] or [TEMPLATE_COLUMNS[0]],
        _columns_not_read(head, position, mapping, titles),
        mapping,
        [(REMEMBERED_COLUMNS if mapping.remembered else CHOSEN_COLUMNS).format(columns=chosen)],
    )


def _columns_not_read(head, position, mapping: ColumnMapping, titles: list) -> list[str]:
    """The columns with something in them among the first rows that the manager did not pick,
    for the report to name ("Columns ignored: column C (“Note”)…")."""
    start = 0 if position is None else position
    used = {
        index for _, cells in head[start:] for index, cell in enumerate(cells) if title_text(cell)
    }
    left = sorted(used - {i for i in mapping.columns if i is not None})
    named = [_column_label(index, titles) for index in left[:10]]
    more = AND_MORE.format(count=count_text(len(left) - 10))
    return named + ([more] if len(left) > 10 else [])


def column_letter(index: int) -> str:
    """A column as a spreadsheet names it: 0 is A, 26 is AA."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _column_label(index: int, titles: list) -> str:
    title = titles[index] if index < len(titles) and titles[index] else ""
    if title:
        return COLUMN_LETTER_TITLED.format(letter=column_letter(index), title=short(title))
    return COLUMN_LETTER.format(letter=column_letter(index))


def single_column(head, skip: int = 0) -> bool:
    """Whether the first rows hold one column only: a list of codes, which needs no header."""
    rows = [cells for _, cells in head[skip:] if not is_blank(cells)]
    return bool(rows) and all(all(title_text(c) == "" for c in cells[1:]) for cells in rows)


def headerless_layout() -> Layout:
    mapping = ColumnMapping(0, (0, None, None, None, None))
    return Layout(None, list(mapping.columns), [TEMPLATE_COLUMNS[0]], [], mapping, [str(NO_HEADER)])


def blank_file_message(name: str, rows_looked_at: int) -> str:
    if rows_looked_at < HEADER_SEARCH_ROWS:
        return BLANK_FILE.format(name=name)
    return BLANK_HEAD.format(name=name, rows=HEADER_SEARCH_ROWS)


def first_titles(head) -> list[str]:
    """The cells of the first row that is not blank, as a message lists them."""
    return next(([title_text(c) for c in cells] for _, cells in head if not is_blank(cells)), [])


def unpacked_size(file: BinaryIO) -> int | None:
    """Return what a zip (XLSX, XLSM, XLSB, ODS) says its members unpack to, from its directory
    alone (nothing is unpacked); None for a file that is not a readable zip."""
    file.seek(0)
    try:
        if file.read(4) != b"PK\x03\x04":
            return None
        file.seek(0)
        with zipfile.ZipFile(file) as archive:
            return sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, EOFError):
        return None
    finally:
        file.seek(0)


def _check_zip_bomb(file: BinaryIO, *, name: str, size: int, file_format: str) -> None:
    unpacked = unpacked_size(file)
    if unpacked is None:
        raise ImportFileError(DAMAGED.format(name=name, format=FORMATS[file_format]))
    ratio = unpacked // max(size, 1)
    if unpacked > settings.IMPORT_MAX_XLSX_UNPACKED or (
        ratio > settings.IMPORT_MAX_XLSX_RATIO and unpacked > 50 * 1024 * 1024
    ):
        raise ImportFileError(
            ZIP_BOMB.format(name=name, unpacked=filesizeformat(unpacked), ratio=count_text(ratio))
        )


class CountingReader(io.RawIOBase):
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


# Pasted list


_TEXT_SEPARATORS = re.compile(r"[,;\t]")


def _text_table(file: BinaryIO, size: int) -> Table:
    """One code per line; commas, semicolons and tabs also separate codes; blank lines skipped."""
    counter = CountingReader(file)
    text = io.TextIOWrapper(io.BufferedReader(counter), encoding="utf-8", errors="replace")

    def rows():
        for line_number, line in enumerate(text, start=1):
            tokens = [token.strip() for token in _TEXT_SEPARATORS.split(line)]
            tokens = [token for token in tokens if token]
            if not tokens:
                yield line_number, BLANK_ROW
            elif line_number == 1 and len(tokens) == 1 and match_header(tokens):
                continue  # a header ("Code", "Промокод"), as a column copied from a sheet has
            else:
                for token in tokens:
                    yield line_number, (token, None, None, None, None)

    return Table(rows(), lambda: counter.count, size, ["Code"], [])
