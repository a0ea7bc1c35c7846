"""Property-based tests of whole files: whatever quotes, blank lines and multi-line cells a CSV
mixes, every line is read once, no code is changed, and no valid row goes missing in silence."""

import csv
import io
from dataclasses import dataclass

from hypothesis import example, given
from hypothesis import strategies as st

from imports.readers import BLANK_ROW, UnreadableRow, open_table

codes = st.text(st.sampled_from("ABCXYZ0123456789-_"), min_size=1, max_size=10)
# Note text with no delimiter, quote or line break: a note that cannot break a row.
plain_notes = st.text(st.sampled_from("abc xyz 123.!?/ЖЯ"), max_size=12)
# Anything a hand-edited note may hold on one line: delimiters, quotes of every kind.
wild_notes = st.text(st.sampled_from("ab \",;\t|'“”«»x1"), max_size=12)


@dataclass(frozen=True)
class Item:
    """One row as generated: its kind, code and the lines it takes in the file."""

    kind: str  # good, blank, stray (a note opening a quote it may never close), multiline
    code: str
    lines: tuple[str, ...]


def _item(delimiter: str, end: str):
    """Rows of a file whose lines end with `end`: the empty cells of its columns after Note."""
    good = st.builds(
        lambda code, note: Item("good", code, (f"{code}{delimiter}{note}{end}",)),
        codes,
        plain_notes,
    )
    blank = st.just(Item("blank", "", ("",)))
    stray = st.one_of(
        st.builds(
            lambda code, note: Item("stray", code, (f'{code}{delimiter}"{note}{end}',)),
            codes,
            wild_notes,
        ),
        # A quote before the code: a plain note, since a quote closing on this line would make
        # the code cell hold the note, as a CSV writer would mean it.
        st.builds(
            lambda code, note: Item("stray", code, (f'"{code}{delimiter}{note}{end}',)),
            codes,
            plain_notes,
        ),
    )

    def multiline(code, parts):
        note = "\n".join(parts)
        return Item("multiline", code, tuple(f'{code}{delimiter}"{note}"{end}'.split("\n")))

    multi = st.builds(multiline, codes, st.lists(plain_notes, min_size=2, max_size=4))
    return st.one_of(good, good, good, blank, stray, multi)


# (delimiter, rows, titles): Code and Note, and a column after them that Excel fills with an
# empty cell on every line, so that a line's delimiters are not its only ones.
files = st.tuples(
    st.sampled_from([",", ";", "\t", "|"]),
    st.sampled_from([("Code", "Note"), ("Code", "Note", "Memo")]),
).flatmap(
    lambda dt: st.tuples(
        st.just(dt[0]),
        st.lists(_item(dt[0], dt[0] * (len(dt[1]) - 2)), min_size=1, max_size=30),
        st.just(dt[1]),
    )
)


def _read(delimiter: str, items: list[Item], ending: str, titles: tuple[str, ...]):
    lines = [delimiter.join(titles)] + [line for item in items for line in item.lines]
    data = (ending.join(lines) + ending).encode()
    table = open_table(io.BytesIO(data), name="codes.csv", size=len(data))
    return list(table.rows)


def _starts(items: list[Item]) -> dict[int, Item]:
    """The line number each item starts on, the header being line 1."""
    starts, number = {}, 2
    for item in items:
        starts[number] = item
        number += len(item.lines)
    return starts


@given(file=files, ending=st.sampled_from(["\n", "\r\n", "\r"]))
# Line 3 reads alone as three cells, one more than the header: it was taken for a line of the
# note line 2 opens, and lost.
@example(
    file=(";", [Item("stray", "0", ('0;"',)), Item("stray", "0", ('0;"";"',))], ("Code", "Note")),
    ending="\n",
)
# Line 3 has three cells, as many as the header; read alone, its quote hides two of them.
@example(
    file=(
        ",",
        [Item("stray", "0", ('0,",',)), Item("stray", "0", ('0,",',))],
        ("Code", "Note", "Memo"),
    ),
    ending="\n",
)
# Line 3's quote closes line 2's, and read as the first line of a row, opens its own note.
@example(
    file=(
        ",",
        [Item("stray", "0", ('0,",',)), Item("multiline", "0", ('0,"', '",'))],
        ("Code", "Note", "Memo"),
    ),
    ending="\n",
)
# Line 4 is blank and a line of the note line 3 opens: it is no blank row of the file.
@example(
    file=(
        ",",
        [Item("stray", "0", ('0,"',)), Item("multiline", "0", ('0,"', "", '"'))],
        ("Code", "Note"),
    ),
    ending="\n",
)
def test_every_line_is_read_once_and_no_code_is_changed_or_lost_in_silence(file, ending):
    delimiter, items, titles = file
    if all(item.kind == "blank" for item in items):
        items = [*items, Item("good", "LAST", (f"LAST{delimiter}x",))]
    rows = _read(delimiter, items, ending, titles)
    starts = _starts(items)
    numbers = [n for n, _ in rows]
    last_line = max(starts) + len(starts[max(starts)].lines) - 1

    assert numbers == sorted(set(numbers)), "each line is read once, in order"
    assert set(starts) <= set(numbers), "every row's first line is read"
    assert all(2 <= n <= last_line for n in numbers)
    for number, cells in rows:
        item = starts.get(number)
        if isinstance(cells, tuple):
            # A row read as a row is the row written there, its code as written.
            assert item is not None and item.kind != "blank"
            assert cells[0] == item.code
        elif cells is BLANK_ROW:
            assert item is not None and item.kind == "blank"
        else:
            assert isinstance(cells, UnreadableRow) and cells.reason
    for number, item in starts.items():
        read = dict(rows)[number]
        if item.kind == "good":
            # A plain row is read as written unless a stray quote above it made its lines
            # ambiguous, and then it is rejected, with the reason, never dropped.
            assert read == (item.code, None, None, None, None) or isinstance(read, UnreadableRow)
        if item.kind in ("good", "multiline") and not any(
            i.kind == "stray" for n, i in starts.items() if n < number
        ):
            assert isinstance(read, tuple) and read[0] == item.code


@given(file=files)
# Blank rows above the first code are rows of the file as much as those between codes.
@example(file=(",", [Item("blank", "", ("",)), Item("good", "A1", ("A1,x",))], ("Code", "Note")))
def test_without_stray_quotes_every_row_is_read_exactly(file):
    delimiter, items, titles = file
    items = [item for item in items if item.kind != "stray"] or [
        Item("good", "ONLY", (f"ONLY{delimiter}x",))
    ]
    if all(item.kind == "blank" for item in items):
        items.append(Item("good", "LAST", (f"LAST{delimiter}x",)))

    rows = _read(delimiter, items, "\n", titles)

    expected = [
        (number, BLANK_ROW if item.kind == "blank" else item.code)
        for number, item in _starts(items).items()
    ]
    assert [(n, c if c is BLANK_ROW else c[0]) for n, c in rows] == expected


@given(codes=st.lists(codes, min_size=1, max_size=20), notes=st.lists(wild_notes, max_size=20))
def test_a_file_written_by_the_csv_module_reads_back_exactly(codes, notes):
    output = io.StringIO()
    writer = csv.writer(output)
    writer.writerow(["Code", "Note"])
    for index, code in enumerate(codes):
        writer.writerow([code, notes[index] if index < len(notes) else ""])
    data = output.getvalue().encode()

    table = open_table(io.BytesIO(data), name="codes.csv", size=len(data))

    assert [cells[0] for _, cells in table.rows] == codes
