"""Split a CSV file's lines into records, so that a broken quote costs one row, not the file.

Python's csv module reads a quote that is never closed as one field that runs to the end of the
file: every row after it vanishes without a word. Here a record may span lines only as a real
multi-line cell does (a note typed with Alt+Enter): its quote closes cleanly within
MAX_RECORD_LINES lines, the cell is not one of the columns read (codes and dates hold no line
breaks), and no line it joins would be a row of its own (one with a delimiter for each of the
header's columns, or a closing line that would open a multi-line cell of its own). Otherwise:

- a quote that never closes cleanly (the file ends, or MAX_RECORD_LINES pass, or it "closes" on
  a stray quote in the middle of a cell) rejects the line where it opens, and reading goes on at
  the line after it: those lines were never part of a cell;
- a quote that closes cleanly lines later, over lines that read as rows, or across a code or a
  date, rejects the line where it opens, and the lines up to where it closes are read again as
  rows but rejected too, saying where the quote opens and closes: either reading could be the
  file's, so none of those lines is added or dropped in silence.
"""

import csv
import re
from collections.abc import Iterator

from django.utils.translation import gettext_lazy as _

from .cells import shown
from .readers import COLUMN_LETTER, column_letter
from .rows import BLANK_ROW, UnreadableRow

DELIMITERS = (",", ";", "\t", "|")
# The "delimiter" of a file of one column: a character no text holds (ASCII's unit separator),
# so that each line is one cell, its quotes read as a CSV's.
NO_DELIMITER = "\x1f"
# A multi-line cell spans a few lines (an address, a note typed with Alt+Enter); a quote still
# open after this many lines is a stray one.
MAX_RECORD_LINES = 20
QUOTE_NEVER_CLOSED = _(
    "A quote opened here is never closed, so the rows after it would be read as part of this "
    "cell. Remove the quote or close it, then upload this row again."
)
QUOTE_CLOSED_LATE = _(
    "A quote opened here closes only on line {last}: the lines down to it would be part of this "
    "cell, though they read as rows of their own. Remove the stray quote, or close it on this "
    "line, then upload these rows again."
)
INSIDE_QUOTE = _(
    "This line is inside a quote opened on line {first} and closed on line {last}: see line "
    "{first}."
)
# Line numbers are said as the file numbers its lines: 1502, never 1,502.
UNREADABLE_ROW = _("This row cannot be read: {error}.")
# Excel writes "sep=;" as a CSV's first line to say its delimiter.
_SEP_LINE = re.compile(r'"?sep=(.)"?[,;\t|]*\s*', re.IGNORECASE)
# Any cell may be as long as the file: a cell too long for its column is that row's rejection
# ("longer than"), said with its row and column, not the csv module's "field larger than".
csv.field_size_limit(2**31 - 1)


class _RunawayQuote(Exception):
    pass


class _Feed:
    """The lines a csv.reader pulls: numbered, read again when pushed back, and at most
    MAX_RECORD_LINES of them for one record."""

    __slots__ = ("lines", "back", "taken", "ended")

    def __init__(self, lines: Iterator[tuple[int, str]]):
        self.lines = lines
        self.back: list[tuple[int, str]] = []
        self.taken: list[tuple[int, str]] = []
        self.ended = False

    def __iter__(self):
        return self

    def __next__(self) -> str:
        taken = self.taken
        if len(taken) >= MAX_RECORD_LINES:
            raise _RunawayQuote
        if self.back:
            item = self.back.pop()
        else:
            try:
                item = next(self.lines)
            except StopIteration:
                self.ended = True
                raise
        taken.append(item)
        return item[1]

    def read_again(self, lines: list[tuple[int, str]]) -> None:
        self.back.extend(reversed(lines))

    def peek(self, count: int) -> list[tuple[int, str]]:
        """Return up to `count` of the lines to come, leaving them to be read."""
        ahead = []
        while len(ahead) < count:
            if self.back:
                ahead.append(self.back.pop())
                continue
            try:
                ahead.append(next(self.lines))
            except StopIteration:
                break
        self.read_again(ahead)
        return ahead


def sep_line_delimiter(line: str) -> str | None:
    """Return the delimiter an Excel "sep=;" line names, or None for any other line."""
    match = _SEP_LINE.fullmatch(line.lstrip("\ufeff"))
    return match.group(1) if match else None


def split_line(line: str, delimiter: str) -> list[str]:
    """The cells of one line read alone (a quote left open takes the rest of the line)."""
    return next(csv.reader([line], delimiter=delimiter), [])


def sniff_delimiter(lines: list[str]) -> str:
    """Return the delimiter that most of these lines use, at least half of them (a title line
    above the rows has none), or a comma for a single column."""
    filled = [line for line in lines if line.strip()]
    best, best_lines = ",", 0
    for delimiter in DELIMITERS:
        using = sum(1 for line in filled if delimiter in line)
        if using > best_lines and using * 2 >= len(filled):
            best, best_lines = delimiter, using
    return best


def records(
    lines: Iterator[tuple[int, str]],
    *,
    delimiter: str,
    width: int,
    columns_read: set[int],
    titles: list[str],
) -> Iterator[tuple[int, list | UnreadableRow]]:
    """Yield (line number where the record starts, cells, BLANK_ROW or UnreadableRow) for every
    record of these numbered lines, each line in exactly one record.

    `width` is the header's number of columns and `columns_read` the indexes of the columns
    read, by which a multi-line record is judged.
    """
    feed = _Feed(lines)
    reader = csv.reader(feed, delimiter=delimiter)
    # Lines a quote may have joined into one cell, read again as rows: (opened on, closed on).
    doubt = (0, 0)
    while True:
        feed.taken = taken = []
        try:
            row = next(reader)
        except StopIteration:
            return
        except _RunawayQuote:
            yield _quote_never_closed(taken, delimiter, titles)
            feed.read_again(taken[1:])
            reader = csv.reader(feed, delimiter=delimiter)
            continue
        except csv.Error as error:
            yield taken[0][0], UnreadableRow(UNREADABLE_ROW.format(error=error))
            feed.read_again(taken[1:])
            reader = csv.reader(feed, delimiter=delimiter)
            continue
        if len(taken) == 1 and not feed.ended:
            verdict = _ONE_RECORD
        else:
            verdict = _judge(taken, row, delimiter, width, columns_read)
        number = taken[0][0]
        if (
            verdict is _ONE_RECORD
            and len(taken) > 1
            and number > doubt[1]
            and _starts_another(
                taken[-1], feed.peek(MAX_RECORD_LINES - 1), delimiter, width, columns_read
            )
        ):
            verdict = _CLOSED_LATE
        if verdict is _ONE_RECORD and number <= doubt[1] and len(taken) > 1:
            # Read again, the line where a doubtful quote closed opens another with the same
            # quote: the lines that one joins are in doubt too, each rejected with its number.
            first = taken[:1]
            yield number, _inside_quote(first, split_line(first[0][1], delimiter), doubt)
            if taken[-1][0] > doubt[1]:
                doubt = (number, taken[-1][0])
            feed.read_again(taken[1:])
            reader = csv.reader(feed, delimiter=delimiter)
            continue
        if verdict is _ONE_RECORD:
            if number <= doubt[1]:
                # Blank too: it may be a line of the note, as much as a blank row.
                yield number, _inside_quote(taken, row, doubt)
            elif not "".join(row).strip():
                yield number, BLANK_ROW
            else:
                yield number, row
            continue
        if verdict is _NEVER_CLOSED:
            yield _quote_never_closed(taken, delimiter, titles)
        else:
            number, opened = _quote_never_closed(taken, delimiter, titles)
            doubt = (number, taken[-1][0])
            reason = QUOTE_CLOSED_LATE.format(last=doubt[1])
            yield number, UnreadableRow(reason, opened.column, opened.value, opened.cells)
        feed.read_again(taken[1:])
        reader = csv.reader(feed, delimiter=delimiter)


_ONE_RECORD, _NEVER_CLOSED, _CLOSED_LATE = "one record", "never closed", "closed late"


def _judge(taken, row, delimiter, width, columns_read) -> str:
    """Whether lines the csv module read as one record are one (see the module's docstring)."""
    try:
        strict = csv.reader((line for _, line in taken), delimiter=delimiter, strict=True)
        next(strict)
        if strict.line_num != len(taken):
            return _NEVER_CLOSED
    except (csv.Error, StopIteration):
        return _NEVER_CLOSED
    if len(taken) == 1:
        return _ONE_RECORD
    for index in columns_read:
        if index < len(row) and ("\n" in row[index] or "\r" in row[index]):
            return _CLOSED_LATE
    # A line with a delimiter for each of the header's columns, or more, is a row of its own;
    # fewer is a piece of a cell ("City 12345" of an address). Every delimiter counts, quoted
    # or not: read alone, the quote that closes the cell would open one and hide the rest
    # ('C3,",' is one cell alone, three as the row it may be).
    if width >= 2 and any(line.count(delimiter) + 1 >= width for _, line in taken[1:]):
        return _CLOSED_LATE
    return _ONE_RECORD


def _starts_another(last, ahead, delimiter, width, columns_read) -> bool:
    """Whether the last line of a multi-line record, read as the first of one, starts one of
    its own (`C3,"` and the lines of its note): the quote that closes the record may as well
    open that one, and the line be a row."""
    lines = [last, *ahead]
    strict = csv.reader((line for _, line in lines), delimiter=delimiter, strict=True)
    try:
        row = next(strict)
    except (csv.Error, StopIteration):
        return False
    used = lines[: strict.line_num]
    return len(used) > 1 and _judge(used, row, delimiter, width, columns_read) is _ONE_RECORD


def _inside_quote(taken, row, doubt) -> UnreadableRow:
    text = "".join(line for _, line in taken).rstrip("\r\n")
    reason = INSIDE_QUOTE.format(first=doubt[0], last=doubt[1])
    return UnreadableRow(reason, "", shown(text), tuple(row))


def _quote_never_closed(taken, delimiter, titles) -> tuple[int, UnreadableRow]:
    number, line = taken[0]
    cells = split_line(line, delimiter) or [line]
    index = len(cells) - 1
    column = titles[index] if index < len(titles) and titles[index] else ""
    # A column without a title is named by its letter, as the spreadsheet shows it.
    column = column or str(COLUMN_LETTER).format(letter=column_letter(index))
    cells[-1] = cells[-1].rstrip("\r\n")
    reason = str(QUOTE_NEVER_CLOSED)
    return number, UnreadableRow(reason, column, shown('"' + cells[-1]), tuple(cells))
