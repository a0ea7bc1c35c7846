"""Read an uploaded CSV file or spreadsheet, or a pasted list, into numbered rows of template cells.

A reader streams: it never holds the whole file. Problems with the file as a whole raise
ImportFileError before the first row is yielded; problems with one row are left to validation.

Long because every format (CSV, the spreadsheets, a pasted list, and the customer lists of
assignments) goes through one pipeline: the size and format checks, the header search and
mapping, and the refusal messages are shared, and tools/mutation.py tries the module as one
against tests/imports/test_readers.py.
"""

import codecs
import io
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from itertools import chain, islice
from operator import itemgetter
from typing import BinaryIO

from django.conf import settings
from django.template.defaultfilters import filesizeformat

from . import csv_records
from .cells import shown
from .code_pages import rank_readings
from .encodings import EncodingGuess, encoding_name, guess_encoding
from .headers import (
    FIELDS,
    FIRST_ROWS_SHOWN,
    HEADER_SEARCH_ROWS,
    TEMPLATE_COLUMNS,
    ColumnMapping,
    HeaderMatch,
    is_blank,
    is_title_row,
    match_header,
    title_text,
)
from .rows import BLANK_ROW, BlankRow, SkippedRow, UnreadableRow

__all__ = ["BLANK_ROW", "FIELDS", "TEMPLATE_COLUMNS", "BlankRow", "UnreadableRow"]

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
BLANK_FILE = "“{name}” holds nothing but blank rows."
BLANK_HEAD = (
    "The first {rows} rows of “{name}” are blank: the header must be within them. Delete the "
    "blank rows above it."
)
NO_ROWS = "“{name}” has a header but no rows of codes under it."
NO_CODE_COLUMN = (
    "“{name}” has no column of codes: no column is named Code (or Promo code, Coupon, Код, "
    "Промокод). Columns found: {found}."
)
NO_CODE_COLUMN_ON_ANY_SHEET = (
    "“{name}” has no column of codes on any sheet. Sheets looked at: {sheets}."
)
REPEATED_COLUMN = "“{name}” has more than one column for {field}: {columns}."
CHOOSE_COLUMNS = "Choose the columns on the upload page, or rename the one to read."
HEADER_BELOW_ONE = "The header is on row {row}: the row above it was skipped."
HEADER_BELOW = "The header is on row {row}: the {count} rows above it were skipped."
NO_HEADER = "The file has no header: every row was read as a code."
CHOSEN_COLUMNS = "Columns as chosen on the upload page: {columns}."
REMEMBERED_COLUMNS = "Columns as chosen for this pool's last upload: {columns}."
ENCODING_UNCLEAR = (
    "“{name}” reads as text in more than one encoding, and its codes differ between them "
    "(such as {examples}): choose the one it was saved in."
)
ENCODING_DOUBT = (
    "Read as {encoding}; as {other} some codes would read differently (such as {examples}): if "
    "these codes look wrong, upload the file again choosing its encoding."
)
# Codes shown each way when the readings of a file differ.
_DOUBT_EXAMPLES = 5
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

_SAMPLE_SIZE = 64 * 1024
# A row that repeats the header (files joined one after another): read, and skipped.
HEADER_AGAIN = SkippedRow("The header again, as a row: skipped.")


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
        super().__init__(f"{message} {CHOOSE_COLUMNS}")
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
    head = file.read(_SAMPLE_SIZE)
    file.seek(0)
    file_format = detect_format(head, name=name, file=file, size=size)
    if file_format == "csv":
        table = _csv_table(file, name=name, size=size, encoding=encoding, mapping=mapping, ask=ask)
    else:
        table = _workbook_table(
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


# Finding the header: the same for a CSV's lines and a sheet's rows.


@dataclass
class _Layout:
    """Where a file's rows are: the header's position among the first rows (None for a file
    without one), the fields' columns, and what the report says of it."""

    position: int | None
    columns: list
    titles: list
    ignored: list
    mapping: ColumnMapping
    notes: list


def _layout(
    head: list[tuple[int, list]],
    *,
    name: str,
    mapping: ColumnMapping | None,
    skip: int = 0,
    delimiter: str = "",
) -> _Layout | None:
    """Return where the rows of these first rows are (their cells already split), or None when
    no header names the code column. `skip` rows at the top are not looked at (a sep= line)."""
    if mapping is not None:
        return _chosen_layout(head, mapping)
    found = _header_position([(number, [(delimiter, cells)]) for number, cells in head], skip=skip)
    if found is None:
        return None
    position, _ = found
    match = match_header(head[position][1])
    return _matched_layout(head, position, match, name=name, skip=skip, delimiter=delimiter)


# Rows of one cell without a space (a title such as "PROMO2027") that may stand above the
# header: a few, so that a list of codes is never taken for titles above a code "Coupon".
_ONE_WORD_TITLES = 3


def _header_position(rows: list, *, skip: int = 0) -> tuple[int, str] | None:
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


def _matched_layout(head, position, match: HeaderMatch, *, name, skip, delimiter="") -> _Layout:
    if match.repeated:
        field_name, titles = match.repeated
        raise ColumnsUnclear(
            REPEATED_COLUMN.format(
                name=name,
                field=TEMPLATE_COLUMNS[FIELDS.index(field_name)],
                columns=", ".join(f"“{_short(t)}”" for t in titles),
            ),
            head=head,
            skip=skip,
            delimiter=delimiter,
        )
    number = head[position][0]
    above = position - skip
    notes = []
    if above == 1:
        notes.append(HEADER_BELOW_ONE.format(row=number))
    elif above > 1:
        notes.append(HEADER_BELOW.format(row=number, count=above))
    mapping = ColumnMapping(number, tuple(match.columns), tuple(match.titles))
    return _Layout(
        position,
        match.columns,
        [_short(t) for t in match.titles if t],
        [_short(t) for t in match.ignored],
        mapping,
        notes,
    )


def _chosen_layout(head, mapping: ColumnMapping) -> _Layout:
    position = None
    titles: list = []
    if mapping.header_row:
        for index, (number, cells) in enumerate(head):
            if number == mapping.header_row:
                position, titles = index, [title_text(c) for c in cells]
                break
    chosen = ", ".join(
        f"{TEMPLATE_COLUMNS[f]} from {_column_label(i, titles)}"
        for f, i in enumerate(mapping.columns)
        if i is not None
    )
    return _Layout(
        position,
        list(mapping.columns),
        [_short(t) for t in titles if t] or ["Code"],
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
    return named + ([f"and {len(left) - 10:,} more"] if len(left) > 10 else [])


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
    return f"column {column_letter(index)}" + (f" (“{_short(title)}”)" if title else "")


def _single_column(head, skip: int = 0) -> bool:
    """Whether the first rows hold one column only: a list of codes, which needs no header."""
    rows = [cells for _, cells in head[skip:] if not is_blank(cells)]
    return bool(rows) and all(all(title_text(c) == "" for c in cells[1:]) for cells in rows)


def _headerless_layout() -> _Layout:
    mapping = ColumnMapping(0, (0, None, None, None, None))
    return _Layout(None, list(mapping.columns), ["Code"], [], mapping, [NO_HEADER])


# CSV


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


@dataclass
class _CsvSource:
    """A CSV's numbered lines: the first few held back to find the header in, and the rest."""

    head: list[tuple[int, str]]
    rest: Iterator[tuple[int, str]]
    progress: Callable[[], int]
    encoding: str
    # The delimiter a "sep=" first line names.
    sep: str | None
    # How the encoding was judged, when it was not given.
    guess: EncodingGuess | None = None


def _csv_source(file: BinaryIO, *, encoding: str = "") -> _CsvSource:
    guess = None
    if not encoding:
        guess = guess_encoding(file)
        encoding = guess.encoding
    counter = _CountingReader(file)
    # Undecodable bytes become U+FFFD, which validation rejects for that row only. newline=""
    # keeps a cell's line breaks for the csv module and numbers lines as an editor does.
    text = io.TextIOWrapper(
        io.BufferedReader(counter), encoding=encoding, errors="replace", newline=""
    )
    lines = enumerate(text, start=1)
    head = list(islice(lines, HEADER_SEARCH_ROWS))
    sep = csv_records.sep_line_delimiter(head[0][1]) if head else None
    return _CsvSource(head, lines, lambda: counter.count, encoding, sep, guess)


def _csv_table(
    file: BinaryIO,
    *,
    name: str,
    size: int,
    encoding: str,
    mapping: ColumnMapping | None,
    ask: bool = True,
) -> Table:
    source = _csv_source(file, encoding=encoding)
    skip = 1 if source.sep else 0
    layout, delimiter = _csv_layout(source, name=name, mapping=mapping, skip=skip)
    readings = _likelier(source.guess, _encoding_readings(source, layout, delimiter))
    if readings and ask:
        raise EncodingUnclear(
            ENCODING_UNCLEAR.format(name=name, examples=_doubt_examples(readings)),
            readings=readings,
        )
    if readings:
        layout.notes.append(
            ENCODING_DOUBT.format(
                encoding=encoding_name(readings[0][0]),
                other=" or ".join(encoding_name(codec) for codec, _ in readings[1:]),
                examples=_doubt_examples(readings),
            )
        )
    start = skip if layout.position is None else layout.position + 1
    data_lines = chain(source.head[start:], source.rest)
    width = len(layout.titles) if layout.position is not None else 1
    records = csv_records.records(
        data_lines,
        delimiter=delimiter,
        width=width,
        columns_read={i for i in layout.columns if i is not None},
        titles=layout.mapping.titles or ("Code",),
    )
    pick = _picker(layout.columns)
    code_index = layout.columns[0]
    header = None
    if layout.position is not None:
        header_line = source.head[layout.position][1]
        header = [cell.strip() for cell in csv_records.split_line(header_line, delimiter)]
    header_code = header[code_index] if header and code_index < len(header) else None

    def picked():
        for row_number, row in records:
            if isinstance(row, list):
                if delimiter == csv_records.NO_DELIMITER and len(row) > 1:
                    row = [delimiter.join(row)]  # the character was the cell's own
                if (
                    header_code is not None
                    and code_index < len(row)
                    and row[code_index].strip() == header_code
                    and [cell.strip() for cell in row] == header
                ):
                    yield row_number, HEADER_AGAIN
                    continue
                yield row_number, pick(row)
            elif isinstance(row, UnreadableRow) and row.cells:
                # What could be read of it, in the template's columns, for the download.
                yield row_number, replace(row, cells=pick(list(row.cells)))
            else:
                yield row_number, row

    return Table(
        picked(),
        source.progress,
        size,
        layout.titles,
        layout.ignored,
        notes=layout.notes,
        mapping=replace(layout.mapping, delimiter=delimiter),
        encoding=source.encoding,
        readings=readings,
    )


def _encoding_readings(source: _CsvSource, layout: _Layout, delimiter: str) -> list:
    """Return [(codec, [codes])] for each plausible reading of the file whose codes differ from
    the chosen one's, the chosen one first, with the codes that differ; or [] when every
    plausible reading gives the same codes (the notes may differ: they are not read)."""
    guess = source.guess
    code_index = layout.columns[0]
    if guess is None or len(guess.plausible) < 2 or code_index is None:
        return []
    header = source.head[layout.position][1] if layout.position is not None else None
    header_bytes = header.encode(guess.encoding, errors="replace").strip() if header else None

    width = len(layout.titles) if layout.position is not None else None

    def codes(codec: str) -> list[str]:
        found = []
        for line in guess.sample.splitlines():
            if header_bytes is not None and line.strip() == header_bytes:
                continue
            cells = csv_records.split_line(line.decode(codec, errors="replace"), delimiter)
            # A line of another width is most likely a piece of a multi-line cell.
            if code_index < len(cells) and width in (None, len(cells)):
                found.append(cells[code_index].strip())
        return found

    def names_the_codes(codec: str) -> bool:
        # A header with letters beyond ASCII ("Промокод") names the code column in one reading
        # only: the others are not the file's.
        return (
            header_bytes is None
            or layout.mapping.chosen
            or match_header(
                csv_records.split_line(header_bytes.decode(codec, errors="replace"), delimiter)
            )
            is not None
        )

    chosen = codes(guess.encoding)
    others = [(codec, codes(codec)) for codec in guess.plausible[1:] if names_the_codes(codec)]
    others = [(codec, read) for codec, read in others if read != chosen]
    if not others:
        return []
    differ = [
        index for index, code in enumerate(chosen) if any(read[index] != code for _, read in others)
    ][:_DOUBT_EXAMPLES]
    return [
        (codec, [read[i] for i in differ]) for codec, read in [(guess.encoding, chosen), *others]
    ]


# Letters enough for their frequencies to tell two readings apart, and the share of common
# letters by which the less likely reading is ruled out: Windows-1251 and KOI8-R read each
# other's Cyrillic in the other case, and only the frequencies of the letters tell them apart
# (real Russian codes and notes score about 0.8 one way and 0.5 the other).
_LETTERS_TO_JUDGE = 20
_COMMONNESS_MARGIN = 0.25
# Code pages no Excel writes (Linux and DOS tools do): read when the file reads best so, never
# offered instead of a code page Excel writes, which a file of few letters would always do.
_LEGACY_CODE_PAGES = ("koi8_r", "cp866")


def _likelier(guess: EncodingGuess | None, readings: list) -> list:
    """Drop the readings the file's letters speak clearly against: those needing more
    languages than the chosen one to write its words, or, with letters enough to judge, far
    rarer letters; and a legacy code page against one Excel writes. One reading left is no
    doubt at all ([])."""
    if len(readings) < 2:
        return []
    judged = {r.codec: r for r in rank_readings(guess.sample, tuple(c for c, _ in readings))}
    chosen = judged.get(readings[0][0])
    if chosen is None:
        return readings
    text = guess.sample.decode(readings[0][0], errors="replace")
    letters = sum(1 for char in text if char.isalpha() and not char.isascii())

    def likely(codec: str) -> bool:
        other = judged.get(codec)
        if codec in _LEGACY_CODE_PAGES and readings[0][0] not in _LEGACY_CODE_PAGES:
            return False
        return other is None or (
            other.languages <= chosen.languages
            and (
                letters < _LETTERS_TO_JUDGE
                or chosen.commonness - other.commonness <= _COMMONNESS_MARGIN
            )
        )

    kept = [readings[0], *((c, codes) for c, codes in readings[1:] if likely(c))]
    return kept if len(kept) > 1 else []


def _doubt_examples(readings: list) -> str:
    """The first code that differs, as each reading gives it."""
    return " or ".join(
        f"“{_short(codes[0], 30)}” in {encoding_name(codec)}" for codec, codes in readings
    )


def _csv_layout(source: _CsvSource, *, name: str, mapping, skip: int):
    """Return the file's layout and delimiter: by its header, by the manager's choice, or as
    a single column of codes; raise ColumnsUnclear otherwise."""
    head = source.head
    if mapping is not None:
        delimiter = (
            mapping.delimiter
            or source.sep
            or csv_records.sniff_delimiter([line for _, line in head[skip:]])
        )
        split = [(n, csv_records.split_line(line, delimiter)) for n, line in head]
        return _chosen_layout(split, mapping), delimiter
    rows = []
    for number, line in head:
        delimiters = (
            [source.sep]
            if source.sep
            else sorted(csv_records.DELIMITERS, key=line.count, reverse=True)
        )
        rows.append((number, [(d, csv_records.split_line(line, d)) for d in delimiters]))
    found = _header_position(rows, skip=skip)
    if found is not None:
        position, delimiter = found
        if not source.sep and len(csv_records.split_line(head[position][1], delimiter)) == 1:
            # A header of one column: a file of more columns would have its delimiter in the
            # header line too (Excel writes "Code;;"), so each line is one cell, whatever
            # commas it holds (a German Excel's 1,23457E+11).
            delimiter = csv_records.NO_DELIMITER
        split = [(n, csv_records.split_line(text, delimiter)) for n, text in head]
        layout = _matched_layout(
            split,
            position,
            match_header(split[position][1]),
            name=name,
            skip=skip,
            delimiter=delimiter,
        )
        return layout, delimiter
    delimiter = source.sep or csv_records.sniff_delimiter([line for _, line in head[skip:]])
    split = [(n, csv_records.split_line(line, delimiter)) for n, line in head]
    if all(is_blank(cells) for _, cells in split[skip:]):
        raise ImportFileError(_blank(name, len(head)))
    if _single_column(split, skip):
        return _headerless_layout(), delimiter
    titles = next((cells for _, cells in split[skip:] if not is_blank(cells)), [])
    raise ColumnsUnclear(
        NO_CODE_COLUMN.format(name=name, found=_columns_found([title_text(t) for t in titles])),
        head=split,
        skip=skip,
        delimiter=delimiter,
    )


# Spreadsheets: XLSX, XLSM, XLSB, XLS, ODS


def _workbook_table(
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
    notes = [SHEET_READ.format(sheet=sheet_name)] if len(sheet_names) > 1 else []
    notes += layout.notes
    indexes = layout.columns
    cell_info = (
        _xlsx_cell_info(file, sheet_name, indexes) if file_format in ("xlsx", "xlsm") else {}
    )
    start = 0 if layout.position is None else layout.position + 1
    header = None if layout.position is None else _pick(head[layout.position][1], indexes)
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
                cells = _apply_cell_info(list(_pick(row, indexes)), info)
            elif is_blank(row):
                blank_from = blank_from or row_number
                continue
            else:
                cells = _pick(row, indexes)
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
            yield row_number, _apply_cell_info([None] * len(FIELDS), cell_info[row_number])
            last = row_number
        if numeric[0]:
            count = numeric[0]
            rows_text = f"{count:,} row" + ("" if count == 1 else "s")
            notes.append(NUMERIC_CODES.format(rows=rows_text))

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
        layout = _layout(head, name=name, mapping=mapping)
        if layout is not None:
            return sheet_name, sheet, head, sheet_rows, layout
        looked_at.append((sheet_name, sheet, head, sheet_rows))
    if not looked_at:
        raise ImportFileError(NO_CODE_COLUMN_ON_ANY_SHEET.format(name=name, sheets="none"))
    filled = [looked for looked in looked_at if not all(is_blank(r) for _, r in looked[2])]
    if not filled:
        raise ImportFileError(_blank(name, max(len(looked[2]) for looked in looked_at)))
    if len(filled) == 1 and _single_column(filled[0][2]):
        # A single column of codes on the only sheet with anything on it needs no header.
        return (*filled[0], _headerless_layout())
    sheet_name, sheet, head, sheet_rows = looked_at[0]
    if len(looked_at) == 1:
        message = NO_CODE_COLUMN.format(name=name, found=_columns_found(_first_titles(head)))
    else:
        sheets = "; ".join(
            f"“{_short(sheet)}” (columns: {_columns_found(_first_titles(rows))})"
            for sheet, _, rows, _ in looked_at
        )
        message = NO_CODE_COLUMN_ON_ANY_SHEET.format(name=name, sheets=sheets)
    raise ColumnsUnclear(message, head=head, sheet=sheet_name)


def _blank(name: str, rows_looked_at: int) -> str:
    if rows_looked_at < HEADER_SEARCH_ROWS:
        return BLANK_FILE.format(name=name)
    return BLANK_HEAD.format(name=name, rows=HEADER_SEARCH_ROWS)


def _first_titles(head) -> list[str]:
    """The cells of the first row that is not blank, as a message lists them."""
    return next(([title_text(c) for c in cells] for _, cells in head if not is_blank(cells)), [])


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
    an error value (#N/A, read as empty) is put back for validation to reject; a number shown
    with leading zeros (format 00000) keeps them."""
    for index, (kind, detail) in info.items():
        if kind == "formula":
            column = TEMPLATE_COLUMNS[index]
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


# Pasted list


_TEXT_SEPARATORS = re.compile(r"[,;\t]")


def _text_table(file: BinaryIO, size: int) -> Table:
    """One code per line; commas, semicolons and tabs also separate codes; blank lines skipped."""
    counter = _CountingReader(file)
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


def _customer_csv_rows(file: BinaryIO, *, name: str):
    """A customer list's header (the first line, among the first few, naming a customer id
    column; titles and blank lines may stand above it) and its rows, as for codes."""
    source = _csv_source(file)
    position, delimiter, header = None, ",", []
    for index, (_, line) in enumerate(source.head):
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
        header, rows, progress = _customer_csv_rows(file, name=name)
        total = size
    else:
        header, rows, progress, total = _first_sheet_rows(file, name=name, file_format=file_format)
    header = [title_text(cell) for cell in header]
    index = _customer_column(header)
    if index is None:
        raise ImportFileError(NO_CUSTOMER_COLUMN.format(name=name, found=_columns_found(header)))
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
