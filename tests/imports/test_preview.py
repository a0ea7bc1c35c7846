"""Checking a file before importing it: the preview reads it as the worker would and writes
nothing; a staged upload keeps the manager's choices and becomes an import only when started;
a pool remembers the columns chosen for its last upload."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imports.engine import import_run
from imports.models import Import, Rejection, Upload
from imports.preview import Question, file_preview
from imports.readers import ImportFileError
from imports.services import (
    FileQuestion,
    import_file_start,
    upload_choose,
    upload_stage,
    upload_start,
    uploads_clean_stale,
)
from pools.models import Code
from pools.selectors import pool_codes_present
from tests.factories import make_codes, make_pool
from tests.imports.files import csv_upload, xlsx_upload

pytestmark = pytest.mark.django_db

EVERY_KIND_OF_ROW = (
    "Code;Issue-start;Issue-end\n"
    "NEW1;01.01.2026;31.12.2026\n"
    "OLD1;;\n"
    "NEW1;;\n"
    "BAD CODE;;\n"
    "NEW2;2026-05-01;2026-04-01\n"
    "NEW3;;\n"
    "OLD2;;\n"
    "NEW4;someday;\n"
)


def preview_of(pool, upload, **choices):
    return file_preview(pool=pool, file=upload, name=upload.name, size=upload.size, **choices)


def run(job: Import) -> Import:
    import_run(import_id=job.pk)
    job.refresh_from_db()
    return job


def report_counts(job: Import) -> tuple:
    return (
        job.rows_read,
        job.codes_added,
        job.already_in_pool,
        job.duplicates_in_file,
        job.rows_rejected,
        job.rows_skipped,
    )


def preview_counts(preview) -> tuple:
    counts = preview.counts
    return (
        counts.rows_read,
        counts.would_add,
        counts.already_in_pool,
        counts.duplicates_in_file,
        counts.rejected,
        counts.skipped,
    )


def test_preview_counts_are_the_reports_and_it_writes_nothing():
    pool = make_pool()
    make_codes(pool, ["OLD1", "OLD2"])

    preview = preview_of(pool, csv_upload(EVERY_KIND_OF_ROW))

    assert Code.objects.filter(pool=pool).count() == 2
    assert not Import.objects.exists() and not Rejection.objects.exists()
    assert preview.question == ""
    assert preview_counts(preview) == (8, 2, 2, 1, 3, 0)
    job = run(import_file_start(pool=pool, file=csv_upload(EVERY_KIND_OF_ROW)))
    assert report_counts(job) == preview_counts(preview)
    # The rows not added, as the report lists them.
    assert [(r.row_number, r.column, r.value, r.reason) for r in preview.rejected] == [
        (r.row_number, r.column, r.value, r.reason) for r in job.rejections.all()
    ]


@pytest.mark.parametrize("batch", [1, 2, 1000])
def test_a_code_the_pool_holds_is_already_in_it_on_each_of_its_rows_whatever_the_batches(
    batch, settings
):
    """Rows of a code the pool held before are counted the same whether they fall in one batch
    or in several (which cannot know of each other), and as the preview counts them."""
    settings.IMPORT_BATCH_SIZE = batch
    pool = make_pool()
    make_codes(pool, ["OLD1"])
    text = "Code\nOLD1\nNEW\nOLD1\nNEW\nOLD1\n"

    preview = preview_of(pool, csv_upload(text))
    job = run(import_file_start(pool=pool, file=csv_upload(text)))

    assert preview_counts(preview) == report_counts(job) == (5, 1, 3, 1, 0, 0)
    assert [(r.row_number, r.reason) for r in preview.rejected] == [
        (r.row_number, r.reason) for r in job.rejections.all()
    ]
    assert [r.row_number for r in job.rejections.all()] == [5]


def test_preview_shows_the_file_and_the_first_rows_as_they_would_be_stored(settings):
    settings.TIME_ZONE = "UTC"
    pool = make_pool()
    make_codes(pool, ["OLD1"])
    upload = csv_upload(
        "Spring codes\n"
        "Промокод;Действует до;Note\n"
        "NEW1;31.12.2026\n"
        "OLD1;\n"
        "NEW2;2026-03-01 10:00;vip\n"
    )

    preview = preview_of(pool, upload)

    assert (preview.file_format, preview.encoding, preview.encoding_label) == (
        "csv",
        "utf-8",
        "UTF-8",
    )
    assert preview.columns == [
        ("Code", "column A (“Промокод”)"),
        ("Available-till", "column B (“Действует до”)"),
    ]
    assert preview.header == ["Промокод", "Действует до", "Note"]
    assert "The header is on row 2: the row above it was skipped." in preview.notes
    assert "Columns ignored: Note." in preview.notes
    assert [(r.row_number, r.code, r.dates, r.already_in_pool) for r in preview.rows] == [
        (3, "NEW1", (None, None, None, "2026-12-31 23:59:59.999999"), False),
        (4, "OLD1", (None, None, None, None), True),
        (5, "NEW2", (None, None, None, "2026-03-01 10:00:00"), False),
    ]
    assert preview.sampled == ""
    assert preview.can_start


def test_dates_past_already_are_counted_as_expired_on_arrival():
    """Either end passed makes a code dead on arrival: one that can no longer be issued, or no
    longer be redeemed. The preview counts them as the import does."""
    pool = make_pool()
    text = (
        "Code,Issue-end,Available-till\n"
        "A,,2001-01-01\n"
        "B,2001-01-01,2999-01-01\n"
        "C,2999-01-01,2001-01-01\n"
        "D,2999-01-01,2999-01-01\n"
        "E,,\n"
    )

    preview = preview_of(pool, csv_upload(text))

    assert (preview.counts.would_add, preview.counts.expired_on_arrival) == (5, 3)
    job = run(import_file_start(pool=pool, file=csv_upload(text)))
    assert job.codes_expired_on_arrival == 3


def test_a_big_file_is_sampled_and_the_preview_says_so(settings):
    settings.IMPORT_PREVIEW_ROWS = 5_000
    pool = make_pool()
    upload = csv_upload("Code\n" + "".join(f"K{i:07d}\n" for i in range(50_000)))

    preview = preview_of(pool, upload)

    assert preview.counts.rows_read == 5_000
    assert preview.counts.would_add == 5_000
    assert preview.sampled.startswith("Read the first 5,000 rows of about ")
    assert preview.sampled.endswith(" % of the file): the counts are of those.")
    about = int(preview.sampled.split("about ")[1].split(" ")[0].replace(",", ""))
    # Bytes read run a little ahead of the rows (the reading is buffered): about, not exactly.
    assert 35_000 <= about <= 50_000


def test_a_slow_file_is_sampled_by_time(settings, monkeypatch):
    settings.IMPORT_PREVIEW_SECONDS = 0
    pool = make_pool()
    upload = csv_upload("Code\n" + "".join(f"K{i:07d}\n" for i in range(3_000)))

    preview = preview_of(pool, upload)

    assert preview.counts.rows_read == 500  # the clock is read every 500 rows
    assert preview.sampled.startswith("Read the first 500 rows of about ")


def test_the_columns_question_carries_the_first_rows():
    pool = make_pool()
    upload = csv_upload("\nX1;2026-01-01\nX2;2026-02-01\n")

    preview = preview_of(pool, upload)

    assert preview.question == Question.COLUMNS
    assert preview.message.startswith("“codes.csv” has no column of codes")
    assert preview.first_rows == [["X1", "2026-01-01"], ["X2", "2026-02-01"]]
    assert preview.first_row_numbers == [2, 3]
    assert (preview.delimiter, preview.width) == (";", 2)
    assert preview.counts is None and not preview.can_start


def test_two_columns_named_for_the_code_ask_too():
    pool = make_pool()

    preview = preview_of(pool, csv_upload("Code,Promo code\nA,B\n"))

    assert preview.question == Question.COLUMNS
    assert "more than one column for Code" in preview.message


def test_the_date_order_question_carries_its_example():
    pool = make_pool()
    upload = csv_upload("Code,Issue-end\nA,03/04/2026\n")

    preview = preview_of(pool, upload)

    assert (preview.question, preview.example) == (Question.DATE_ORDER, "03/04/2026")
    answered = preview_of(pool, csv_upload("Code,Issue-end\nA,03/04/2026\n"), date_order="mdy")
    assert answered.question == "" and answered.date_order_chosen
    assert answered.rows[0].dates[1] == "2026-03-04 23:59:59.999999"


def test_a_date_readable_one_way_settles_the_order():
    pool = make_pool()

    preview = preview_of(pool, csv_upload("Code,Issue-end\nA,03/04/2026\nB,31/01/2026\n"))

    assert (preview.date_order, preview.date_order_from_file) == ("dmy", True)
    assert preview.rows[0].dates[1].startswith("2026-04-03")


def test_the_encoding_question_carries_the_readings_and_the_answer_is_the_imports():
    pool = make_pool()
    data = "Code\nКОД1\n".encode("cp1251")

    preview = preview_of(pool, SimpleUploadedFile("codes.csv", data))

    assert preview.question == Question.ENCODING
    assert preview.readings == [("cp1251", ["КОД1"]), ("cp1253", ["ΚΞΔ1"])]
    assert preview.message.startswith("“codes.csv” reads as text in more than one encoding")
    with pytest.raises(FileQuestion) as asked:
        import_file_start(pool=pool, file=SimpleUploadedFile("codes.csv", data))
    assert asked.value.question == Question.ENCODING
    greek = preview_of(pool, SimpleUploadedFile("codes.csv", data), encoding="cp1253")
    job = run(
        import_file_start(pool=pool, file=SimpleUploadedFile("codes.csv", data), encoding="cp1253")
    )
    assert (
        [row.code for row in greek.rows]
        == ["ΚΞΔ1"]
        == list(Code.objects.values_list("code", flat=True))
    )
    assert (greek.encoding, greek.encoding_label) == ("cp1253", "Windows-1253 (Greek)")
    assert report_counts(job) == preview_counts(greek)


def test_a_file_without_a_named_code_column_asks_the_columns_before_the_encoding():
    pool = make_pool()
    data = "КОД1;2026-01-01\nКОД2;\n".encode("cp1251")
    upload = upload_stage(pool=pool, file=SimpleUploadedFile("codes.csv", data))

    with upload.file.open("rb") as file:
        columns = preview_of(pool, file)
    upload_choose(upload=upload, preview=columns, header_row=0, columns=(0, None, None, None, 1))
    with upload.file.open("rb") as file:
        encoding = preview_of(pool, file, mapping=upload.column_mapping)

    assert (columns.question, encoding.question) == (Question.COLUMNS, Question.ENCODING)
    assert encoding.readings[0] == ("cp1251", ["КОД1", "КОД2"])


def test_a_file_the_import_would_refuse_raises_its_message():
    with pytest.raises(ImportFileError, match="has a header but no rows"):
        preview_of(make_pool(), csv_upload("Code\n"))


def test_a_chosen_mapping_reads_a_headerless_file_as_the_import_does():
    pool = make_pool()
    text = "X1;2026-01-01\nX2;nope\nX1;\n"
    question = preview_of(pool, csv_upload(text))
    upload = upload_stage(pool=pool, file=csv_upload(text))
    upload_choose(upload=upload, preview=question, header_row=0, columns=(0, 1, None, None, None))

    with upload.file.open("rb") as file:
        preview = preview_of(pool, file, mapping=upload.column_mapping)
    job = run(upload_start(upload=upload))

    assert preview.columns == [("Code", "column A"), ("Issue-start", "column B")]
    assert report_counts(job) == preview_counts(preview) == (3, 1, 0, 1, 1, 0)
    upload.refresh_from_db()
    assert upload.import_job == job
    assert job.file.name == upload.file.name  # the staged file, shared, not copied
    assert job.column_mapping["columns"]["issue_start"] == 1


def test_starting_is_refused_while_a_question_is_open_and_once_started():
    pool = make_pool()
    upload = upload_stage(pool=pool, file=csv_upload("Code,Issue-end\nA,03/04/2026\n"))

    with pytest.raises(ValidationError) as refused:
        upload_start(upload=upload)

    assert refused.value.messages == [
        "Answer the question first, then check the file again: The dates in “codes.csv” (such "
        "as “03/04/2026”) could be day-first or month-first: choose the date order."
    ]
    assert not Import.objects.exists()
    with upload.file.open("rb") as file:
        preview = preview_of(pool, file)
    upload_choose(upload=upload, preview=preview, date_order="dmy")
    upload_start(upload=upload)
    with pytest.raises(ValidationError, match="already been started"):
        upload_start(upload=upload)
    assert Import.objects.get().date_order == "dmy"


def test_staging_refuses_a_file_the_import_would_refuse_and_keeps_one_that_asks():
    pool = make_pool()

    with pytest.raises(ValidationError) as refused:
        upload_stage(pool=pool, file=SimpleUploadedFile("logo.png", b"\x89PNG\r\n" + bytes(99)))

    assert refused.value.message_dict["file"][0].startswith("“logo.png” is not a CSV file")
    assert upload_stage(pool=pool, file=csv_upload("X1,X2\nY1,Y2\n")).file_name == "codes.csv"
    assert Upload.objects.count() == 1


def test_stale_uploads_are_swept_with_their_files_when_a_file_is_staged():
    pool = make_pool()
    old = upload_stage(pool=pool, file=csv_upload("Code\nA\n", name="old.csv"))
    started = upload_stage(pool=pool, file=csv_upload("Code\nB\n", name="started.csv"))
    upload_start(upload=started)
    day_ago = timezone.now() - timedelta(days=1, minutes=1)
    Upload.objects.update(created_at=day_ago)
    storage, path = old.file.storage, old.file.name
    assert storage.exists(path)

    upload_stage(pool=pool, file=csv_upload("Code\nC\n", name="new.csv"))

    assert sorted(Upload.objects.values_list("file_name", flat=True)) == ["new.csv", "started.csv"]
    assert not storage.exists(path)
    assert storage.exists(started.file.name)  # its import reads it
    assert uploads_clean_stale() == 0


def test_a_pool_remembers_the_columns_chosen_for_its_last_upload():
    pool = make_pool()
    first = "Promo;Valid\nA1;2026-01-01\n"
    question = preview_of(pool, csv_upload(first))
    upload = upload_stage(pool=pool, file=csv_upload(first))
    upload_choose(upload=upload, preview=question, header_row=1, columns=(0, None, None, None, 1))
    run(upload_start(upload=upload))

    # The same header titles (case and spaces aside), below a blank line this time.
    same = "\n promo ;VALID\nB1;2026-02-01\nB2;\n"
    preview = preview_of(pool, csv_upload(same))
    job = run(import_file_start(pool=pool, file=csv_upload(same)))

    assert preview.remembered and preview.question == ""
    remembered = "Columns as chosen for this pool's last upload: Code from column A (“promo”), "
    assert preview.notes[0] == remembered + "Available-till from column B (“VALID”)."
    assert report_counts(job) == preview_counts(preview) == (2, 2, 0, 0, 0, 0)
    assert job.message.startswith(remembered)
    assert job.column_mapping["header_row"] == 2
    assert [r.row_number for r in preview.rows] == [3, 4]
    # Other titles: asked, and the Import button does not guess either.
    other = "Promo id;Valid\nC1;2026-01-01\n"
    assert preview_of(pool, csv_upload(other)).question == Question.COLUMNS
    with pytest.raises(FileQuestion):
        import_file_start(pool=pool, file=csv_upload(other))


def test_a_headerless_file_is_read_as_the_last_one_only_with_as_many_columns():
    pool = make_pool()
    first = "A1;2026-01-01\nA2;2026-01-02\n"
    question = preview_of(pool, csv_upload(first))
    upload = upload_stage(pool=pool, file=csv_upload(first))
    upload_choose(upload=upload, preview=question, header_row=0, columns=(0, None, 1, None, None))
    run(upload_start(upload=upload))

    assert preview_of(pool, csv_upload("B1;2026-03-01\n")).remembered
    job = run(import_file_start(pool=pool, file=csv_upload("B1;2026-03-01\nB2;\n")))
    assert (job.codes_added, job.column_mapping["columns"]["issue_end"]) == (2, 1)
    # Three columns, or a header where the dates are: asked.
    three = preview_of(pool, csv_upload("C1;2026-03-01;x\n"))
    titled = preview_of(pool, csv_upload("Promo;Until\nD1;2026-03-01\n"))
    assert three.question == titled.question == Question.COLUMNS


def test_pool_codes_present_names_the_codes_the_pool_holds_exactly():
    pool = make_pool()
    make_codes(pool, ["AB1", "ab2"])
    make_codes(make_pool(), ["ZZ9"])

    assert pool_codes_present(pool, ["AB1", "AB2", "ZZ9", "AB1"]) == {"AB1"}


def test_a_workbook_is_previewed_as_it_is_imported():
    pool = make_pool()
    rows = [["Code", "Available-till"], ["W1", "2026-12-31"], ["W1", None], ["W 2", None]]

    preview = preview_of(pool, xlsx_upload(rows))
    job = run(import_file_start(pool=pool, file=xlsx_upload(rows)))

    assert preview.file_format == "xlsx" and preview.encoding == ""
    assert report_counts(job) == preview_counts(preview) == (3, 1, 0, 1, 1, 0)


# Any small CSV: a header or none, any delimiter, codes, dates, blank lines and junk.
_cells = st.one_of(
    st.sampled_from(["A1", "A2", "B1", "", "BAD CODE", "2026-03-01", "03/04/2026", "31/01/2026"]),
    st.text(st.sampled_from('AZ09 ;,"\t/.-\r\x00Жé'), max_size=8),
)
_lines = st.lists(st.lists(_cells, min_size=1, max_size=4), max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    header=st.sampled_from(["", "Code", "Code;Issue-end", "Code,Available-till", "Promo;Until"]),
    lines=_lines,
    delimiter=st.sampled_from([";", ","]),
    order=st.sampled_from(["", "dmy"]),
)
def test_a_preview_of_any_small_csv_raises_only_file_errors_and_its_counts_add_up(
    header, lines, delimiter, order
):
    pool = make_pool()
    body = "".join(delimiter.join(cells) + "\n" for cells in lines)
    upload = csv_upload((header + "\n" if header else "") + body)
    try:
        preview = preview_of(pool, upload, date_order=order)
    except ImportFileError:
        return
    if preview.counts is not None:
        assert preview.counts.accounted_for == preview.counts.rows_read
