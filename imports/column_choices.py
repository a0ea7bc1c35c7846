"""The columns of a file whose header does not name them: as the manager chooses them on the
preview, and as a pool remembers them for its next upload of the same kind of file.

A chosen mapping is kept on the upload and on its import as headers.ColumnMapping.as_json()
plus the file's number of columns ("width"), by which a later file without a header is known
for the same kind.
"""

from dataclasses import replace

from pools.models import Pool

from .cells import shown
from .headers import TEMPLATE_COLUMN_NAMES, ColumnMapping, header_key, title_text
from .readers import COLUMN_LETTER, COLUMN_LETTER_TITLED, ColumnsUnclear, column_letter
from .selectors import last_chosen_columns
from .validation import DateOrder, parse_datetime


def column_label(index: int, titles=()) -> str:
    """A column as the report names it: "column B (“Promo code”)"."""
    title = title_text(titles[index]) if index < len(titles) else ""
    if title:
        title = shown(title, limit=60)
        return COLUMN_LETTER_TITLED.format(letter=column_letter(index), title=title)
    return COLUMN_LETTER.format(letter=column_letter(index))


def columns_read(mapping: ColumnMapping) -> list[tuple[str, str]]:
    """Return (template column, its column in the file) for each column the mapping reads."""
    titles = mapping.titles if mapping.header_row else ()
    return [
        (str(TEMPLATE_COLUMN_NAMES[position]), column_label(index, titles))
        for position, index in enumerate(mapping.columns)
        if index is not None
    ]


def file_width(first_rows) -> int:
    """Return the number of columns of a file's first rows (empty cells at a row's end aside)."""
    return max((len(_trimmed(row)) for row in first_rows), default=0) or 1


def first_row_numbers(unclear: ColumnsUnclear) -> list[int]:
    """Return the row numbers of the first rows a ColumnsUnclear shows."""
    return list(unclear.numbers)


def remembered_mapping(
    *,
    pool: Pool,
    file,
    name: str,
    size: int,
    encoding: str,
    unclear: ColumnsUnclear,
    numbers: list[int] | None = None,
) -> ColumnMapping | None:
    """Return the columns chosen for the pool's last upload with a choice, if they fit this
    file, whose header names no columns (`unclear`): the same header titles among its first
    rows (compared as headers are: case, spaces and punctuation aside), or, both without a
    header, as many columns and a first row that reads as data. Else None: the manager is
    asked. `numbers` are the first rows' numbers, if they were found already."""
    last = last_chosen_columns(pool)
    rows = [_keys(row) for row in unclear.first_rows]
    if not last or not rows:
        return None
    mapping = ColumnMapping.from_json(last)
    if mapping.header_row:
        wanted = _keys(mapping.titles)
        if not any(wanted) or wanted not in rows:
            return None
        if numbers is None:
            numbers = first_row_numbers(unclear)
        index = rows.index(wanted)
        if index >= len(numbers):
            return None
        header_row, titles = numbers[index], tuple(unclear.first_rows[index])
    else:
        if file_width(unclear.first_rows) != last.get("width") or _first_row_is_a_header(
            unclear.first_rows, mapping
        ):
            return None
        header_row, titles = 0, ()
    return replace(
        mapping,
        remembered=True,
        header_row=header_row,
        titles=titles,
        delimiter=unclear.delimiter,
        sheet=unclear.sheet,
    )


def _trimmed(row) -> list[str]:
    cells = [title_text(cell) for cell in row]
    while cells and not cells[-1]:
        cells.pop()
    return cells


def _keys(row) -> list[str]:
    keys = [header_key(title_text(cell)) for cell in row]
    while keys and not keys[-1]:
        keys.pop()
    return keys


def _first_row_is_a_header(first_rows: list, mapping: ColumnMapping) -> bool:
    """Whether the first row holds titles where the mapping reads dates: a header that a file
    of the same kind without one does not have."""
    first = first_rows[0]
    for index in mapping.columns[1:]:
        value = title_text(first[index]) if index is not None and index < len(first) else ""
        if value and not _reads_as_date(value):
            return True
    return False


def _reads_as_date(text: str) -> bool:
    for order in (DateOrder.DAY_FIRST, DateOrder.MONTH_FIRST):
        try:
            parse_datetime(text, end=False, order=DateOrder(order))
        except (ValueError, TypeError, OverflowError):
            continue
        return True
    return False


def guess_columns(preview) -> tuple[int, tuple]:
    """Return the header row and the columns to offer first on a preview (a preview.Preview):
    the columns read, or, when the file asks, a guess from its first rows. The manager
    corrects it; nothing is read this way without being shown."""
    mapping = preview.mapping
    if mapping is not None:
        return mapping.header_row, tuple(mapping.columns)
    rows, numbers = preview.first_rows, preview.first_row_numbers
    if not rows or not numbers:
        return 0, (0, None, None, None, None)
    header = len(rows) > 1 and _titles_above_values(rows[0], rows[1])
    data = rows[1] if header else rows[0]
    code = next((i for i, cell in enumerate(data) if cell and not _reads_as_date(cell)), 0)
    return (numbers[0] if header else 0), (code, None, None, None, None)


def _titles_above_values(first: list, second: list) -> bool:
    """Whether the first row reads as titles over the second: a cell without a digit above a
    cell with one ("Expires" over "31.12.2026")."""
    return any(
        title and not any(c.isdigit() for c in title) and any(c.isdigit() for c in value)
        for title, value in zip(first, second, strict=False)
    )
