"""Property-based tests: whatever the cells and files hold, the import never fails as a whole
for a row's problem, never loses a valid row, and its counts add up to the rows read."""

import csv
import io
import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from imports.engine import import_run
from imports.models import Import
from imports.readers import (
    BLANK_ROW,
    ColumnsUnclear,
    EncodingUnclear,
    ImportFileError,
    UnreadableRow,
    open_table,
    pick_cells,
    picker,
)
from imports.services import import_file_start
from imports.validation import DUPLICATE_IN_FILE, DateOrder, Rejected, Skipped, clean_row
from pools.code_services.loading import to_datetime
from pools.models import Code
from tests.factories import make_pool
from tests.imports.files import xlsx_bytes

TZ = ZoneInfo("Europe/Moscow")

# Any text: every code point, lone surrogates, NUL and control characters, any length.
any_text = st.text(st.characters(codec=None), max_size=300) | st.text(
    st.sampled_from("\x00\x01\x1f\x7f\ud800\udfff\ufffd \t\r\n\"';,/.-:0123456789AbZяЖ€"),
    max_size=40,
)
codes = st.text(st.sampled_from("ABCXYZ0123456789-_"), min_size=1, max_size=8)
date_texts = st.sampled_from(
    [
        "2026-03-01",
        "2026-03-01 10:00",
        "01.03.2026",
        "31.12.2026 23:59",
        "01/31/26",
        "31/01/2026",
        "03/04/2026",
        "1/31/2026 9:30 AM",
        "9999-12-31",
        "0001-01-01",
        "13/13/2026",
        "",
    ]
)
# What Excel leaves in a cell: an error, a code in scientific notation, one turned into a date.
excel_texts = st.sampled_from(
    ["#N/A", "#DIV/0!", "1.23457E+11", "1,2E-05", "2E10", "1-Mar-10", "Mar-10", "12:30 PM", "0:60"]
)
cells = st.one_of(
    st.none(),
    any_text,
    codes,
    date_texts,
    excel_texts,
    st.integers(min_value=-(10**30), max_value=10**30),
    st.integers(min_value=-(2**54), max_value=2**54),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.dates(),
    st.datetimes(),
    st.times(),
    st.timedeltas(),
)


@given(row=st.tuples(cells, cells, cells, cells, cells), order=st.sampled_from(["", "dmy", "mdy"]))
@example(row=("A\x00B", None, None, None, None), order="")
@example(row=("A", "2" * 5000, None, None, None), order="")
@example(row=("A", None, "9999-12-31", None, None), order="")
@example(row=("\ud800", "\ud800" * 300, None, None, None), order="")
@example(row=(10**5000, None, None, None, None), order="")  # past str()'s 4,300 digits
@example(row=("A", "1" * 10_000_000, None, None, None), order="")
@example(row=BLANK_ROW, order="")
@example(
    row=("A", "31/01/2026" + " " * 85 + "10:00", "01/31/2026" + " " * 85 + "10:00", None, None),
    order="",
)
@example(row=UnreadableRow("Bad.", column="Code", value="\x00" * 300), order="")
def test_clean_row_never_raises_and_rejects_with_a_storable_reason(row, order):
    result = clean_row(3, row, TZ, DateOrder(order))

    if isinstance(result, Rejected):
        assert result.reason and len(result.reason) <= 255
        assert len(result.value) <= 101
        assert "\x00" not in result.value
        result.value.encode("utf-8")  # no lone surrogate left: a database can store it
        result.reason.encode("utf-8")
    elif isinstance(result, Skipped):
        assert result.row_number == 3 and result.reason
    else:
        number, code, *dates = result
        assert number == 3 and code and code.isprintable() and len(code) <= 100
        for value in dates:
            assert value is None or datetime.fromisoformat(value)


# A code as a person types one: letters, digits, - and _. Those that Excel would take for a
# number in scientific notation or for a date or time, and the template's example code, are
# left out: what remains must come back unchanged.
_EXCEL_WOULD_TAKE = re.compile(
    r"[+-]?\d+[eE][+-]\d+"  # 1E+11
    r"|\d{4}-\d{1,2}-\d{1,2}"  # 2010-03-01
    r"|\d{1,2}-[A-Z][a-z]{2}(-\d{2}|-\d{4})?"  # 1-Mar, 1-Mar-10
    r"|[A-Z][a-z]{2}-(\d{2}|\d{4})"  # Mar-10
)
typable_codes = st.text(
    st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
    min_size=1,
    max_size=100,
).filter(lambda code: not _EXCEL_WOULD_TAKE.fullmatch(code) and code != "SPRING-7KQ2")


@given(code=typable_codes, order=st.sampled_from(["", "dmy", "mdy"]))
@example(code="MAR-10", order="")
@example(code="SPRING-2027", order="")
@example(code="2027A", order="")
@example(code="2E10", order="")
@example(code="1-2", order="")
@example(code="2027-13-40", order="")
def test_a_typable_code_comes_back_unchanged(code, order):
    assert clean_row(2, (code, None, None, None, None), TZ, DateOrder(order)) == (
        2,
        code,
        None,
        None,
        None,
        None,
    )


@given(
    numbers=st.lists(
        st.one_of(
            st.integers(min_value=10**15, max_value=2**53 + 10),
            st.integers(min_value=2**53 - 10, max_value=10**25),
            st.integers(min_value=-(2**53), max_value=-(10**15)),
        ),
        min_size=1,
        max_size=20,
    )
)
@example(numbers=[1234567890123456789, 1234567890123450, 1234567890123456, 2**53 - 1, 2**53])
@settings(max_examples=50, deadline=None)
def test_a_number_past_15_digits_from_an_xlsx_is_rejected_or_kept_exactly(numbers):
    """Excel keeps 15 digits: a longer number from a workbook is never stored as another code."""
    data = xlsx_bytes([("Code",), *[(number,) for number in numbers]])

    table = open_table(io.BytesIO(data), name="codes.xlsx", size=len(data))
    results = [clean_row(row_number, cells, TZ) for row_number, cells in table.rows]

    assert len(results) == len(numbers)
    for number, result in zip(numbers, results, strict=True):
        if not isinstance(result, Rejected):
            assert result[1] == str(number)
        elif abs(number) < 2**53 and str(abs(number))[15:].strip("0"):
            pytest.fail(f"{number} was written exactly and is rejected: {result.reason}")


def _csv_bytes(rows, encoding="utf-8", delimiter=","):
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(["Code", "Issue-start", "Issue-end", "Available-from", "Available-till"])
    writer.writerows(rows)
    return out.getvalue().encode(encoding, errors="replace")


@given(data=st.binary(max_size=3000), name=st.sampled_from(["codes.csv", "codes.xlsx", "x.ods"]))
@settings(max_examples=300)
def test_any_bytes_are_rows_or_one_clear_file_message(data, name):
    try:
        table = open_table(io.BytesIO(data), name=name, size=len(data))
        for number, row in table.rows:
            clean_row(number, row, TZ)
    except ImportFileError as error:
        assert str(error).startswith(f"“{name}”")


@given(
    body=st.binary(max_size=2000),
    encoding=st.sampled_from(["utf-8", "utf-16", "cp1251"]),
)
@example(body=b"\x88;", encoding="utf-8")  # "ˆ" in Windows-1252, "€" in Windows-1251
@example(body=b"\xe5;", encoding="utf-8")
@example(body=b"\x80;\xc0", encoding="utf-8")
def test_a_header_then_any_bytes_never_fails_as_a_whole_but_for_no_rows_or_binary(body, encoding):
    data = "Code;Issue-end\n".encode(encoding) + body

    def whole_file_refusal(error: ImportFileError) -> bool:
        message = str(error)
        return "no rows" in message or "is not a CSV file" in message or "no Code" in message

    # As the worker reads it (nobody to ask): rows, or a refusal of the whole file.
    try:
        rows = list(open_table(io.BytesIO(data), name="codes.csv", size=len(data), ask=False).rows)
    except ImportFileError as error:
        assert whole_file_refusal(error), error
    else:
        for number, row in rows:
            assert not isinstance(clean_row(number, row, TZ), Exception)
    # As the upload page reads it, a question (which encoding, which columns) may come first.
    try:
        open_table(io.BytesIO(data), name="codes.csv", size=len(data))
    except (EncodingUnclear, ColumnsUnclear):
        pass
    except ImportFileError as error:
        assert whole_file_refusal(error), error


def _expected_rows(rows):
    """The rows a reader yields: those with a cell that is not blank."""
    return [r for r in rows if any(str(c).strip() for c in r)]


row_cells = st.tuples(
    codes | any_text.filter(lambda t: not any("\ud800" <= ch <= "\udfff" for ch in t)),
    date_texts,
    date_texts,
    date_texts,
    date_texts,
)


@pytest.mark.django_db
@given(
    rows=st.lists(row_cells, min_size=1, max_size=40),
    existing=st.lists(codes, max_size=5),
    delimiter=st.sampled_from([",", ";", "\t"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]),
    batch=st.integers(min_value=1, max_value=7),
)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_import_of_any_rows_adds_every_valid_row_and_counts_add_up(
    rows, existing, delimiter, encoding, batch, settings_batch
):
    settings_batch(batch)
    pool = make_pool()
    Code.objects.bulk_create([Code(pool=pool, code=c) for c in set(existing)])
    data = _csv_bytes(rows, encoding=encoding, delimiter=delimiter)
    if not _expected_rows(rows):
        # Nothing but blank rows: the upload itself is refused, the file fixed and sent again.
        with pytest.raises(ValidationError, match="has a header but no rows"):
            import_file_start(pool=pool, file=csv_upload_bytes(data), date_order="dmy")
        return
    # Cells read back as written (NUL and undecodable bytes become U+FFFD on the way).
    table = open_table(io.BytesIO(data), name="c.csv", size=len(data), ask=False)
    read_back = list(table.rows)

    job = import_file_start(pool=pool, file=csv_upload_bytes(data), date_order="dmy")
    import_run(import_id=job.pk)
    job.refresh_from_db()

    assert job.status != Import.Status.FAILED, job.message
    assert job.rows_read == len(read_back)
    assert job.rows_read == job.rows_accounted_for
    assert job.rejections.count() == job.rows_not_added
    # Each row's fate, as clean_row and the file's order say: the first row of a valid code is
    # added (or found in the pool) with its own dates; a later one is a duplicate in its row;
    # a bad row is rejected in its row, for its reason.
    tz, order = timezone.get_current_timezone(), DateOrder("dmy")
    first: dict[str, tuple] = {}
    not_added = set()
    for number, cells in read_back:
        result = clean_row(number, cells, tz, order)
        if isinstance(result, Rejected):
            not_added.add((number, result.reason))
        elif isinstance(result, tuple) and result[1] in first:
            if result[1] not in existing:  # else already in the pool, on each of its rows
                not_added.add((number, DUPLICATE_IN_FILE))
        elif isinstance(result, tuple):
            first[result[1]] = result
    assert set(job.rejections.values_list("row_number", "reason")) == not_added
    stored = {
        code.code: (code.issue_start, code.issue_end, code.available_from, code.available_till)
        for code in Code.objects.filter(pool=pool)
    }
    assert set(first) <= set(stored)
    assert job.codes_added == len(set(first) - set(existing))
    for code, row in first.items():
        if code not in existing:
            assert stored[code] == tuple(to_datetime(text, tz) for text in row[2:]), row


def csv_upload_bytes(data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("codes.csv", data, content_type="text/csv")


@pytest.fixture
def settings_batch(settings):
    def set_batch(size):
        settings.IMPORT_BATCH_SIZE = size

    return set_batch


@pytest.mark.django_db
@given(rows=st.lists(st.tuples(cells, cells), min_size=1, max_size=15))
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_xlsx_of_any_cells_never_fails_as_a_whole(rows):
    def writable(value):
        if isinstance(value, str):
            # What a spreadsheet can hold at all: no control characters or lone surrogates.
            value = "".join(c for c in value if c.isprintable() and not "\ud800" <= c <= "\udfff")
            return value.lstrip("=")[:1000]
        if isinstance(value, float) and value != value:
            return None
        if isinstance(value, datetime | date) and value.year < 1900:
            return None
        if isinstance(value, int) and abs(value) > 10**15:
            return None
        if isinstance(value, float) and abs(value) > 1e300:
            return None
        return value

    clean = [tuple(writable(v) for v in row) for row in rows]
    data = xlsx_bytes([("Code", "Available-till"), *clean])
    pool = make_pool()
    from django.core.files.uploadedfile import SimpleUploadedFile

    job = import_file_start(pool=pool, file=SimpleUploadedFile("codes.xlsx", data), inspect=False)
    import_run(import_id=job.pk)
    job.refresh_from_db()

    if job.status == Import.Status.FAILED:
        assert "has a header but no rows" in job.message, job.message
    else:
        assert job.rows_read == job.rows_accounted_for


@pytest.mark.django_db
@given(
    body=st.binary(max_size=1500),
    lines=st.lists(any_text, max_size=8),
    encoding=st.sampled_from(["utf-8", "utf-16", "cp1251", "latin-1"]),
)
@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_import_of_mixed_encodings_and_random_bytes_counts_every_row(body, lines, encoding):
    text = "\n".join(lines)
    data = "Code,Issue-end\n".encode(encoding) + text.encode(encoding, "replace") + body
    try:
        table = open_table(io.BytesIO(data), name="c.csv", size=len(data), ask=False)
        expected = sum(1 for _ in table.rows)
    except ImportFileError:
        expected = None
    pool = make_pool()

    job = import_file_start(pool=pool, file=csv_upload_bytes(data), date_order="dmy", inspect=False)
    import_run(import_id=job.pk)
    job.refresh_from_db()

    if expected is None:
        assert job.status == Import.Status.FAILED and job.needs_new_file
    else:
        assert job.status != Import.Status.FAILED, job.message
        assert job.rows_read == expected
        assert job.rows_read == job.rows_accounted_for
        assert Code.objects.filter(pool=pool).count() == job.codes_added


@given(
    row=st.lists(st.one_of(st.none(), st.text(max_size=3)), max_size=8),
    indexes=st.lists(
        st.one_of(st.none(), st.integers(min_value=0, max_value=9)), min_size=5, max_size=5
    ),
)
def test_the_fast_picker_picks_what_pick_picks(row, indexes):
    """A CSV's rows go through picker (an itemgetter over the padded row); it must take the
    same cells as pick_cells, short rows and absent columns included."""
    assert picker(indexes)(row) == pick_cells(row, indexes)
    assert picker(indexes)(tuple(row)) == pick_cells(row, indexes)
