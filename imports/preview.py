"""Read a file as its import would, writing nothing: what "Check the file" shows before an
import starts, and the columns a pool remembers for its next upload.

The preview opens the file with the arguments the worker passes (engine._run_rows), but for
`ask`: where the worker would read a CSV of doubtful encoding the likelier way, the preview
asks which (the answer is then the import's `encoding`). It settles
the date order as the upload's look does (inspection.date_order_found), cleans each row of a
bounded sample with clean_row and one DateOrder, finds the duplicates inside the file with a
set, and asks the database which of the sample's codes the pool holds: its counts are the
report's for those rows, and add up the same way (rows read = would add + already in the pool
+ duplicates inside the file + rejected + skipped).

When the file raises a question (which columns, which encoding, which date order) the preview
carries it instead of counts, with what the manager needs to answer it.
"""

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from pools.models import Pool
from pools.selectors import pool_codes_present

from .cells import shown
from .column_choices import (
    columns_read,
    file_width,
    first_row_numbers,
    remembered_mapping,
)
from .encodings import encoding_name
from .headers import ColumnMapping, title_text
from .inspection import AmbiguousDates, date_order_found, sheets_loadable
from .readers import ColumnsUnclear, EncodingUnclear, count_text, field_titles, open_table
from .validation import (
    DUPLICATE_IN_FILE,
    TEMPLATE_EXAMPLE,
    DateOrder,
    Rejected,
    Skipped,
    clean_row,
)

# The rows to be stored, and the rows not added, that a preview shows.
ROWS_SHOWN = 10
# How often (in rows) the sample looks at the clock.
_CLOCK_EVERY = 500

# The import's own note (engine._run_rows), said the same way.
COLUMNS_IGNORED = _("Columns ignored: {columns}.")
WORKBOOK_NOT_READ = _(
    "“{name}” is a workbook too large to read while you wait: the import reads it all, and its "
    "report gives the counts."
)


class Question:
    """What a file asks the manager before it can be imported."""

    COLUMNS = "columns"
    ENCODING = "encoding"
    DATE_ORDER = "date_order"


@dataclass
class Counts:
    """The counts an import of the rows read would report."""

    rows_read: int = 0
    would_add: int = 0
    already_in_pool: int = 0
    duplicates_in_file: int = 0
    rejected: int = 0
    skipped: int = 0
    # Of would_add: codes whose Issue-end or Available-till has passed already.
    expired_on_arrival: int = 0

    @property
    def accounted_for(self) -> int:
        """Every row read counts once here: equal to rows_read, as in the report."""
        return (
            self.would_add
            + self.already_in_pool
            + self.duplicates_in_file
            + self.rejected
            + self.skipped
        )


@dataclass
class PreviewRow:
    """A row as it would be stored: the code, and its dates as clean_row gives them (naive ISO
    8601 text in the project's time zone)."""

    row_number: int
    code: str
    dates: tuple
    already_in_pool: bool = False


@dataclass
class Preview:
    file_name: str
    file_size: int
    file_format: str = ""
    # The codec a CSV is read with, and its name as a manager knows it.
    encoding: str = ""
    encoding_label: str = ""
    date_order: str = ""
    date_order_chosen: bool = False
    # The order was settled by a date of the file that reads one way only.
    date_order_from_file: bool = False
    # (template column, "column B (“Promo code”)") for each column read.
    columns: list[tuple[str, str]] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    counts: Counts | None = None
    rows: list[PreviewRow] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    # Said when only the first part of the file was read (_sampled).
    sampled: str = ""
    # Said when the file could not be read while the manager waits (WORKBOOK_NOT_READ).
    not_read: str = ""
    # A Question, and its message; "" when the file can be imported as it is.
    question: str = ""
    message: str = ""
    # To choose columns from: the file's first rows (a header, if any, among them), the row
    # number of each, and how the file's cells are split.
    first_rows: list[list[str]] = field(default_factory=list)
    first_row_numbers: list[int] = field(default_factory=list)
    delimiter: str = ""
    sheet: str = ""
    # The encoding question: [(codec, [codes read that way])].
    readings: list[tuple[str, list[str]]] = field(default_factory=list)
    # The date order question: a date that reads both ways.
    example: str = ""
    # The columns read (found from the header, chosen, or remembered), and whether they are
    # the pool's last upload's.
    mapping: ColumnMapping | None = None
    remembered: bool = False

    @property
    def width(self) -> int:
        """The number of columns of the file's first rows."""
        return file_width(self.first_rows)

    @property
    def can_start(self) -> bool:
        return not self.question

    @property
    def date_order_text(self) -> str:
        if not self.date_order:
            return gettext("None: no slashed date in the file reads one way only")
        name = DateOrder.NAMES[self.date_order]
        if self.date_order_chosen:
            return gettext("{order}, as chosen").format(order=name).capitalize()
        return gettext("{order}, as the file's dates say").format(order=name).capitalize()


def file_preview(
    *,
    pool: Pool,
    file: BinaryIO,
    name: str,
    size: int,
    encoding: str = "",
    date_order: str = "",
    mapping: ColumnMapping | dict | None = None,
) -> Preview:
    """Return what importing `file` into `pool` would do, reading it as the worker would with
    these choices (`mapping` as a ColumnMapping or as the import stores it), and writing
    nothing.

    Files larger than IMPORT_PREVIEW_ROWS rows, or slower to read than IMPORT_PREVIEW_SECONDS,
    are sampled from the top, and the preview says so. A question (Question) is returned in
    the preview; any other problem of the file as a whole raises ImportFileError, with the
    message the import would fail with. Without a `mapping`, a file whose header does not name
    its columns is read with the pool's last chosen columns when they fit (remembered_mapping).
    """
    preview = Preview(
        file_name=name, file_size=size, date_order=date_order, date_order_chosen=bool(date_order)
    )
    try:
        _read(preview, pool=pool, file=file, encoding=encoding, chosen=_as_mapping(mapping))
    except EncodingUnclear as unclear:
        # Asked once the columns are known (by the header, or chosen): the codes differ.
        preview.question, preview.message = Question.ENCODING, str(unclear)
        preview.readings = list(unclear.readings)
    finally:
        file.seek(0)
    return preview


def _read(preview: Preview, *, pool, file, encoding: str, chosen: ColumnMapping | None) -> None:
    name, size = preview.file_name, preview.file_size
    load = sheets_loadable(file, size=size)
    # First as the file is, unmapped: its header, or its first rows to choose columns from.
    try:
        table = open_table(file, name=name, size=size, encoding=encoding, load_sheets=load)
    except ColumnsUnclear as unclear:
        file.seek(0)
        table = None
        preview.first_rows = [list(row) for row in unclear.first_rows]
        preview.first_row_numbers = first_row_numbers(unclear)
        preview.delimiter, preview.sheet = unclear.delimiter, unclear.sheet
        if chosen is None:
            chosen = remembered_mapping(
                pool=pool,
                file=file,
                name=name,
                size=size,
                encoding=encoding,
                unclear=unclear,
                numbers=preview.first_row_numbers,
            )
            preview.remembered = chosen is not None
        if chosen is None:
            preview.question, preview.message = Question.COLUMNS, str(unclear)
            return
    else:
        found = table.mapping
        if found is not None:
            preview.delimiter, preview.sheet = found.delimiter, found.sheet
            if found.header_row:
                preview.first_rows = [[title_text(t) for t in found.titles]]
                preview.first_row_numbers = [found.header_row]
    if table is None or chosen is not None:
        file.seek(0)
        table = open_table(
            file, name=name, size=size, encoding=encoding, load_sheets=load, mapping=chosen
        )
    preview.file_format = table.file_format
    preview.encoding = table.encoding
    preview.encoding_label = encoding_name(table.encoding) if table.encoding else ""
    preview.mapping = table.mapping
    if table.mapping is not None:
        preview.columns = columns_read(table.mapping)
        if table.mapping.header_row:
            preview.header = [title_text(t) for t in table.mapping.titles]
    if table.file_format != "csv" and not load:
        preview.not_read = WORKBOOK_NOT_READ.format(name=name)
        return
    rows, complete = _sample(table)
    if not complete:
        preview.sampled = _sampled(len(rows), table)
    order = preview.date_order
    if not order:
        try:
            order = date_order_found(iter(rows), name=name)
        except AmbiguousDates as error:
            preview.question, preview.message = Question.DATE_ORDER, str(error)
            preview.example = error.example
            return
        preview.date_order, preview.date_order_from_file = order, bool(order)
    example_skipped = _count(
        preview, pool=pool, rows=rows, order=order, titles=field_titles(table.mapping)
    )
    # The report's notes, in its order: the import's own note, then the reader's.
    if table.ignored_columns and not preview.remembered:
        preview.notes.append(COLUMNS_IGNORED.format(columns=", ".join(table.ignored_columns)))
    preview.notes += [note for note in table.notes if note not in preview.notes]
    if example_skipped:
        preview.notes.append(str(TEMPLATE_EXAMPLE))


def _sample(table) -> tuple[list, bool]:
    """Return the first rows of the table, as many as the settings allow, and whether they are
    all of them."""
    limit = settings.IMPORT_PREVIEW_ROWS
    deadline = time.monotonic() + settings.IMPORT_PREVIEW_SECONDS
    rows = []
    for row in table.rows:
        rows.append(row)
        if len(rows) >= limit or (len(rows) % _CLOCK_EVERY == 0 and time.monotonic() > deadline):
            return rows, next(table.rows, None) is None
    return rows, True


def _sampled(count: int, table) -> str:
    # A CSV's progress is in bytes read (a little ahead of the rows: the reading is buffered),
    # a sheet's in rows: either way a share of the whole.
    share = min(table.progress() / table.total, 1.0) if table.total else 1.0
    estimate = max(round(count / share), count + 1) if share else count + 1
    percent = gettext("under 1 %") if share < 0.01 else f"{round(share * 100)} %"
    return ngettext(
        "Read the first {rows} row of about {total} ({percent} of the file): the counts are of "
        "that row.",
        "Read the first {rows} rows of about {total} ({percent} of the file): the counts are of "
        "those.",
        count,
    ).format(rows=count_text(count), total=count_text(_rounded(estimate)), percent=percent)


def _rounded(number: int) -> int:
    """Round an estimate to two significant digits: 1,234,567 is about 1,200,000."""
    digits = len(str(number))
    return round(number, -(digits - 2)) if digits > 2 else number


def _count(preview: Preview, *, pool: Pool, rows: list, order: str, titles: tuple) -> bool:
    """Fill in the counts, the first rows to store and the first rows not added, as the worker
    would find them; return whether the template's example row was skipped."""
    tz = timezone.get_current_timezone()
    dates = DateOrder(order)
    counts = preview.counts = Counts(rows_read=len(rows))
    seen: set[str] = set()
    clean: list[tuple] = []
    # Rejected rows and rows of a code in an earlier row, in row order.
    not_added: list = []
    example_skipped = False
    for row_number, cells in rows:
        row = clean_row(row_number, cells, tz, dates, titles)
        if isinstance(row, Skipped):
            counts.skipped += 1
            example_skipped = example_skipped or row.reason == TEMPLATE_EXAMPLE
        elif isinstance(row, Rejected):
            counts.rejected += 1
            not_added.append(row)
        elif row[1] in seen:
            not_added.append(row)
        else:
            seen.add(row[1])
            clean.append(row)
    present = pool_codes_present(pool, seen)
    counts.already_in_pool = len(present)
    counts.would_add = len(clean) - len(present)
    for row in not_added:
        if isinstance(row, Rejected):
            _keep(preview.rejected, row)
        elif row[1] in present:
            # As the loader finds them: a code the pool holds is already in it on every row.
            counts.already_in_pool += 1
        else:
            # The same code in an earlier row of the file.
            counts.duplicates_in_file += 1
            duplicate = Rejected(row[0], titles[0], shown(row[1]), str(DUPLICATE_IN_FILE), ())
            _keep(preview.rejected, duplicate)
    now = timezone.now()
    for row in clean:
        if row[1] in present:
            continue
        if any(_moment(text, tz) < now for text in (row[3], row[5]) if text):
            counts.expired_on_arrival += 1
    preview.rows = [
        PreviewRow(row[0], row[1], tuple(row[2:]), row[1] in present) for row in clean[:ROWS_SHOWN]
    ]
    return example_skipped


def _keep(shown_rows: list, row) -> None:
    if len(shown_rows) < ROWS_SHOWN:
        shown_rows.append(row)


def _moment(text: str, tz) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


def _as_mapping(mapping: ColumnMapping | dict | None) -> ColumnMapping | None:
    """The mapping as the worker reads it back from the import (ColumnMapping.from_json)."""
    if isinstance(mapping, ColumnMapping):
        mapping = mapping.as_json()
    return ColumnMapping.from_json(mapping) if mapping else None


def chosen_mapping(preview: Preview, *, header_row: int, columns: tuple) -> dict:
    """Return the mapping the manager chose on the preview of this file, as an import keeps it:
    `header_row` one of preview.first_row_numbers (0 for none), `columns` the index of each
    template column's column (None for none). The file's width is kept with it, by which a
    later file without a header is known for the same kind (remembered_mapping)."""
    titles: tuple = ()
    if header_row:
        titles = tuple(preview.first_rows[preview.first_row_numbers.index(header_row)])
    mapping = ColumnMapping(
        header_row, tuple(columns), titles, True, preview.delimiter, preview.sheet
    )
    return {**mapping.as_json(), "width": preview.width}
