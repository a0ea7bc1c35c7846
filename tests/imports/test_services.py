import string
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from imports import engine
from imports.engine import RunOutcome, import_run
from imports.generation import DEFAULT_ALPHABET, CodeFormat, generate_codes
from imports.models import Import
from imports.selectors import generation_allowed
from imports.services import (
    import_file_start,
    import_generate_start,
    import_rerun,
    import_text_start,
)
from pools.code_services import loading as loader
from pools.jobs import jobs_recover
from pools.models import Code
from tests.factories import counts, make_codes, make_pool
from tests.imports.files import csv_upload, xlsx_upload

pytestmark = pytest.mark.django_db


def run(job: Import) -> Import:
    import_run(import_id=job.pk)
    job.refresh_from_db()
    return job


def test_upload_is_queued_and_enqueued_after_commit(django_capture_on_commit_callbacks):
    pool = make_pool()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        job = import_file_start(pool=pool, file=csv_upload("Code\nA1\nA2\n"))
        assert Import.objects.get().status == Import.Status.QUEUED

    assert callbacks  # the run was queued only once the upload's transaction committed
    job.refresh_from_db()
    assert (job.status, job.codes_added) == (Import.Status.COMPLETED, 2)


def test_import_report_counts_every_kind_of_row():
    pool = make_pool()
    make_codes(pool, ["OLD1"])
    upload = csv_upload(
        "Code;Issue-start;Issue-end\n"
        "NEW1;01.01.2026;31.12.2026\n"
        "OLD1;;\n"
        "NEW1;;\n"
        "BAD CODE;;\n"
        "NEW2;2026-05-01;2026-04-01\n"
        "NEW3;;\n"
    )

    job = run(import_file_start(pool=pool, file=upload))

    assert job.status == Import.Status.COMPLETED_WITH_ERRORS
    assert (job.rows_read, job.codes_added, job.duplicates_in_file, job.already_in_pool) == (
        6,
        2,
        1,
        1,
    )
    assert (job.rows_rejected, job.rows_skipped, job.rows_accounted_for) == (2, 0, 6)
    assert [(r.row_number, r.column, r.reason) for r in job.rejections.all()] == [
        (4, "Code", "The same code is in an earlier row."),
        (
            5,
            "Code",
            "The code has a space at position 4, which cannot be part of a code: remove it.",
        ),
        (6, "Issue-end", "The Issue-end date is before the Issue-start date."),
    ]
    assert set(Code.objects.filter(pool=pool).values_list("code", flat=True)) == {
        "OLD1",
        "NEW1",
        "NEW3",
    }
    assert counts(pool) == (3, 0, 0)
    new1 = Code.objects.get(code="NEW1")
    assert new1.issue_start.isoformat() == "2026-01-01T00:00:00+00:00"
    assert new1.issue_end.isoformat() == "2026-12-31T23:59:59.999999+00:00"


def test_reuploading_the_same_file_adds_nothing_and_loses_nothing():
    pool = make_pool()
    text = "Code\n" + "".join(f"C{i}\n" for i in range(50))

    first = run(import_file_start(pool=pool, file=csv_upload(text)))
    second = run(import_file_start(pool=pool, file=csv_upload(text)))

    assert (first.codes_added, second.codes_added, second.already_in_pool) == (50, 0, 50)
    assert second.status == Import.Status.COMPLETED
    assert Code.objects.count() == 50
    assert counts(pool) == (50, 0, 0)


def test_duplicates_across_batches_are_found(settings):
    settings.IMPORT_BATCH_SIZE = 3
    pool = make_pool()
    upload = csv_upload("Code\nA\nB\nC\nD\nA\nE\nB\n")

    job = run(import_file_start(pool=pool, file=upload))

    assert (job.codes_added, job.duplicates_in_file, job.already_in_pool) == (5, 2, 0)
    assert [r.row_number for r in job.rejections.all()] == [6, 8]


def test_naive_times_are_read_in_the_project_time_zone(settings):
    settings.TIME_ZONE = "Europe/Moscow"
    pool = make_pool()
    upload = csv_upload(
        "Code,Issue-start,Available-till,Issue-end\nTZ1,01.03.2026 10:00,2026-03-31,\n"
        # 10:00 UTC is 13:00 in Moscow: an end at 13:30 there is after it.
        "TZ2,2026-03-01T10:00:00+00:00,,01.03.2026 13:30\n"
    )

    run(import_file_start(pool=pool, file=upload))

    code = Code.objects.get(code="TZ1")
    assert code.issue_start.astimezone(UTC) == datetime(2026, 3, 1, 7, 0, tzinfo=UTC)
    zoned = Code.objects.get(code="TZ2")
    assert zoned.issue_start.astimezone(UTC) == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    assert zoned.issue_end.astimezone(UTC) == datetime(2026, 3, 1, 10, 30, tzinfo=UTC)
    assert code.available_till.astimezone(ZoneInfo("Europe/Moscow")).isoformat() == (
        "2026-03-31T23:59:59.999999+03:00"
    )


def test_xlsx_upload():
    pool = make_pool()
    upload = xlsx_upload([("Code", "Available-till"), ("X1", "31.12.2026"), (777, None)])

    job = run(import_file_start(pool=pool, file=upload))

    assert (job.status, job.codes_added) == (Import.Status.COMPLETED, 2)
    assert set(Code.objects.values_list("code", flat=True)) == {"X1", "777"}


def test_file_level_problem_fails_the_import_and_imports_nothing():
    pool = make_pool()

    # The upload refuses such a file at once (test_admin); one that reaches the worker by
    # another way is checked there too.
    job = run(import_file_start(pool=pool, file=csv_upload("Promo,Note\nA1,x\n"), inspect=False))

    assert job.status == Import.Status.FAILED
    assert job.message == (
        "“codes.csv” has no column of codes: no column is named Code (or Promo code, Coupon, Код, "
        "Промокод). Columns found: “Promo”, “Note”. Choose the columns on the upload page, or "
        "rename the one to read. Fix the file and upload it again."
    )
    assert not job.can_run_again
    with pytest.raises(ValidationError, match="cannot help"):
        import_rerun(job=job)
    assert not Code.objects.exists()


def test_file_over_the_limit_is_refused_before_it_is_stored(settings):
    settings.IMPORT_MAX_FILE_SIZE = 8

    with pytest.raises(ValidationError) as excinfo:
        import_file_start(pool=make_pool(), file=csv_upload("Code\nA12\n"))

    assert excinfo.value.message_dict["file"] == [
        "“codes.csv” is 9\xa0bytes; files up to 8\xa0bytes can be uploaded. Fix the file and "
        "upload it again."
    ]
    assert not Import.objects.exists()
    assert import_file_start(pool=make_pool(), file=csv_upload("Code\nA1\n")).file_size == 8


def test_pasted_list():
    pool = make_pool()

    job = run(import_text_start(pool=pool, text="AAA\nBBB, CCC\n\nAAA\n"))

    assert (job.source, job.codes_added, job.duplicates_in_file) == ("text", 3, 1)
    with pytest.raises(ValidationError):
        import_text_start(pool=pool, text="  \n ")


def test_generation_makes_unique_codes_of_the_format():
    pool = make_pool()

    job = run(
        import_generate_start(pool=pool, count=500, length=8, alphabet="ABCDEFGH", prefix="GX-")
    )

    assert (job.status, job.codes_added, job.progress_percent) == ("completed", 500, 100)
    codes = list(Code.objects.filter(pool=pool).values_list("code", flat=True))
    assert len(set(codes)) == 500
    assert all(
        c.startswith("GX-") and len(c) == 11 and set(c[3:]) <= set("ABCDEFGH") for c in codes
    )
    assert counts(pool) == (500, 0, 0)


@pytest.mark.parametrize(
    "alphabet",
    [DEFAULT_ALPHABET, string.ascii_uppercase + string.digits, "АБВГДЕЖЗИКЛМНПРСТУФХЦЧШЭЮЯ2345"],
    ids=["default", "letters-digits", "cyrillic"],
)
def test_every_character_of_the_alphabet_is_equally_likely(alphabet):
    """Each character of a generated code is as likely as any other: a favoured character
    makes codes easier to guess. Pearson's chi-squared over 200,000 characters: a fair draw
    passes 3 × (alphabet size - 1) with a chance of failing below one in ten million, while
    one character in eight drawn 1/8 more often than the rest scores hundreds."""
    drawn = Counter("".join(generate_codes(CodeFormat(length=10, alphabet=alphabet), 20_000)))
    expected = 200_000 / len(alphabet)

    chi_squared = sum((drawn[char] - expected) ** 2 / expected for char in alphabet)

    assert set(drawn) == set(alphabet)
    assert chi_squared < 3 * (len(alphabet) - 1)


def test_generation_refuses_a_format_without_a_safe_margin():
    with pytest.raises(ValidationError) as excinfo:
        import_generate_start(pool=make_pool(), count=200, length=4, alphabet="ABCD")

    assert "at most 2 can be generated" in excinfo.value.message_dict["count"][0]
    assert not Import.objects.exists()


def test_generation_counts_the_codes_earlier_runs_drew_against_the_safe_margin():
    """1% of 10,000 codes may exist: after a run of 80, 20 more may be drawn, not 21."""
    pool = make_pool()
    run(import_generate_start(pool=pool, count=80, length=4, alphabet="ABCDEFGHJK"))

    with pytest.raises(ValidationError) as excinfo:
        import_generate_start(pool=pool, count=21, length=4, alphabet="ABCDEFGHJK")
    last = run(import_generate_start(pool=pool, count=20, length=4, alphabet="ABCDEFGHJK"))

    assert "(80 already do), so at most 20 can be generated" in str(excinfo.value)
    assert (last.status, Code.objects.filter(pool=pool).count()) == ("completed", 100)


def test_generation_is_closed_after_a_manual_upload_but_not_a_failed_one():
    pool = make_pool()
    run(import_file_start(pool=pool, file=csv_upload("Nothing,Note\nA,x\n"), inspect=False))
    assert generation_allowed(pool)

    run(import_text_start(pool=pool, text="HANDMADE"))

    assert not generation_allowed(pool)
    with pytest.raises(ValidationError, match="no longer offers generation"):
        import_generate_start(pool=pool, count=10, length=8, alphabet="ABCDEFGH")


def crash_the_second_batch(monkeypatch) -> None:
    """Make the engine's second batch fail as a database gone away; the others load."""
    real_load_batch = loader.load_batch
    calls = []

    def crash_on_second_batch(**kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise ConnectionError("database went away")
        return real_load_batch(**kwargs)

    monkeypatch.setattr(engine, "load_batch", crash_on_second_batch)


def test_a_failed_batch_leaves_earlier_batches_and_rerun_finishes_with_right_counts(
    settings, monkeypatch
):
    settings.IMPORT_BATCH_SIZE = 4
    pool = make_pool()
    text = "Code\n" + "".join(f"R{i}\n" for i in range(10)) + "R0\n"
    job = import_file_start(pool=pool, file=csv_upload(text))
    crash_the_second_batch(monkeypatch)
    job = run(job)

    assert job.status == Import.Status.FAILED
    assert job.message == (
        "The import stopped on an unexpected error; the codes of the finished batches are kept. "
        "Run it again, or tell an administrator: database went away"
    )
    assert (job.needs_new_file, job.can_run_again) == (False, True)
    assert (job.rows_done, job.codes_added) == (5, 4)
    assert Code.objects.count() == 4

    import_rerun(job=job)
    job = run(job)

    assert job.status == Import.Status.COMPLETED_WITH_ERRORS
    assert (job.rows_read, job.codes_added, job.duplicates_in_file) == (11, 10, 1)
    assert Code.objects.count() == 10
    assert counts(pool) == (10, 0, 0)


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_batch_failing_in_the_commit_thread_fails_the_import_too(settings, monkeypatch):
    """As a worker runs it, outside a transaction: the batches commit in a thread of their own
    while the next are read, and a batch that fails there fails the import all the same,
    though the batches after it were read and handed over before its failure was known."""
    settings.IMPORT_BATCH_SIZE = 4
    pool = make_pool()
    text = "Code\n" + "".join(f"R{i}\n" for i in range(10)) + "R0\n"
    crash_the_second_batch(monkeypatch)

    job = import_file_start(pool=pool, file=csv_upload(text))  # run at commit, as a worker
    job.refresh_from_db()

    assert (job.status, job.rows_done, job.codes_added) == (Import.Status.FAILED, 5, 4)
    assert Code.objects.count() == 4

    import_rerun(job=job)
    job.refresh_from_db()

    assert job.status == Import.Status.COMPLETED_WITH_ERRORS
    assert (job.rows_read, job.codes_added, job.duplicates_in_file) == (11, 10, 1)
    assert counts(pool) == (10, 0, 0)


def test_a_resumed_import_reads_dates_in_the_order_its_committed_rows_settled(
    settings, monkeypatch
):
    settings.IMPORT_BATCH_SIZE = 1
    pool = make_pool()
    upload = csv_upload("Code,Issue-end\nA,31/01/2027\nB,03/04/2027\n")
    job = import_file_start(pool=pool, file=upload, inspect=False)
    crash_the_second_batch(monkeypatch)
    job = run(job)
    assert (job.status, job.rows_done) == (Import.Status.FAILED, 2)

    import_rerun(job=job)
    job = run(job)

    assert (job.status, job.codes_added) == (Import.Status.COMPLETED, 2)
    assert Code.objects.get(code="B").issue_end.month == 4  # day first, as row 2 showed


def test_rerun_only_of_failed_imports():
    job = run(import_text_start(pool=make_pool(), text="A"))

    with pytest.raises(ValidationError, match="Only a failed import"):
        import_rerun(job=job)


def test_a_job_held_by_a_live_worker_is_not_run_twice():
    job = import_text_start(pool=make_pool(), text="A")
    Import.objects.filter(pk=job.pk).update(status="running", heartbeat_at=timezone.now())

    assert import_run(import_id=job.pk) is RunOutcome.BUSY
    assert not Code.objects.exists()


def test_a_job_whose_worker_died_is_taken_over(settings):
    job = import_text_start(pool=make_pool(), text="A")
    stale = timezone.now() - timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT + 1)
    Import.objects.filter(pk=job.pk).update(status="running", heartbeat_at=stale, attempts=1)

    assert import_run(import_id=job.pk) is RunOutcome.FINISHED
    job.refresh_from_db()
    assert (job.status, job.attempts, job.codes_added) == ("completed", 2, 1)


def test_finished_job_is_not_run_again():
    job = run(import_text_start(pool=make_pool(), text="A"))

    assert import_run(import_id=job.pk) is RunOutcome.GONE


def test_one_import_at_a_time_per_pool():
    pool = make_pool()
    first = import_text_start(pool=pool, text="A")
    second = import_text_start(pool=pool, text="B")
    Import.objects.filter(pk=first.pk).update(status="running", heartbeat_at=timezone.now())

    assert import_run(import_id=second.pk) is RunOutcome.BUSY
    assert import_run(import_id=import_text_start(pool=make_pool(), text="C").pk) is (
        RunOutcome.FINISHED
    )


def test_an_import_whose_worker_died_does_not_hold_its_pool(settings):
    """A running import whose heartbeat is older than JOB_HEARTBEAT_TIMEOUT has lost its
    worker: the pool's next import runs rather than wait for the recovery to notice."""
    pool = make_pool()
    dead = import_text_start(pool=pool, text="A")
    stale = timezone.now() - timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT + 1)
    Import.objects.filter(pk=dead.pk).update(status="running", heartbeat_at=stale)

    assert import_run(import_id=import_text_start(pool=pool, text="B").pk) is RunOutcome.FINISHED
    assert list(Code.objects.filter(pool=pool).values_list("code", flat=True)) == ["B"]


def test_stale_imports_are_queued_again_then_failed_after_max_attempts(
    settings, django_capture_on_commit_callbacks
):
    stale = timezone.now() - timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT + 1)
    retried = import_text_start(pool=make_pool(), text="A")
    exhausted = import_text_start(pool=make_pool(), text="B")
    # Three attempts at most: the second one's loss is retried, the third one's is final.
    Import.objects.filter(pk=retried.pk).update(status="running", heartbeat_at=stale, attempts=2)
    Import.objects.filter(pk=exhausted.pk).update(status="running", heartbeat_at=stale, attempts=3)

    with django_capture_on_commit_callbacks(execute=True):
        assert jobs_recover(Import) == 2

    retried.refresh_from_db()
    exhausted.refresh_from_db()
    assert (retried.status, retried.codes_added, retried.attempts) == ("completed", 1, 3)
    assert (exhausted.status, exhausted.codes_added, exhausted.needs_new_file) == (
        "failed",
        0,
        False,
    )
    assert exhausted.message == (
        "The worker stopped during this job 3 times; what it finished is kept. "
        "Run it again to go on."
    )


@pytest.mark.postgresql  # a NUL that PostgreSQL refuses (SQLite stores it)
def test_a_row_the_database_refuses_is_narrowed_down_and_rejected_alone(
    settings, monkeypatch, caplog
):
    """A batch that fails to commit for a reason no validation foresaw is bisected: only the
    guilty row is rejected, every other row of the batch is added."""
    settings.IMPORT_BATCH_SIZE = 50
    real_clean_row = engine.clean_row

    def clean_row_letting_a_nul_through(row_number, cells, tz, order=None):
        row = real_clean_row(row_number, cells, tz, order)
        return (row_number, "BAD\x00NUL", *row[2:]) if row_number == 37 else row

    monkeypatch.setattr(engine, "clean_row", clean_row_letting_a_nul_through)
    pool = make_pool()
    upload = csv_upload("Code\n" + "".join(f"R{i}\n" for i in range(2, 102)))

    job = run(import_file_start(pool=pool, file=upload))

    assert job.status == Import.Status.COMPLETED_WITH_ERRORS
    assert (job.rows_read, job.codes_added, job.rows_rejected) == (100, 99, 1)
    (rejection,) = job.rejections.all()
    assert (rejection.row_number, rejection.value) == (37, "BAD␀NUL")
    assert rejection.reason == (
        'This row could not be stored: invalid byte sequence for encoding "UTF8": 0x00'
    )
    assert (rejection.column, rejection.cells) == ("Code", ["BAD\\x00NUL", None, None, None, None])
    assert Code.objects.filter(pool=pool).count() == 99
    assert counts(pool) == (99, 0, 0)
    assert [r.getMessage() for r in caplog.records if r.name == "imports.engine"] == [
        f"Import {job.pk}: row 37 could not be stored: invalid byte sequence for encoding "
        '"UTF8": 0x00\nCONTEXT:  COPY pools_code, line 1'
    ]


def test_bad_cells_cost_one_row_each_and_are_stored_shortened():
    pool = make_pool()
    upload = csv_upload(
        "Code,Issue-end\nGOOD1,\nNUL\x00CODE,\nGOOD2," + "9" * 300 + "\nGOOD3,x\x00y\nGOOD4,\n"
    )

    job = run(import_file_start(pool=pool, file=upload))

    assert (job.status, job.codes_added, job.rows_rejected) == ("completed_with_errors", 2, 3)
    values = [r.value for r in job.rejections.all()]
    assert values == ["NUL␀CODE", "9" * 100 + "…", "x␀y"]


def test_nul_bytes_after_the_first_64_kb_cost_their_rows_only():
    pool = make_pool()
    good = "".join(f"G{i:06d},2026-01-01\n" for i in range(5000))  # about 90 KB
    upload = csv_upload("Code,Issue-end\n" + good + "N\x00UL,\nD1,2026-\x0001-01\nLAST,\n")

    job = run(import_file_start(pool=pool, file=upload))

    assert (job.status, job.rows_read, job.codes_added, job.rows_rejected) == (
        "completed_with_errors",
        5003,
        5001,
        2,
    )
    assert [(r.column, r.value) for r in job.rejections.all()] == [
        ("Code", "N␀UL"),
        ("Issue-end", "2026-␀01-01"),
    ]


def test_us_dates_in_a_csv_are_read_month_first():
    pool = make_pool()
    upload = csv_upload("Code,Issue-start,Issue-end\nUS1,01/31/26,1/31/2026 9:30 PM\nUS2,3/4/26,\n")

    job = run(import_file_start(pool=pool, file=upload))

    assert (job.status, job.date_order, job.codes_added) == ("completed", "mdy", 2)
    assert Code.objects.get(code="US2").issue_start.isoformat() == "2026-03-04T00:00:00+00:00"
    assert Code.objects.get(code="US1").issue_end.isoformat() == "2026-01-31T21:30:00+00:00"


def test_ambiguous_dates_are_asked_about_on_upload_then_read_as_chosen():
    pool = make_pool()
    text = "Code,Issue-start\nAMB1,03/04/2026\n"

    with pytest.raises(ValidationError) as excinfo:
        import_file_start(pool=pool, file=csv_upload(text))
    assert "could be day-first or month-first" in excinfo.value.message_dict["date_order"][0]

    run(import_file_start(pool=pool, file=csv_upload(text), date_order="dmy"))
    assert Code.objects.get().issue_start.isoformat() == "2026-04-03T00:00:00+00:00"


def test_codes_dead_on_arrival_are_added_counted_and_flagged():
    pool = make_pool()
    upload = csv_upload(
        "Code,Issue-end,Available-till\nOLD1,2020-01-01,\nOLD2,,2020-01-01\nNEW1,,2999-01-01\n"
    )

    job = run(import_file_start(pool=pool, file=upload))

    assert (job.status, job.codes_added, job.codes_expired_on_arrival) == ("completed", 3, 2)
    assert job.message == (
        "2 codes were added although their Issue-end or Available-till had already passed: they "
        "can never be issued or redeemed."
    )


def test_unedited_template_imports_nothing_and_says_why(client, manager):
    from django.urls import reverse

    client.force_login(manager)
    template = b"".join(
        client.get(reverse("admin:imports_template", args=["csv"])).streaming_content
    )
    pool = make_pool()

    job = run(import_file_start(pool=pool, file=csv_upload(template.decode("utf-8-sig"))))

    assert (job.codes_added, job.rows_rejected, job.rows_skipped) == (0, 0, 1)
    assert not job.rejections.exists()
    assert job.message == "This is the template's example row, not a code: skipped."


def test_a_late_finish_of_a_lost_attempt_changes_nothing():
    pool = make_pool()
    job = import_file_start(pool=pool, file=csv_upload("Code\nA\n"))
    lost = engine._claim(job.pk)
    # The worker was lost; another took over (attempt 2) and completed the import.
    Import.objects.filter(pk=job.pk).update(status="queued")
    assert run(job).status == Import.Status.COMPLETED

    assert engine._finish(lost, Import.Status.FAILED, "late") is False

    job.refresh_from_db()
    assert (job.status, job.message) == (Import.Status.COMPLETED, "")


def test_the_attempt_holding_its_job_records_its_outcome():
    job = import_file_start(pool=make_pool(), file=csv_upload("Code\nA\n"))
    held = engine._claim(job.pk)

    assert engine._finish(held, Import.Status.FAILED, "stopped") is True

    job.refresh_from_db()
    assert (job.status, job.message) == (Import.Status.FAILED, "stopped")


def test_an_import_leaves_the_interpreters_switch_interval_as_it_found_it():
    import sys

    before = sys.getswitchinterval()
    sys.setswitchinterval(0.004)  # a value no import sets, whatever ran before
    try:
        run(import_file_start(pool=make_pool(), file=csv_upload("Code\nA\n")))

        assert sys.getswitchinterval() == 0.004
    finally:
        sys.setswitchinterval(before)


def test_queued_import_whose_task_was_lost_is_queued_again_once_per_interval(
    settings, django_capture_on_commit_callbacks, monkeypatch
):
    settings.JOB_QUEUED_TIMEOUT = 60
    pool = make_pool()
    job = import_file_start(pool=pool, file=csv_upload("Code\nQ1\n"))  # its task "lost"
    Import.objects.filter(pk=job.pk).update(enqueued_at=timezone.now() - timedelta(minutes=5))

    with django_capture_on_commit_callbacks(execute=True):
        assert jobs_recover(Import) == 1
    assert jobs_recover(Import) == 0  # not again within the interval

    job.refresh_from_db()
    assert (job.status, job.codes_added, job.attempts) == (Import.Status.COMPLETED, 1, 1)


def test_import_finishes_though_the_broker_is_down_and_the_outbox_sends_the_notice(
    monkeypatch, django_capture_on_commit_callbacks, settings, mailoutbox
):
    from notifications import tasks as notification_tasks
    from notifications.services import notifications_due
    from tests.factories import make_manager

    settings.NOTICE_RETRY_SECONDS = 0
    user = make_manager(email="ann@example.com")

    def broker_down(*args, **kwargs):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(notification_tasks.import_notice_send, "delay", broker_down)
    job = import_file_start(pool=make_pool(), file=csv_upload("Code\nB1\n"), user=user)
    with django_capture_on_commit_callbacks(execute=True):
        run(job)
    job.refresh_from_db()
    assert job.status == Import.Status.COMPLETED and job.finished_notice_sent_at is None
    assert notifications_due()[0] == [job.pk]

    monkeypatch.undo()
    notification_tasks.notifications_send_due()
    notification_tasks.notifications_send_due()

    assert len(mailoutbox) == 1
    assert notifications_due() == ([], [], [])


def test_worker_sessions_get_keepalives_and_an_idle_transaction_limit(settings):
    from promo_project.celery import add_database_options

    database = {"ENGINE": "django.db.backends.postgresql", "OPTIONS": {"options": "-c a=b"}}

    add_database_options(database, settings.WORKER_DATABASE_OPTIONS)

    options = database["OPTIONS"]
    assert (options["keepalives"], options["keepalives_idle"], options["keepalives_count"]) == (
        1,
        10,
        3,
    )
    assert options["options"].startswith("-c a=b -c tcp_keepalives_idle=10 ")
    assert "-c idle_in_transaction_session_timeout=60000" in options["options"]


@pytest.mark.parametrize("file_format", ["xls", "ods"])
def test_old_excel_and_opendocument_files_import_with_dates_and_cyrillic(file_format):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.imports.files import ods_bytes, xls_bytes

    rows = [["Code", "Issue-end"], ["ПРИВЕТ10", "31.12.2026"], ["OLD2", None]]
    if file_format == "xls":
        rows[2][1] = datetime(2027, 6, 30, 18, 0)
        data = xls_bytes({"Notes": [["How to fill"]], "Codes": rows})
    else:
        data = ods_bytes({"Notes": [["How to fill"]], "Codes": rows})
    pool = make_pool()

    job = run(import_file_start(pool=pool, file=SimpleUploadedFile(f"codes.{file_format}", data)))

    assert (job.status, job.codes_added) == (Import.Status.COMPLETED, 2), job.message
    assert job.message == "Codes read from the sheet “Codes”."
    assert Code.objects.get(code="ПРИВЕТ10").issue_end.isoformat() == (
        "2026-12-31T23:59:59.999999+00:00"
    )
    if file_format == "xls":
        assert Code.objects.get(code="OLD2").issue_end.isoformat() == "2027-06-30T18:00:00+00:00"


@pytest.mark.postgresql
def test_an_empty_pool_takes_the_straight_copy_until_a_batch_collides(settings, monkeypatch):
    settings.IMPORT_BATCH_SIZE = 3
    straight = []
    copy_straight_in = loader._copy_straight_in

    def spy(*args):
        result = copy_straight_in(*args)
        straight.append(result is not None)
        return result

    monkeypatch.setattr(loader, "_copy_straight_in", spy)
    pool = make_pool()
    upload = csv_upload("Code,Issue-end\nA,\nB,2001-01-01\nC,\nD,\nA,\nE,\nF,\nG,\n")

    job = run(import_file_start(pool=pool, file=upload))

    # The second batch (D, A, E) collides with A: it is written through the staging table.
    assert straight == [True, False, True]
    assert (job.codes_added, job.duplicates_in_file, job.codes_expired_on_arrival) == (7, 1, 1)
    assert [r.row_number for r in job.rejections.all()] == [6]
    assert counts(pool)[0] == 7

    again = run(import_file_start(pool=pool, file=csv_upload("Code\nZ\n")))
    assert straight == [True, False, True]  # a pool with codes takes the staging table
    assert again.codes_added == 1


# Mutation testing found these behaviours of the engine untested.


def test_ignored_columns_and_a_code_expired_on_arrival_are_said_in_one_message():
    pool = make_pool()
    upload = csv_upload("Code,Note,Issue-end,Extra\nOLD,x,2020-01-01,\nNEW,y,,\n")

    job = run(import_file_start(pool=pool, file=upload))

    assert (job.status, job.codes_added, job.codes_expired_on_arrival) == ("completed", 2, 1)
    assert job.message == (
        "Columns ignored: Note, Extra. 1 code was added although its Issue-end or "
        "Available-till had already passed: it can never be issued or redeemed."
    )
    assert (job.progress_total, job.progress_done, job.rows_done) == (52, 52, 3)


def test_the_report_keeps_each_rejected_rows_cells():
    pool = make_pool()
    upload = csv_upload(
        "Code,Issue-end\nA,31.12.2026\nBAD CODE,x\nA,01.01.2027\nBAD TOO," + "9" * 1001 + "\n"
    )

    job = run(import_file_start(pool=pool, file=upload))

    assert [(r.row_number, r.column, r.value, r.cells) for r in job.rejections.all()] == [
        (3, "Code", "BAD CODE", ["BAD CODE", None, "x", None, None]),
        (4, "Code", "A", ["A", None, "2027-01-01 23:59:59.999999", None, None]),
        # A cell is kept up to 1,000 characters.
        (5, "Code", "BAD TOO", ["BAD TOO", None, "9" * 1000 + "…", None, None]),
    ]


def test_a_file_problem_of_a_pasted_list_is_said_without_asking_for_a_new_file_upload():
    job = run(import_text_start(pool=make_pool(), text="code\n"))

    assert (job.status, job.needs_new_file) == (Import.Status.FAILED, True)
    assert job.message == "“Pasted list” has a header but no rows of codes under it."


def test_generation_that_draws_no_free_code_three_times_fails_and_needs_a_new_format(
    monkeypatch,
):
    pool = make_pool()
    make_codes(pool, ["TAKEN"])
    # Every draw is a code the pool has already (filled by other means meanwhile); a fourth
    # draw would end the test with an error rather than loop.
    draws = iter([["TAKEN"]] * 3)
    monkeypatch.setattr(engine, "generate_codes", lambda code_format, count: next(draws))
    job = import_generate_start(pool=pool, count=10, length=8, alphabet="ABCDEFGH")

    job = run(job)

    assert (job.status, job.codes_added, job.needs_new_file) == ("failed", 0, True)
    assert job.message == "No more free codes of this format could be drawn."


def test_generation_in_batches_adds_the_count_exactly_and_reports_progress(settings, monkeypatch):
    settings.IMPORT_BATCH_SIZE = 3
    pool = make_pool()
    real_load_batch = loader.load_batch
    batches = []

    def count_rows(**kwargs):
        batches.append(len(kwargs["rows"]))
        return real_load_batch(**kwargs)

    monkeypatch.setattr(engine, "load_batch", count_rows)

    job = run(import_generate_start(pool=pool, count=7, length=8, alphabet="ABCDEFGH"))

    assert batches == [3, 3, 1]
    assert (job.status, job.codes_added, job.progress_done, job.rows_rejected) == (
        "completed",
        7,
        7,
        0,
    )
    assert Code.objects.filter(pool=pool).count() == 7


def test_a_rerun_keeps_the_first_start_time(settings, monkeypatch):
    pool = make_pool()
    job = import_file_start(pool=pool, file=csv_upload("Code\nA\n"))

    def crash(**kwargs):
        raise ConnectionError("gone")

    monkeypatch.setattr(engine, "load_batch", crash)
    first = run(job)
    started, failed_at = first.started_at, first.finished_at
    assert (first.status, first.attempts) == ("failed", 1)
    monkeypatch.undo()
    import_rerun(job=first)

    second = run(first)

    # A rerun starts the count of attempts afresh (import_rerun).
    assert (second.status, second.attempts, second.started_at) == ("completed", 1, started)
    assert second.finished_at > failed_at


def test_a_worker_heartbeat_a_second_inside_the_timeout_is_alive(settings):
    job = import_text_start(pool=make_pool(), text="A")
    recent = timezone.now() - timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT - 1)
    Import.objects.filter(pk=job.pk).update(status="running", heartbeat_at=recent, attempts=1)

    assert import_run(import_id=job.pk) is RunOutcome.BUSY
    assert jobs_recover(Import) == 0
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("running", 1)


def test_a_running_job_without_a_heartbeat_is_taken_over():
    job = import_text_start(pool=make_pool(), text="A")
    Import.objects.filter(pk=job.pk).update(status="running", heartbeat_at=None, attempts=1)

    assert import_run(import_id=job.pk) is RunOutcome.FINISHED
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("completed", 2)


def test_a_job_waiting_for_its_pool_is_marked_as_held_by_its_task(
    django_capture_on_commit_callbacks,
):
    pool = make_pool()
    first = import_text_start(pool=pool, text="A")
    second = import_text_start(pool=pool, text="B")
    Import.objects.filter(pk=first.pk).update(status="running", heartbeat_at=timezone.now())
    old = timezone.now() - timedelta(minutes=10)
    Import.objects.filter(pk=second.pk).update(enqueued_at=old)

    with django_capture_on_commit_callbacks(execute=True):
        assert import_run(import_id=second.pk) is RunOutcome.BUSY

    second.refresh_from_db()
    assert second.status == "queued"
    assert timezone.now() - second.enqueued_at < timedelta(seconds=30)


def test_a_queued_import_never_enqueued_is_taken_for_lost_after_the_timeout(
    settings, django_capture_on_commit_callbacks
):
    settings.JOB_QUEUED_TIMEOUT = 60
    now = timezone.now()
    lost = import_text_start(pool=make_pool(), text="L")
    also_lost = import_text_start(pool=make_pool(), text="M")
    young = import_text_start(pool=make_pool(), text="Y")
    Import.objects.filter(pk__in=[lost.pk, also_lost.pk]).update(
        enqueued_at=None, created_at=now - timedelta(seconds=61)
    )
    Import.objects.filter(pk=young.pk).update(
        enqueued_at=None, created_at=now - timedelta(seconds=50)
    )

    with django_capture_on_commit_callbacks(execute=True):
        assert jobs_recover(Import) == 2

    lost.refresh_from_db()
    also_lost.refresh_from_db()
    young.refresh_from_db()
    assert (lost.status, lost.codes_added, also_lost.status) == ("completed", 1, "completed")
    assert (young.status, young.codes_added, young.enqueued_at) == ("queued", 0, None)


def test_a_queued_import_touched_within_the_timeout_is_not_lost(settings):
    settings.JOB_QUEUED_TIMEOUT = 60
    job = import_text_start(pool=make_pool(), text="T")
    touched = timezone.now() - timedelta(seconds=50)
    Import.objects.filter(pk=job.pk).update(enqueued_at=touched)

    assert jobs_recover(Import) == 0
    job.refresh_from_db()
    assert (job.status, job.enqueued_at) == ("queued", touched)


def test_a_batch_of_an_attempt_that_lost_its_claim_is_not_committed(monkeypatch):
    pool = make_pool()
    job = import_file_start(pool=pool, file=csv_upload("Code\nA\nB\n"))
    real_open_table = engine.open_table

    def taken_over_while_reading(*args, **kwargs):
        # Another worker took the job over (attempt 5) while this one read the file.
        Import.objects.filter(pk=job.pk).update(attempts=5)
        return real_open_table(*args, **kwargs)

    monkeypatch.setattr(engine, "open_table", taken_over_while_reading)

    assert import_run(import_id=job.pk) is RunOutcome.BUSY
    job.refresh_from_db()
    assert (job.status, job.attempts, job.codes_added, job.rows_done) == ("running", 5, 0, 0)
    assert not Code.objects.filter(pool=pool).exists()
    assert counts(pool) == (0, 0, 0)


def test_an_unexpected_error_is_quoted_up_to_300_characters(monkeypatch):
    job = import_file_start(pool=make_pool(), file=csv_upload("Code\nA\n"))

    def crash(**kwargs):
        raise ConnectionError("x" * 301)

    monkeypatch.setattr(engine, "load_batch", crash)
    job = run(job)

    assert job.message == (
        "The import stopped on an unexpected error; the codes of the finished batches are kept. "
        "Run it again, or tell an administrator: " + "x" * 300 + "…"
    )


def test_rejected_cells_are_kept_as_json_can_hold_them():
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.imports.files import ods_bytes

    rows = [["Code", "Issue-start", "Issue-end"], ["NAN", float("nan"), float("inf")], ["F", 12.5]]
    ods = SimpleUploadedFile("codes.ods", ods_bytes({"Codes": rows}))
    xlsx = xlsx_upload(
        [("Code", "Issue-start", "Issue-end"), ("BAD CODE", datetime(2026, 3, 1, 9, 30), True)]
    )

    by_ods = run(import_file_start(pool=make_pool(), file=ods))
    by_xlsx = run(import_file_start(pool=make_pool(), file=xlsx))

    assert [(r.row_number, r.value, r.cells) for r in by_ods.rejections.all()] == [
        (2, "nan", ["NAN", "nan", "inf", None, None]),
        (3, "12.5", ["F", 12.5, "", None, None]),
    ]
    assert [(r.row_number, r.value, r.cells) for r in by_xlsx.rejections.all()] == [
        (2, "BAD CODE", ["BAD CODE", "2026-03-01T09:30:00", True, None, None]),
    ]


def test_progress_moves_while_rows_are_read_before_the_batch_commits(monkeypatch):
    pool = make_pool()
    # Rows of 8 bytes after a header of 377: row 2,000 ends at byte 16,377, inside the
    # reader's second buffer of 8 KB; row 2,001 ends in the third. Rejected rows count too.
    rows = [f"BAD {i:03d}\n" for i in range(10)] + [f"P{i:06d}\n" for i in range(10, 2500)]
    upload = csv_upload("Code" + " " * 372 + "\n" + "".join(rows))
    job = import_file_start(pool=pool, file=upload)
    real_load_batch = loader.load_batch
    seen = []

    def look_at_progress(**kwargs):
        seen.append(Import.objects.values_list("progress_done", flat=True).get(pk=job.pk))
        return real_load_batch(**kwargs)

    monkeypatch.setattr(engine, "load_batch", look_at_progress)
    job = run(job)

    # Reported every 1,000 rows as the bytes read: at row 2,000, two buffers.
    assert seen == [16384]
    assert (job.progress_done, job.progress_total, job.codes_added) == (20377, 20377, 2490)


def test_a_big_files_reading_moves_the_bar_once_per_step_of_the_file(monkeypatch, settings):
    """Every 1,000 rows, but only once the bar would move by READ_PROGRESS_STEP of the file:
    each move is a commit, and a million-row file read 8 KB at a time would commit a thousand
    times."""
    settings.IMPORT_BATCH_SIZE = 100_000
    monkeypatch.setattr(engine, "READ_PROGRESS_STEP", 0.2)
    # 30,000 rows of 8 bytes: 240 KB, read 8 KB at a time; every 1,000 rows a new 8 KB.
    upload = csv_upload("Code\n" + "".join(f"P{i:06d}\n" for i in range(30_000)))
    job = import_file_start(pool=make_pool(), file=upload)
    told = []
    report_reading = engine._report_reading

    def watched(held, progress):
        told.append(progress)
        return report_reading(held, progress)

    monkeypatch.setattr(engine, "_report_reading", watched)
    job = run(job)

    # Each move at least a fifth of the file past the one before: four, not thirty.
    steps = [b - a for a, b in zip([0, *told], told, strict=False)]
    assert len(told) == 4 and min(steps) >= 0.2 * job.progress_total, told
    assert (job.codes_added, job.progress_done) == (30_000, job.progress_total)


@pytest.mark.postgresql
def test_the_readings_commit_without_waiting_for_the_disk_only_in_their_own_transaction():
    """The bar's commit need not wait for the disk; a caller's transaction, which commits codes,
    still does."""
    from django.db import connection, transaction

    job = import_file_start(pool=make_pool(), file=csv_upload("Code\nA1\n"))
    Import.objects.filter(pk=job.pk).update(status=Import.Status.RUNNING, attempts=1)
    job.refresh_from_db()

    def synchronous_commit():
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            return cursor.fetchone()[0]

    with transaction.atomic():
        engine._report_reading(job, 1)
        assert synchronous_commit() == "on"
    job.refresh_from_db()
    assert job.progress_done == 1


def run_while_held(other, call, seconds: float = 10):
    """Return what `call` returns, run in a thread while the session `other` holds a lock.

    Should `call` wait on the lock longer than `seconds` (the code lost its lock timeout or its
    skip_locked), the lock is let go and the test fails instead of hanging: a test killed
    mid-way (as a mutation run kills one that hangs) would leave its committed rows behind.
    """
    import threading

    from django.db import connection

    outcome = {}

    def target():
        try:
            outcome["value"] = call()
        except BaseException as error:  # re-raised in the test's thread
            outcome["error"] = error
        finally:
            connection.close()

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(seconds)
    waited = thread.is_alive()
    if waited:
        other.rollback()
        thread.join()
    assert not waited, f"waited more than {seconds} s on the other session's lock"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_batch_waiting_on_a_lock_gives_its_attempt_back_and_runs_later(
    settings, monkeypatch, caplog
):
    """Another session (a cut-off worker's, say) holds an uncommitted row of the same code: the
    batch waits IMPORT_LOCK_TIMEOUT, then the attempt is given back and the job queued again."""
    import psycopg
    from django.db import connection

    settings.IMPORT_LOCK_TIMEOUT = 0.5
    pool = make_pool()
    # Run by this test, not by the task the upload would queue (run at once in tests).
    monkeypatch.setattr("imports.services.job_enqueue_on_commit", lambda job: None)
    job = import_file_start(pool=pool, file=csv_upload("Code\nHELD\nFREE\n"))
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"]
    ) as other:
        other.execute(
            "INSERT INTO pools_code (pool_id, code, status, issued_to, times_redeemed) "
            "VALUES (%s, 'HELD', 'available', '', 0)",
            [pool.pk],
        )
        before = timezone.now()

        assert run_while_held(other, lambda: import_run(import_id=job.pk)) is RunOutcome.BUSY

        job.refresh_from_db()
        assert (job.status, job.attempts, job.codes_added, job.rows_done) == ("queued", 0, 0, 0)
        assert job.enqueued_at >= before
        assert [r.getMessage() for r in caplog.records if r.name == "imports.engine"] == [
            f"Import {job.pk} waits on a lock, most likely a lost worker's"
        ]
        other.rollback()

    assert import_run(import_id=job.pk) is RunOutcome.FINISHED
    job.refresh_from_db()
    assert (job.status, job.attempts, job.codes_added) == ("completed", 1, 2)


@pytest.mark.postgresql  # a NUL in JSON that PostgreSQL refuses
def test_a_rejected_row_the_database_refuses_is_kept_spelled_in_ascii(monkeypatch):
    """The last resort for a rejected row whose cells could not be stored: had a cell slipped
    through unshown (here made to, by storing cells as they are), the row is still reported."""
    real_json_cell = engine._json_cell
    monkeypatch.setattr(
        engine,
        "_json_cell",
        lambda value: value if isinstance(value, str) else real_json_cell(value),
    )
    pool = make_pool()

    upload = csv_upload(
        "Code,Issue-end,Available-till\nA\x00B,\u00e9," + "\u00e9" * 300 + "\nOK,,\n"
    )

    job = run(import_file_start(pool=pool, file=upload))

    assert (job.status, job.codes_added, job.rows_rejected) == ("completed_with_errors", 1, 1)
    (rejection,) = job.rejections.all()
    assert (rejection.row_number, rejection.column, rejection.value, rejection.reason) == (
        2,
        "Code",
        "A\\u2400B",
        "The code has a control character (U+0000) at position 2, which cannot be part of a "
        "code: remove it.",
    )
    # Each cell spelled in ASCII is kept up to 1,000 characters.
    assert rejection.cells == ["A\\x00B", None, "\\xe9", None, "\\xe9" * 250]


def test_what_the_engine_does_is_logged(
    settings, caplog, monkeypatch, django_capture_on_commit_callbacks
):
    settings.JOB_QUEUED_TIMEOUT = 60
    lost = import_file_start(pool=make_pool(), file=csv_upload("Code\nQ1\n"))
    Import.objects.filter(pk=lost.pk).update(enqueued_at=timezone.now() - timedelta(minutes=5))
    crashed = import_file_start(pool=make_pool(), file=csv_upload("Code\nC1\n"))

    def crash(**kwargs):
        raise ConnectionError("gone")

    with django_capture_on_commit_callbacks(execute=True):
        jobs_recover(Import)
    late = engine._claim(crashed.pk)
    Import.objects.filter(pk=crashed.pk).update(status="queued")
    monkeypatch.setattr(engine, "load_batch", crash)
    run(crashed)
    engine._finish(late, Import.Status.FAILED, "late")

    assert [
        (r.levelname, r.getMessage())
        for r in caplog.records
        if r.name in ("imports.engine", "pools.jobs")
    ] == [
        ("WARNING", f"Import {lost.pk} lost its task: queued again"),
        ("ERROR", f"Import {crashed.pk} failed"),
        ("WARNING", f"Import {crashed.pk}: attempt 1 lost its claim; outcome not recorded"),
    ]


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_stale_import_another_process_is_recovering_is_skipped_not_waited_for(settings):
    import psycopg
    from django.db import connection

    stale = timezone.now() - timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT + 1)
    older = import_text_start(pool=make_pool(), text="A")
    newer = import_text_start(pool=make_pool(), text="B")  # looked at first
    Import.objects.filter(pk__in=[older.pk, newer.pk]).update(
        status="running", heartbeat_at=stale, attempts=1
    )
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"]
    ) as other:
        other.execute("SELECT id FROM imports_import WHERE id = %s FOR UPDATE", [newer.pk])

        assert run_while_held(other, lambda: jobs_recover(Import)) == 1

        other.rollback()
    older.refresh_from_db()
    newer.refresh_from_db()
    assert (older.status, older.codes_added) == ("completed", 1)
    assert (newer.status, newer.attempts, newer.heartbeat_at) == ("running", 1, stale)


def test_a_running_attempt_holds_its_job_against_a_second_task(monkeypatch):
    pool = make_pool()
    job = import_file_start(pool=pool, file=csv_upload("Code\nA\n"))
    real_load_batch = loader.load_batch
    second = []

    def second_task_meanwhile(**kwargs):
        second.append(import_run(import_id=job.pk))
        return real_load_batch(**kwargs)

    monkeypatch.setattr(engine, "load_batch", second_task_meanwhile)
    before = timezone.now()

    job = run(job)

    assert second == [RunOutcome.BUSY]
    assert (job.status, job.attempts, job.codes_added) == ("completed", 1, 1)
    assert before <= job.started_at <= job.heartbeat_at <= job.finished_at <= timezone.now()


def test_a_batch_is_counted_in_rows_read_rejected_ones_too(settings, monkeypatch):
    settings.IMPORT_BATCH_SIZE = 3
    real_load_batch = loader.load_batch
    batches = []

    def count_rows(**kwargs):
        batches.append([row[1] for row in kwargs["rows"]])
        return real_load_batch(**kwargs)

    monkeypatch.setattr(engine, "load_batch", count_rows)

    job = run(import_file_start(pool=make_pool(), file=csv_upload("Code\nA\nBAD 1\nB\nC\nD\n")))

    assert batches == [["A", "B"], ["C", "D"]]
    assert (job.rows_read, job.codes_added, job.rows_rejected) == (5, 4, 1)


def test_two_fruitless_draws_in_a_row_do_not_stop_a_generation(monkeypatch):
    pool = make_pool()
    make_codes(pool, ["TAKEN"])
    # A free draw starts the count of fruitless ones again.
    draws = iter([["TAKEN"], ["TAKEN"], ["FREE"], ["TAKEN"], ["TAKEN"], ["FREE2"]])
    monkeypatch.setattr(engine, "generate_codes", lambda code_format, count: next(draws))
    job = import_generate_start(pool=pool, count=2, length=8, alphabet="ABCDEFGH")

    job = run(job)

    assert (job.status, job.codes_added, job.message) == ("completed", 2, "")
    assert sorted(Code.objects.filter(pool=pool).values_list("code", flat=True)) == [
        "FREE",
        "FREE2",
        "TAKEN",
    ]


@pytest.mark.postgresql  # a NUL that PostgreSQL refuses
def test_a_crash_between_the_halves_of_a_narrowed_batch_resumes_after_the_first(
    settings, monkeypatch
):
    settings.IMPORT_BATCH_SIZE = 4
    real_clean_row = engine.clean_row
    real_load_batch = loader.load_batch
    calls = []

    def nul_in_row_4(row_number, cells, tz, order=None):
        row = real_clean_row(row_number, cells, tz, order)
        return (row_number, "BAD\x00NUL", *row[2:]) if row_number == 4 else row

    def crash_on_the_second_half(**kwargs):
        calls.append([row[0] for row in kwargs["rows"]])
        if len(calls) == 3:
            raise ConnectionError("gone")
        return real_load_batch(**kwargs)

    monkeypatch.setattr(engine, "clean_row", nul_in_row_4)
    monkeypatch.setattr(engine, "load_batch", crash_on_the_second_half)
    pool = make_pool()
    job = run(import_file_start(pool=pool, file=csv_upload("Code\nR2\nR3\nR4\nR5\n")))

    # The whole batch, refused; its first half, committed; the second half, cut short.
    assert calls == [[2, 3, 4, 5], [2, 3], [4, 5]]
    assert (job.status, job.rows_done, job.codes_added) == ("failed", 3, 2)

    monkeypatch.setattr(engine, "load_batch", real_load_batch)
    import_rerun(job=job)
    job = run(job)

    assert (job.status, job.codes_added, job.rows_rejected, job.duplicates_in_file) == (
        "completed_with_errors",
        3,
        1,
        0,
    )
    assert [r.row_number for r in job.rejections.all()] == [4]


def test_the_starter_is_told_of_the_outcome_once_the_import_finishes(
    django_capture_on_commit_callbacks, mailoutbox
):
    from tests.factories import make_manager

    user = make_manager(email="ann@example.com")
    job = import_file_start(pool=make_pool(), file=csv_upload("Code\nN1\n"), user=user)

    with django_capture_on_commit_callbacks(execute=True):
        run(job)

    job.refresh_from_db()
    assert [message.to for message in mailoutbox] == [["ann@example.com"]]
    assert job.finished_notice_sent_at is not None
