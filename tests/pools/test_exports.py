"""Export jobs: the file (same columns, formats and escaping on every path), chunks and resume,
sheets, who may download, the e-mail with the link, and the clean-up of old files."""

import io
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core import mail
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from notifications.services import import_notices_set
from pools import export_services, exports
from pools.export_services import (
    code_export_filters,
    code_export_run,
    code_export_start,
    code_exports_clean,
)
from pools.jobs import jobs_recover
from pools.models import Code, CodeExport
from tests.factories import csv_rows, make_codes, make_manager, make_pool, make_staff, make_viewer
from tests.pools.locks import row_held_elsewhere

pytestmark = pytest.mark.django_db

WHEN = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
KOLKATA = timedelta(hours=5, minutes=30)  # Asia/Kolkata: no summer time


def tricky_pool():
    pool = make_pool(slug="tricky")
    make_codes(pool, ["=1+2", "+A", "-B", "@C", "\tD", "PLAIN", 'Q"uote,comma', "\rE"])
    make_codes(pool, [f"C{i:03d}" for i in range(39)], issue_end=WHEN, available_from=WHEN)
    # Every moment column a different moment, so that a column written from another one shows.
    Code.objects.filter(code="PLAIN").update(
        status=Code.Status.ISSUED,
        issued_to="-cust",
        issued_at=WHEN,
        redeemed_at=WHEN + timedelta(hours=1),
        times_redeemed=2,
        issue_start=WHEN - timedelta(days=1),
        issue_end=WHEN + timedelta(days=1),
        available_from=WHEN - timedelta(days=2),
        available_till=WHEN + timedelta(days=2, seconds=1),
    )
    return pool


HEADER = [
    "Code", "Pool ID", "Status", "Customer", "Issued at", "Redeemed at", "Times redeemed",
    "Issue-start", "Issue-end", "Available-from", "Available-till",
]  # fmt: skip


def _available(code, issue_end="", available_from=""):
    return [code, "tricky", "Available", "", "", "", "0", "", issue_end, available_from, ""]


def tricky_rows(ahead: timedelta = timedelta(0)) -> list[list[str]]:
    """The tricky pool's file, row by row, with moments written in a zone `ahead` of UTC (as
    the project's TIME_ZONE says)."""

    def at(moment):
        return (moment + ahead).strftime("%Y-%m-%d %H:%M:%S")

    plain = [
        "PLAIN", "tricky", "Issued", "'-cust", at(WHEN), at(WHEN + timedelta(hours=1)), "2",
        at(WHEN - timedelta(days=1)), at(WHEN + timedelta(days=1)),
        at(WHEN - timedelta(days=2)), at(WHEN + timedelta(days=2, seconds=1)),
    ]  # fmt: skip
    return [
        HEADER,
        _available("'=1+2"),
        _available("'+A"),
        _available("'-B"),
        _available("'@C"),
        _available("'\tD"),
        plain,
        _available('Q"uote,comma'),
        _available("'\rE"),
        *[_available(f"C{i:03d}", at(WHEN), at(WHEN)) for i in range(39)],
    ]


def run_export(pool=None, file_format="csv", user=None, **filters):
    export = code_export_start(
        filters={"pool": pool.pk, **filters} if pool else filters,
        file_format=file_format,
        user=user,
    )
    code_export_run(export_id=export.pk)
    export.refresh_from_db()
    return export


def test_csv_job_writes_every_column_formatted_and_escaped_row_by_row(settings):
    """On PostgreSQL the database writes the CSV (COPY); in the order the codes were added,
    moments in the project's time zone to the second, formulas escaped."""
    settings.EXPORT_CHUNK_ROWS = 7
    settings.TIME_ZONE = "Asia/Kolkata"  # 5:30 ahead of UTC, all year
    pool = tricky_pool()
    make_codes(make_pool(), ["OTHER"])

    export = run_export(pool)

    assert export.status == CodeExport.Status.COMPLETED, export.message
    rows = csv_rows(export.file.read())
    assert rows == tricky_rows(KOLKATA)
    assert rows[6][4] == "2026-03-04 10:36:07"  # WHEN, 05:06:07 UTC
    assert export.rows_done == 47


def test_the_python_formatter_writes_the_same_rows_as_copy(settings):
    """The generic path (other databases, searches, XLSX, small exports at once)."""
    settings.TIME_ZONE = "Asia/Kolkata"
    pool = tricky_pool()
    make_codes(make_pool(), ["OTHER"])

    rows = list(exports.code_rows(exports.codes_filtered({"pool": pool.pk})))

    assert rows == tricky_rows(KOLKATA)


def test_an_export_of_all_pools_names_each_codes_pool_escaped():
    make_codes(make_pool(slug="-minus"), ["M1"])
    make_codes(make_pool(slug="plain"), ["P1"])

    export = run_export()

    assert [row[:3] for row in csv_rows(export.file.read())] == [
        ["Code", "Pool ID", "Status"],
        ["M1", "'-minus", "Available"],
        ["P1", "plain", "Available"],
    ]
    rows = list(exports.code_rows(exports.codes_filtered({})))
    assert [row[:2] for row in rows[1:]] == [["M1", "'-minus"], ["P1", "plain"]]


def test_export_follows_the_filter(settings):
    settings.EXPORT_CHUNK_ROWS = 5
    pool = tricky_pool()

    issued = run_export(pool, status="issued")
    searched = run_export(pool, q="c007")
    by_prefix = run_export(pool, q="C03")

    assert [row[0] for row in csv_rows(issued.file.read())[1:]] == ["PLAIN"]
    assert [row[0] for row in csv_rows(searched.file.read())[1:]] == ["C007"]
    assert [row[0] for row in csv_rows(by_prefix.file.read())[1:]] == [f"C03{i}" for i in range(9)]
    assert (issued.rows_done, searched.rows_done, by_prefix.rows_done) == (1, 1, 9)


def test_moments_are_written_to_the_second_the_same_on_both_paths(settings):
    """Moments as the services store them, with microseconds (now()), are cut to the second:
    the database's COPY and the Python writer give the same file."""
    settings.TIME_ZONE = "Asia/Kolkata"
    pool = make_pool(slug="micro")
    make_codes(pool, ["MS1", "MS2"])
    moment = WHEN + timedelta(microseconds=999_999)
    Code.objects.filter(code="MS1").update(
        status=Code.Status.ISSUED, issued_to="c", issued_at=moment, available_till=moment
    )

    copied = csv_rows(run_export(pool).file.read())
    written = csv_rows(run_export(pool, q="MS").file.read())

    assert copied == written
    assert copied[1][4] == copied[1][10] == "2026-03-04 10:36:07"


def exported_codes(export) -> list[str]:
    """The Code column of an export's file, CSV or workbook (every sheet), header left out."""
    if export.file_format == "csv":
        return [row[0] for row in csv_rows(export.file.read())[1:]]
    workbook = load_workbook(io.BytesIO(export.file.read()), read_only=True)
    return [row[0] for sheet in workbook for row in list(sheet.values)[1:]]


def test_every_export_writes_the_codes_its_filter_selects_each_once_in_order(settings):
    """Two pools whose codes interleave, every status, ids with gaps, chunks of 3 ids: for
    each filter and format the file holds exactly the codes the filter selects (read here
    straight from the table), once each, in the order they were added."""
    settings.EXPORT_CHUNK_ROWS = 3
    first, second = make_pool(slug="first"), make_pool(slug="second")
    for i in range(16):
        make_codes(first, [f"A{i:02d}"])
        make_codes(second, [f"B{i:02d}"])
    statuses = [Code.Status.ISSUED, Code.Status.REDEEMED, Code.Status.EXPIRED]
    statuses.append(Code.Status.WITHDRAWN)
    for i, code in enumerate(Code.objects.order_by("id")):
        if i % 5:
            Code.objects.filter(pk=code.pk).update(status=statuses[i % 4])
    Code.objects.filter(code__in=["A03", "B04", "A05", "A10", "B15"]).delete()  # gaps

    def expected(pool=None, status=None, prefix=""):
        codes = Code.objects.filter(code__startswith=prefix).order_by("id")
        codes = codes.filter(pool=pool) if pool else codes
        codes = codes.filter(status=status) if status else codes
        return list(codes.values_list("code", flat=True))

    cases = [({}, expected()), ({"pool": first.pk}, expected(first))]
    for status in Code.Status.values:
        cases.append(({"pool": first.pk, "status": status}, expected(first, status)))
        cases.append(({"status": status}, expected(status=status)))
    cases.append(({"pool": second.pk, "q": "B1"}, expected(second, prefix="B1")))
    for filters, codes in cases:
        for file_format in ("csv", "xlsx"):
            export = code_export_start(filters=filters, file_format=file_format)
            code_export_run(export_id=export.pk)
            export.refresh_from_db()
            assert (filters, file_format, exported_codes(export)) == (filters, file_format, codes)
            assert export.rows_done == len(codes)


_CELL_CHARACTERS = st.sampled_from([*"=+-@\t\r\n'\",", " ", "A", "1"])
_CELLS = st.text(_CELL_CHARACTERS, min_size=1, max_size=6)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@hypothesis_settings(max_examples=12, deadline=None)
@given(cells=st.lists(_CELLS, min_size=1, max_size=12, unique=True))
def test_whatever_codes_and_customers_hold_no_exported_cell_runs_as_a_formula(cells):
    """Each code and customer id is written as typed, or with a quote before it when a
    spreadsheet would run it, in the CSV (COPY on PostgreSQL), the workbook and the rows the
    Python writer formats."""
    pool = make_pool()
    make_codes(pool, cells)
    for code, customer in zip(cells, reversed(cells), strict=True):
        Code.objects.filter(pool=pool, code=code).update(
            status=Code.Status.ISSUED, issued_to=customer
        )

    copied = csv_rows(run_export(pool).file.read())[1:]
    workbook = load_workbook(io.BytesIO(run_export(pool, file_format="xlsx").file.read()))
    sheet_rows = [[cell or "" for cell in row] for row in list(workbook.active.values)[1:]]
    python_rows = list(exports.code_rows(exports.codes_filtered({"pool": pool.pk})))[1:]

    def shown(value):
        return "'" + value if value.startswith(FORMULA_STARTS) else value

    customers = list(reversed(cells))
    wanted = [[shown(code), shown(who)] for code, who in zip(cells, customers, strict=True)]
    for rows in (copied, python_rows):
        assert [[row[0], row[3]] for row in rows] == wanted

    def lines(value):  # XML (so Excel too) reads a carriage return as a line feed
        return value.replace("\r\n", "\n").replace("\r", "\n")

    assert [[lines(row[0]), lines(row[3])] for row in sheet_rows] == [
        [lines(code), lines(who)] for code, who in wanted
    ]


def test_job_killed_after_a_chunk_resumes_without_repeating_rows(settings, monkeypatch):
    settings.EXPORT_CHUNK_ROWS = 10
    pool = tricky_pool()
    export = code_export_start(filters={"pool": pool.pk}, file_format="csv")
    commit = export_services._commit_chunk
    calls = []

    def killed_after_two(job, **progress):
        calls.append(1)
        if len(calls) == 3:
            # What the killed worker wrote after its last commit stays in the file, unrecorded.
            raise SystemExit("killed")
        return commit(job, **progress)

    monkeypatch.setattr(export_services, "_commit_chunk", killed_after_two)
    with pytest.raises(SystemExit):
        code_export_run(export_id=export.pk)
    resumed = []

    def recorded(job, **progress):
        resumed.append(progress["rows_done"])
        return commit(job, **progress)

    monkeypatch.setattr(export_services, "_commit_chunk", recorded)
    export.refresh_from_db()
    assert (export.status, export.rows_done) == (CodeExport.Status.RUNNING, 20)

    # A live worker holds it: left alone. Once its heartbeat is stale, it is taken over.
    assert code_export_run(export_id=export.pk) is export_services.RunOutcome.SKIPPED
    CodeExport.objects.filter(pk=export.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert jobs_recover(CodeExport) == 1
    code_export_run(export_id=export.pk)

    assert resumed == [30, 40, 47]  # the committed chunks are not written again
    export.refresh_from_db()
    assert (export.status, export.attempts) == (CodeExport.Status.COMPLETED, 2)
    rows = csv_rows(export.file.read())
    assert rows == tricky_rows()


def test_a_job_taken_over_without_its_file_starts_over(settings, monkeypatch):
    """The new worker does not find the file (another machine's disk): it writes it whole."""
    settings.EXPORT_CHUNK_ROWS = 10
    pool = tricky_pool()
    export = code_export_start(filters={"pool": pool.pk}, file_format="csv")
    CodeExport.objects.filter(pk=export.pk).update(
        status=CodeExport.Status.RUNNING,
        heartbeat_at=timezone.now() - timedelta(hours=1),
        last_id=export.pk,  # whatever: the file it belongs to is gone
        bytes_done=100,
        rows_done=20,
    )

    code_export_run(export_id=export.pk)

    export.refresh_from_db()
    assert (export.status, export.rows_done) == (CodeExport.Status.COMPLETED, 47)
    assert csv_rows(export.file.read()) == tricky_rows()


def test_a_failing_job_fails_cleanly_and_says_why(monkeypatch, caplog):
    pool = tricky_pool()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(export_services, "_write_csv", broken)
    before = timezone.now()
    export = run_export(pool, user=make_manager(email="m@example.com"))

    assert export.status == CodeExport.Status.FAILED
    # Claimed (its heartbeat set), then failed.
    assert before <= export.heartbeat_at <= export.finished_at
    assert export.message == "The export failed: disk full. Start it again from the codes list."
    (logged,) = [r for r in caplog.records if r.name == "pools.export_services"]
    assert (logged.getMessage(), logged.exc_info[0]) == (f"Export {export.pk} failed", OSError)


def test_xlsx_goes_on_on_further_sheets(monkeypatch):
    monkeypatch.setattr(exports, "XLSX_ROWS_PER_SHEET", 20)
    pool = tricky_pool()

    export = run_export(pool, file_format="xlsx")

    assert export.status == CodeExport.Status.COMPLETED, export.message
    book = load_workbook(export.file.open("rb"), read_only=True)
    assert book.sheetnames == ["Codes", "Codes 2", "Codes 3"]
    sheets = [
        [
            ["" if cell is None else str(cell) for cell in row]
            for row in sheet.iter_rows(values_only=True)
        ]
        for sheet in book
    ]
    # XML reads a carriage return back as a line feed.
    header, *rows = [[cell.replace("\r", "\n") for cell in row] for row in tricky_rows()]
    assert sheets == [[header, *rows[:20]], [header, *rows[20:40]], [header, *rows[40:]]]
    assert export.rows_done == 47


def test_viewer_downloads_someone_without_pool_view_cannot(client, settings):
    pool = tricky_pool()
    export = run_export(pool, user=make_manager())
    download = reverse("admin:pools_codeexport_download", args=[export.pk])

    client.force_login(make_viewer())
    page = client.get(reverse("admin:pools_codeexport_change", args=[export.pk]))
    assert download in page.content.decode()
    response = client.get(download)
    assert response.status_code == 200
    assert csv_rows(b"".join(response.streaming_content))[1][0] == "'=1+2"

    outsider = make_staff("outsider")
    outsider.groups.clear()
    outsider.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_codeexport", "view_code"])
    )
    client.force_login(outsider)
    assert client.get(download).status_code == 403


def test_codes_list_starts_a_job_for_a_big_export(
    manager_client, monkeypatch, settings, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(export_services, "XLSX_AT_ONCE_MAX", 10)
    pool = tricky_pool()
    url = reverse("admin:pools_code_export", args=["xlsx"])

    page = manager_client.get(url, {"pool__id__exact": pool.pk, "status__exact": "available"})
    assert page.status_code == 200
    assert "Start the export" in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = manager_client.post(
            url, {"pool__id__exact": pool.pk, "status__exact": "available"}
        )

    export = CodeExport.objects.get()
    assert response.url == reverse("admin:pools_codeexport_change", args=[export.pk])
    export.refresh_from_db()
    assert export.filters == {"pool": pool.pk, "status": "available"}
    assert (export.status, export.rows_done) == (CodeExport.Status.COMPLETED, 46)


def test_the_one_who_asked_gets_the_link_unless_import_emails_are_off(
    django_capture_on_commit_callbacks,
):
    pool = tricky_pool()
    user = make_manager(email="asker@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        export = run_export(pool, user=user)
    (message,) = mail.outbox
    assert (message.subject, message.to) == (
        f"Export #{export.pk} of tricky: Completed",
        ["asker@example.com"],
    )
    assert reverse("admin:pools_codeexport_download", args=[export.pk]) in message.body

    import_notices_set(user=user, enabled=False)
    with django_capture_on_commit_callbacks(execute=True):
        run_export(pool, user=user)
    assert len(mail.outbox) == 1


def test_files_are_removed_after_their_time(settings):
    pool = tricky_pool()
    export = run_export(pool)
    path = export.file.path

    assert export.expires_at == export.finished_at + timedelta(hours=72)
    code_exports_clean(at=export.expires_at)
    export.refresh_from_db()
    assert export.status == CodeExport.Status.COMPLETED

    code_exports_clean(at=export.expires_at + timedelta(microseconds=1))
    export.refresh_from_db()
    assert (export.status, export.file.name) == (CodeExport.Status.REMOVED, "")
    import os

    assert not os.path.exists(path)


def test_copy_path_is_taken_on_postgresql():
    assert exports.copy_available({"pool": 1}) is (connection.vendor == "postgresql")
    assert exports.copy_available({"pool": 1, "q": "AB"}) is False


# The parts of an export, each at its edges (mutants these tests fail on had survived)


def test_formula_escaping_is_for_text_starting_with_a_formula_character_only():
    assert [exports.escape_formula(v) for v in ("=A", "+A", "-A", "@A", "\tA", "\rA")] == [
        "'=A", "'+A", "'-A", "'@A", "'\tA", "'\rA",
    ]  # fmt: skip
    assert [exports.escape_formula(v) for v in ("A=", "", "'=A", 5, None)] == [
        "A=", "", "'=A", 5, None,
    ]  # fmt: skip


def test_csv_response_is_an_escaped_utf8_attachment_excel_reads():
    response = exports.csv_response([["Code", "Note"], ["=1", 'ü,"x"']], "codes-x.csv")

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="codes-x.csv"'
    body = b"".join(response.streaming_content)
    assert body == '\ufeffCode,Note\r\n\'=1,"ü,""x"""\r\n'.encode()


def test_xlsx_response_is_an_attachment_with_the_sheet_named():
    response = exports.xlsx_response([["Code"], ["=1"]], "rejected.xlsx", sheet_title="Rejected")

    assert response["Content-Type"] == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert response["Content-Disposition"] == 'attachment; filename="rejected.xlsx"'
    body = b"".join(response.streaming_content)
    assert body.startswith(b"PK\x03\x04")  # a whole zip file, from its first byte
    book = load_workbook(io.BytesIO(body))
    assert book.sheetnames == ["Rejected"]
    assert list(book["Rejected"].iter_rows(values_only=True)) == [("Code",), ("'=1",)]
    default = exports.xlsx_response([["Code"]], "codes.xlsx")
    assert load_workbook(io.BytesIO(b"".join(default.streaming_content))).sheetnames == ["Codes"]


def test_an_empty_workbook_still_has_its_header(settings):
    output = io.BytesIO()

    assert exports.xlsx_write(iter([["Code", "Status"]]), output, sheet_title="Codes") == 0

    book = load_workbook(output)
    assert book.sheetnames == ["Codes"]
    assert list(book["Codes"].iter_rows(values_only=True)) == [("Code", "Status")]


def test_workbook_progress_is_told_every_2000_rows_and_moments_are_iso_text(settings):
    settings.TIME_ZONE = "Asia/Kolkata"
    told = []
    rows = [["Code", "When"], *([f"R{n}", WHEN] for n in range(4001))]
    output = io.BytesIO()

    assert exports.xlsx_write(rows, output, progress=told.append) == 4001

    assert told == [2000, 4000]
    sheet = load_workbook(output).active
    assert [c.value for c in sheet[2]] == ["R0", "2026-03-04 10:36:07"]
    assert sheet.max_row == 4002


def test_copy_select_takes_the_status_and_the_id_range():
    pool = make_pool(slug="ranged")
    codes = make_codes(pool, ["A", "B", "C", "D"])
    Code.objects.filter(code="C").update(status=Code.Status.ISSUED)
    ids = [code.pk for code in codes]

    def copied(filters, **bounds):
        sql, params = exports.copy_select_sql(filters, **bounds)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return [row[:3] for row in cursor.fetchall()]

    if connection.vendor == "postgresql":
        assert copied({"pool": pool.pk}, start=ids[1], end=ids[3]) == [
            ("B", "ranged", "Available"),
            ("C", "ranged", "Issued"),
        ]
        assert copied({"pool": pool.pk, "status": "available"}) == [
            ("A", "ranged", "Available"),
            ("B", "ranged", "Available"),
            ("D", "ranged", "Available"),
        ]
        assert copied({}, start=ids[3]) == [("D", "ranged", "Available")]
    with pytest.raises(ValueError) as excinfo:
        exports.copy_select_sql({"pool": pool.pk, "q": "A"})
    assert str(excinfo.value) == "a search is exported by the generic path (codes_search)"


def test_export_filters_keep_what_the_list_passes_and_drop_the_rest():
    assert export_services.code_export_filters(pool="7", status="issued", q="  ab ") == {
        "pool": 7,
        "status": "issued",
        "q": "ab",
    }
    assert export_services.code_export_filters(pool="", status="bogus", q="   ") == {}
    assert export_services.code_export_filters() == {}


def test_an_export_is_answered_at_once_up_to_the_limit_and_queued_past_it(monkeypatch):
    monkeypatch.setattr(export_services, "EXPORT_AT_ONCE_MAX", 3)
    pool = make_pool()
    make_codes(pool, ["A", "B", "C"])

    assert export_services.code_export_is_small({"pool": pool.pk}) is True
    make_codes(pool, ["D"])
    assert export_services.code_export_is_small({"pool": pool.pk}) is False


def test_the_estimate_counts_a_pools_codes_by_status_from_its_counters(monkeypatch):
    pool = make_pool()
    make_codes(pool, ["A", "B", "C", "AB"])
    Code.objects.filter(code="C").update(status=Code.Status.ISSUED)
    from pools.counters import pool_counts_add

    pool_counts_add(pool_id=pool.pk, available=-1, issued=1)
    make_codes(make_pool(), ["OTHER"])
    estimate = export_services.code_export_estimate

    assert estimate({"pool": pool.pk}) == 4
    assert estimate({"pool": pool.pk, "status": "issued"}) == 1
    assert estimate({"pool": pool.pk, "status": "available"}) == 3
    assert estimate({}) == 5
    assert estimate({"pool": pool.pk, "q": "A"}) == 2  # A and AB: counted, not estimated
    monkeypatch.setattr(export_services, "SEARCH_COUNT_MAX", 1)
    assert estimate({"pool": pool.pk, "q": "A"}) == 1


def test_an_export_is_queued_with_its_name_and_estimate(django_capture_on_commit_callbacks):
    pool = make_pool(slug="named")
    make_codes(pool, ["A", "B"])
    user = make_manager()

    with django_capture_on_commit_callbacks() as queued:
        export = code_export_start(filters={"pool": pool.pk}, file_format="xlsx", user=user)
    everything = code_export_start(filters={}, file_format="csv")

    assert len(queued) == 1
    stored = CodeExport.objects.get(pk=export.pk)
    assert (stored.status, stored.pool, stored.created_by, stored.rows_total) == (
        CodeExport.Status.QUEUED, pool, user, 2,
    )  # fmt: skip
    assert (stored.file_name, stored.file_format, stored.filters) == (
        "codes-named.xlsx", "xlsx", {"pool": pool.pk},
    )  # fmt: skip
    assert (everything.file_name, everything.pool) == ("codes-all.csv", None)
    with pytest.raises(ValueError) as excinfo:
        code_export_start(filters={}, file_format="pdf")
    assert str(excinfo.value) == "unknown export format: pdf"


def test_a_running_export_is_taken_over_only_once_its_heartbeat_is_older_than_the_timeout(
    settings, monkeypatch
):
    settings.EXPORT_HEARTBEAT_TIMEOUT = 300
    now = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
    monkeypatch.setattr(timezone, "now", lambda: now)
    pool = make_pool()
    make_codes(pool, ["A"])
    export = code_export_start(filters={"pool": pool.pk}, file_format="csv")
    CodeExport.objects.filter(pk=export.pk).update(
        status=CodeExport.Status.RUNNING,
        attempts=1,
        started_at=now - timedelta(hours=1),
        heartbeat_at=now - timedelta(seconds=300),
    )

    assert code_export_run(export_id=export.pk) is export_services.RunOutcome.SKIPPED
    CodeExport.objects.filter(pk=export.pk).update(
        heartbeat_at=now - timedelta(seconds=300, microseconds=1)
    )
    assert code_export_run(export_id=export.pk) is export_services.RunOutcome.DONE

    export.refresh_from_db()
    assert (export.status, export.attempts, export.rows_done) == (CodeExport.Status.COMPLETED, 2, 1)
    assert (export.started_at, export.finished_at, export.heartbeat_at) == (
        now - timedelta(hours=1), now, now,
    )  # fmt: skip
    assert export.expires_at == now + timedelta(hours=72)
    assert code_export_run(export_id=export.pk) is export_services.RunOutcome.SKIPPED


def test_an_export_of_no_codes_is_the_header_alone():
    pool = make_pool()

    export = run_export(pool)

    assert (export.status, export.rows_done) == (CodeExport.Status.COMPLETED, 0)
    assert csv_rows(export.file.read()) == [HEADER]
    export.file.open("rb")
    assert export.file.read().startswith("\ufeffCode,".encode())


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
def test_an_attempt_that_lost_its_job_to_another_worker_stops_and_finishes_nothing(
    monkeypatch, settings, file_format
):
    settings.EXPORT_CHUNK_ROWS = 2
    monkeypatch.setattr(exports, "_STREAM_CHUNK", 2)
    monkeypatch.setattr(export_services, "XLSX_PROGRESS_SECONDS", 0)
    pool = make_pool()
    make_codes(pool, [f"L{i}" for i in range(5)])
    export = code_export_start(filters={"pool": pool.pk}, file_format=file_format)
    commit = export_services._commit_chunk
    recorded = []

    def taken_over_after_the_first(job, **progress):
        recorded.append(progress.get("rows_done"))
        if len(recorded) == 2:  # another worker claimed it meanwhile
            CodeExport.objects.filter(pk=job.pk).update(attempts=job.attempts + 1)
        return commit(job, **progress)

    monkeypatch.setattr(export_services, "_commit_chunk", taken_over_after_the_first)

    assert code_export_run(export_id=export.pk) is export_services.RunOutcome.SKIPPED

    assert recorded == [2, 4]
    export.refresh_from_db()
    assert (export.status, export.attempts, export.rows_done) == (CodeExport.Status.RUNNING, 2, 2)
    assert (export.finished_at, export.file.name) == (None, "")


def test_a_workbook_records_its_progress_as_it_goes(monkeypatch):
    monkeypatch.setattr(exports, "_STREAM_CHUNK", 2)
    monkeypatch.setattr(export_services, "XLSX_PROGRESS_SECONDS", 0)
    pool = make_pool()
    make_codes(pool, [f"P{i}" for i in range(9)])
    export = code_export_start(filters={"pool": pool.pk}, file_format="xlsx")
    commit = export_services._commit_chunk
    recorded = []

    def watched(job, **progress):
        recorded.append(progress)
        return commit(job, **progress)

    monkeypatch.setattr(export_services, "_commit_chunk", watched)

    assert code_export_run(export_id=export.pk) is export_services.RunOutcome.DONE

    assert recorded == [{"rows_done": n} for n in (2, 4, 6, 8, 9)]
    export.refresh_from_db()
    assert (export.status, export.rows_done, export.file.name) == (
        CodeExport.Status.COMPLETED,
        9,
        f"exports/code-export-{export.pk}.xlsx",
    )


def test_a_workbook_job_commits_its_progress_every_half_second(monkeypatch):
    """The writer tells progress at every 2,000 rows (tested above); the job commits once
    XLSX_PROGRESS_SECONDS have passed since it last did, then the total: its bar moves as it
    goes, however many rows a second it writes."""
    pool = make_pool()
    export = code_export_start(filters={"pool": pool.pk}, file_format="xlsx")
    commit = export_services._commit_chunk
    recorded = []
    clock = [0.0]
    monkeypatch.setattr(export_services.time, "monotonic", lambda: clock[0])

    def watched(job, **progress):
        recorded.append(progress["rows_done"])
        return commit(job, **progress)

    def writer(rows, output, *, sheet_title, progress):
        for done, seconds in ((2_000, 0.2), (4_000, 0.5), (6_000, 0.7), (8_000, 1.1)):
            clock[0] = seconds
            progress(done)
        return 9_001

    monkeypatch.setattr(export_services, "_commit_chunk", watched)
    monkeypatch.setattr(export_services, "xlsx_write", writer)

    assert code_export_run(export_id=export.pk) is export_services.RunOutcome.DONE
    assert recorded == [4_000, 8_000, 9_001]


def test_a_sheet_holds_excels_1048576_rows_with_its_header():
    # Excel's documented limit; a workbook that size takes minutes to write, so the sheets
    # themselves are tested with a smaller limit (test_xlsx_goes_on_on_further_sheets).
    assert exports.XLSX_ROWS_PER_SHEET + 1 == 1_048_576


def test_ten_thousand_codes_are_answered_at_once_and_one_more_is_a_job():
    pool = make_pool()
    make_codes(pool, [f"T{i:05d}" for i in range(10_000)])

    assert export_services.code_export_is_small({"pool": pool.pk}) is True
    make_codes(pool, ["ONE-MORE"])
    assert export_services.code_export_is_small({"pool": pool.pk}) is False


@pytest.mark.postgresql
def test_a_search_is_counted_up_to_100000_codes():
    pool = make_pool()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Code._meta.db_table} (pool_id, code, status, issued_to, times_redeemed)"
            " SELECT %s, 'S' || lpad(n::text, 6, '0'), 'available', '', 0"
            " FROM generate_series(1, 100001) n",
            [pool.pk],
        )

    assert export_services.code_export_estimate({"pool": pool.pk, "q": "S"}) == 100_000
    assert export_services.code_export_estimate({"pool": pool.pk, "q": "S10000"}) == 2


@pytest.mark.parametrize("q", ["", "R"])  # the database's COPY, then the generic path
def test_a_chunk_starting_at_the_last_code_is_written(settings, q):
    settings.EXPORT_CHUNK_ROWS = 2
    pool = make_pool()
    make_codes(pool, ["R1", "R2", "R3", "R4", "R5"])

    export = run_export(pool, q=q) if q else run_export(pool)

    assert [row[0] for row in csv_rows(export.file.read())[1:]] == ["R1", "R2", "R3", "R4", "R5"]
    assert export.rows_done == 5


def test_estimates_never_count_below_zero_nor_missing_counts():
    pool = make_pool()
    estimate = export_services.code_export_estimate

    assert estimate({"pool": pool.pk}) == 0  # no counter rows at all
    from pools.counters import pool_counts_add

    pool_counts_add(pool_id=pool.pk, available=-2, issued=1)  # a moment between two updates
    assert estimate({"pool": pool.pk}) == 0
    assert estimate({"pool": pool.pk, "status": "issued"}) == 1


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_worker_does_not_wait_for_another_that_is_claiming_the_job():
    """Another connection holds the job's row (a worker claiming it): this one skips it at
    once rather than wait (the lock timeout set here would make waiting an error)."""

    pool = make_pool()
    make_codes(pool, ["A"])
    # Made as queued without its task (which would run it at once here).
    export = CodeExport.objects.create(pool=pool, filters={"pool": pool.pk}, file_format="csv")
    locking = f"SELECT id FROM {CodeExport._meta.db_table} WHERE id = %s FOR UPDATE"
    with row_held_elsewhere(locking, [export.pk]):
        outcome = code_export_run(export_id=export.pk)

    assert outcome is export_services.RunOutcome.SKIPPED
    export.refresh_from_db()
    assert (export.status, export.attempts) == (CodeExport.Status.QUEUED, 0)
    assert code_export_run(export_id=export.pk) is export_services.RunOutcome.DONE


def test_a_line_break_in_a_cell_is_quoted_on_the_generic_path_too():
    """A search is written by Python (COPY quotes such cells itself): a customer id holding a
    carriage return or a line feed stays one cell of one row."""
    pool = make_pool(slug="breaks")
    make_codes(pool, ["BR1", "BR2"])
    Code.objects.filter(code="BR1").update(status=Code.Status.ISSUED, issued_to="x\ry")
    Code.objects.filter(code="BR2").update(status=Code.Status.ISSUED, issued_to="x\ny")

    export = run_export(pool, q="BR")

    data = export.file.read()
    assert [row[:4] for row in csv_rows(data)[1:]] == [
        ["BR1", "breaks", "Issued", "x\ry"],
        ["BR2", "breaks", "Issued", "x\ny"],
    ]
    assert data.count(b"\n") == 3 + 1  # three lines, and the line feed inside its quotes


def test_an_export_finished_while_the_broker_is_down_is_mailed_by_the_outbox(
    monkeypatch, django_capture_on_commit_callbacks, settings, mailoutbox
):
    from notifications import tasks as notification_tasks
    from notifications.services import notifications_due

    settings.NOTICE_RETRY_SECONDS = 0
    pool = make_pool()
    make_codes(pool, ["M1", "M2"])

    def broker_down(*args, **kwargs):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(notification_tasks.export_notice_send, "delay", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        export = code_export_start(
            filters=code_export_filters(pool=pool.pk),
            file_format="csv",
            user=make_manager(email="ann@example.com"),
        )
        code_export_run(export_id=export.pk)
    export.refresh_from_db()
    assert export.status == CodeExport.Status.COMPLETED
    assert export.finished_notice_sent_at is None
    assert notifications_due().exports == [export.pk]

    monkeypatch.undo()
    notification_tasks.notifications_send_due()
    notification_tasks.notifications_send_due()

    assert [message.to for message in mailoutbox] == [["ann@example.com"]]
    assert notifications_due().exports == []
