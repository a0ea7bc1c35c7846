"""Read a CSV file into rows of template cells: its encoding judged, and asked about when the
codes would read differently; its header found below titles (or its columns as the manager
chose them); its lines split into records by csv_records, each line in one."""

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from itertools import chain, islice
from typing import BinaryIO

from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from . import csv_records
from .code_pages import rank_readings
from .encodings import EncodingGuess, encoding_name, guess_encoding
from .headers import (
    HEADER_SEARCH_ROWS,
    TEMPLATE_COLUMN_NAMES,
    ColumnMapping,
    is_blank,
    match_header,
    title_text,
)
from .readers import (
    HEADER_AGAIN,
    NO_CODE_COLUMN,
    ColumnsUnclear,
    CountingReader,
    EncodingUnclear,
    ImportFileError,
    Layout,
    Table,
    blank_file_message,
    chosen_layout,
    columns_found,
    header_position,
    headerless_layout,
    matched_layout,
    picker,
    short,
    single_column,
)
from .rows import UnreadableRow

ENCODING_UNCLEAR = _(
    "“{name}” reads as text in more than one encoding, and its codes differ between them "
    "(such as {examples}): choose the one it was saved in."
)
ENCODING_DOUBT = _(
    "Read as {encoding}; as {other} some codes would read differently (such as {examples}): if "
    "these codes look wrong, upload the file again choosing its encoding."
)
# One reading of ENCODING_UNCLEAR's examples, and the word between two of them.
CODE_READ_AS = _("“{code}” in {encoding}")
OR = pgettext_lazy("between two choices", " or ")
# Codes shown each way when the readings of a file differ.
_DOUBT_EXAMPLES = 5


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


def csv_source(file: BinaryIO, *, encoding: str = "") -> _CsvSource:
    guess = None
    if not encoding:
        guess = guess_encoding(file)
        encoding = guess.encoding
    counter = CountingReader(file)
    # Undecodable bytes become U+FFFD, which validation rejects for that row only. newline=""
    # keeps a cell's line breaks for the csv module and numbers lines as an editor does.
    text = io.TextIOWrapper(
        io.BufferedReader(counter), encoding=encoding, errors="replace", newline=""
    )
    lines = enumerate(text, start=1)
    head = list(islice(lines, HEADER_SEARCH_ROWS))
    sep = csv_records.sep_line_delimiter(head[0][1]) if head else None
    return _CsvSource(head, lines, lambda: counter.count, encoding, sep, guess)


def csv_table(
    file: BinaryIO,
    *,
    name: str,
    size: int,
    encoding: str,
    mapping: ColumnMapping | None,
    ask: bool = True,
) -> Table:
    source = csv_source(file, encoding=encoding)
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
                other=str(OR).join(encoding_name(codec) for codec, _ in readings[1:]),
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
        titles=layout.mapping.titles or (str(TEMPLATE_COLUMN_NAMES[0]),),
    )
    pick = picker(layout.columns)
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


def _encoding_readings(source: _CsvSource, layout: Layout, delimiter: str) -> list:
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
    return str(OR).join(
        CODE_READ_AS.format(code=short(codes[0], 30), encoding=encoding_name(codec))
        for codec, codes in readings
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
        return chosen_layout(split, mapping), delimiter
    rows = []
    for number, line in head:
        delimiters = (
            [source.sep]
            if source.sep
            else sorted(csv_records.DELIMITERS, key=line.count, reverse=True)
        )
        rows.append((number, [(d, csv_records.split_line(line, d)) for d in delimiters]))
    found = header_position(rows, skip=skip)
    if found is not None:
        position, delimiter = found
        if not source.sep and len(csv_records.split_line(head[position][1], delimiter)) == 1:
            # A header of one column: a file of more columns would have its delimiter in the
            # header line too (Excel writes "Code;;"), so each line is one cell, whatever
            # commas it holds (a German Excel's 1,23457E+11).
            delimiter = csv_records.NO_DELIMITER
        split = [(n, csv_records.split_line(text, delimiter)) for n, text in head]
        layout = matched_layout(
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
        raise ImportFileError(blank_file_message(name, len(head)))
    if single_column(split, skip):
        return headerless_layout(), delimiter
    titles = next((cells for _, cells in split[skip:] if not is_blank(cells)), [])
    raise ColumnsUnclear(
        NO_CODE_COLUMN.format(name=name, found=columns_found([title_text(t) for t in titles])),
        head=split,
        skip=skip,
        delimiter=delimiter,
    )
